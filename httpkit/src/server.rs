//! The accept loop every server runs: a connection cap, header-read timeouts, a span
//! per connection, transient accept errors survived, and a graceful drain with a
//! deadline on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::Body;
use crate::io::WriteTimeout;

/// Something that answers requests. Implemented by each server's shared state.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request; errors are already turned into responses.
    fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// Limits of the accept loop.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Connections served at once; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// A client must send a request's headers within this time (also bounds idle
    /// keep-alive connections), so slow or idle clients cannot pin the server.
    pub header_read_timeout: Duration,
    /// A client that stops reading its answer for this long is dropped, so it cannot
    /// pin a connection (and what the connection holds upstream).
    pub write_timeout: Duration,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub drain_timeout: Duration,
    /// Most header lines a request may have (more: 431). See
    /// [`crate::framing::MAX_HEADERS`].
    pub max_headers: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            max_headers: crate::framing::MAX_HEADERS,
        }
    }
}

/// Serves HTTP/1.1 on `listener` with `handler` until `shutdown` completes, then
/// stops accepting and waits (at most `drain_timeout`) for open connections.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let builder = http1_builder(&config);
    accept_loop(&listener, &limit, shutdown, |stream, peer, permit| {
        let handler = handler.clone();
        let service = service_fn(move |req| {
            let handler = handler.clone();
            async move {
                // Framing the handler cannot serve (RFC 9112): 501 / 400, in one place.
                let mut resp = match crate::framing::check(&req) {
                    Some(refused) => refused,
                    None => handler.handle(req, peer).await,
                };
                // Every answer of every server says nosniff, whatever built it.
                crate::nosniff(resp.headers_mut());
                Ok::<_, Infallible>(resp)
            }
        });
        let stream = WriteTimeout::new(stream, config.write_timeout);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        let span = tracing::debug_span!("conn", %peer);
        tokio::spawn(
            async move {
                if let Err(err) = conn.await {
                    tracing::debug!(%err, "connection ended with an error");
                }
                drop(permit);
            }
            .instrument(span),
        );
    })
    .await;
    drop(listener);
    drain(graceful, config.drain_timeout).await;
}

/// hyper's HTTP/1 server as every accept loop here configures it: header-read
/// timeout, header-count limit, keep-alive.
pub fn http1_builder(config: &ServerConfig) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    // hyper's own limit is 100 header lines; setting any limit, even that one, makes
    // it fill a vector of that many slots for every request it parses.
    if config.max_headers != HYPER_MAX_HEADERS {
        builder.max_headers(config.max_headers.max(1));
    }
    builder
}

/// The header-line limit hyper applies when none is set.
const HYPER_MAX_HEADERS: usize = 100;

/// The accept loop itself, for servers that run their connections their own way
/// (the balancer's per-core workers): takes a permit of `limit` (the connection cap)
/// per connection, accepts, sets `TCP_NODELAY` and hands the connection with its
/// permit to `on_conn`, until `shutdown` completes. Transient accept errors (EMFILE,
/// ECONNABORTED...) are logged and survived after a short pause.
pub async fn accept_loop(
    listener: &TcpListener,
    limit: &Arc<Semaphore>,
    shutdown: impl Future<Output = ()>,
    mut on_conn: impl FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit),
) {
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // the semaphore is never closed
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        on_conn(stream, peer, permit);
    }
}

/// Waits for the connections `graceful` watches to finish, at most `timeout`.
pub async fn drain(graceful: GracefulShutdown, timeout: Duration) {
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections drained"),
        () = tokio::time::sleep(timeout) => {
            tracing::warn!("drain timed out; closing remaining connections");
        }
    }
}

/// Returns the loopback address of a listener bound to port 0 (for tests and launchers).
pub async fn bind_ephemeral() -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
