//! The accept loop over real sockets: slow and idle clients are cut off by the header
//! read timeout, the connection cap holds, and shutdown drains in-flight requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use httpkit::{Body, Handler, ServerConfig, full, serve};
use hyper::body::Incoming;
use testkit::spawn::Spawned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Default)]
struct Hello {
    /// Notified when a `/slow` request has arrived.
    slow_arrived: tokio::sync::Notify,
}

impl Handler for Hello {
    async fn handle(&self, req: Request<Incoming>, _peer: SocketAddr) -> Response<Body> {
        if req.uri().path() == "/slow" {
            self.slow_arrived.notify_one();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if req.uri().path() == "/big" {
            return Response::new(full(vec![b'x'; 32 * 1024 * 1024]));
        }
        let mut resp = Response::new(full("hello"));
        *resp.status_mut() = StatusCode::OK;
        resp
    }
}

struct Running {
    addr: SocketAddr,
    server: Spawned,
    handler: Arc<Hello>,
}

async fn start(config: ServerConfig) -> Running {
    let handler = Arc::new(Hello::default());
    let served = handler.clone();
    let server =
        testkit::spawn::spawn(move |listener, shutdown| serve(listener, served, config, shutdown));
    Running {
        addr: server.addr,
        server,
        handler,
    }
}

/// How long the test waits for the server to close a connection: far longer than
/// any server timeout these tests set (300 ms) and than the server's defaults would
/// take to matter here, so a close before it proves the server's own timer fired,
/// and a busy machine has all the time it needs.
const CLOSE_LIMIT: Duration = Duration::from_secs(60);

/// Reads until the server closes the connection (within [`CLOSE_LIMIT`]); returns
/// what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    tokio::time::timeout(CLOSE_LIMIT, stream.read_to_end(&mut buf))
        .await
        .expect("the server did not close the connection")
        .ok();
    String::from_utf8_lossy(&buf).into_owned()
}

fn short_timeouts() -> ServerConfig {
    ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let server = start(short_timeouts()).await;
    let addr = server.addr;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Nothing else would close it: the header read timeout did.
    read_until_closed(&mut stream).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = start(short_timeouts()).await;
    let addr = server.addr;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn the_connection_cap_makes_extra_clients_wait_not_fail() {
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let server = start(config).await;
    let addr = server.addr;
    let mut first = TcpStream::connect(addr).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = first.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // The second connection is accepted by the kernel but not served while the first
    // keeps its slot.
    let mut second = TcpStream::connect(addr).await.unwrap();
    second
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // (A check that something does NOT happen: it can only pass wrongly on a slow
    // machine, never fail wrongly.)
    let waited = tokio::time::timeout(Duration::from_millis(300), second.read(&mut buf)).await;
    assert!(waited.is_err(), "served beyond the cap");
    drop(first);
    let answer = read_until_closed(&mut second).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_stops_accepting() {
    let Running {
        addr,
        mut server,
        handler,
    } = start(ServerConfig::default()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Shut down only once the request is being handled.
    tokio::time::timeout(CLOSE_LIMIT, handler.slow_arrived.notified())
        .await
        .unwrap();
    let stopping = tokio::spawn(async move {
        server.stop().await;
        server
    });
    let answer = read_until_closed(&mut stream).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "in-flight request lost: {answer:?}"
    );
    // `stop` waits for the server to end (bounded).
    let _server = stopping.await.unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_its_answer_is_dropped() {
    let config = ServerConfig {
        max_connections: 1,
        write_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = start(config).await;
    // Asks for 32 MiB and never reads: the kernel buffers fill, the server's writes
    // stall, and the write timeout must free the only connection slot.
    let mut stuck = TcpStream::connect(server.addr).await.unwrap();
    stuck
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The stuck client holds the only slot once its first bytes of answer arrive.
    let mut first = [0u8; 16];
    tokio::time::timeout(CLOSE_LIMIT, stuck.read_exact(&mut first))
        .await
        .expect("no answer to the stuck client")
        .unwrap();
    let mut next = TcpStream::connect(server.addr).await.unwrap();
    next.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Served at all: only the write timeout can free the slot the stuck client holds.
    let answer = read_until_closed(&mut next).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(stuck);
}

/// Sends `request` raw and reads the whole answer (the request asks to close).
async fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    read_until_closed(&mut stream).await
}

#[tokio::test]
async fn every_answer_says_nosniff_the_handlers_and_the_refused_framings() {
    let mut running = start(ServerConfig::default()).await;
    // The handler's own plain-text answer, which sets no such header itself.
    let ok = exchange(
        running.addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    // Answered by the accept loop before the handler runs: 501 and 400.
    let not_implemented = exchange(
        running.addr,
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
    )
    .await;
    let two_hosts = exchange(
        running.addr,
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    )
    .await;
    for (answer, status) in [(&ok, "200"), (&not_implemented, "501"), (&two_hosts, "400")] {
        let head = answer
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .to_ascii_lowercase();
        assert!(head.starts_with(&format!("http/1.1 {status}")), "{answer}");
        assert!(
            head.contains("\r\nx-content-type-options: nosniff"),
            "no nosniff: {answer}"
        );
    }
    running.server.stop().await;
}
