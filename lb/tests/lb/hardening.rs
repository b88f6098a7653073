//! What a hostile test of the stack broke in the balancer: a slow webserver ejected
//! for a timeout, forwarding headers believed from anyone, framing it does not
//! implement, and requests without a usable host.

use std::time::Duration;

use http::{Method, Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// Sends `raw` on a fresh connection and reads the whole answer (the balancer closes
/// after `Connection: close`).
async fn raw_exchange(lb: &TestLb, raw: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(lb.addr).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("no answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_slow_webserver_that_passes_its_health_checks_is_never_ejected() {
    let a = FakeBackend::start("a").await;
    let config = test_config(&[&a]);
    let slow = config.response_timeout * 2;
    a.set(Behaviour::Slow(slow));
    let lb = TestLb::start(config).await;
    let client = client();
    for _ in 0..3 {
        let answer = get(&client, &lb.url("/pastes/x")).await;
        assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(answer.json()["error"], "gateway timeout");
    }
    let status = status(&client, &lb).await;
    assert_eq!(status["backends"][0]["ejections"], 0, "{status}");
    assert!(available(&status, &a), "{status}");
    // The next request is served at once: no "no healthy webserver".
    a.set(Behaviour::Normal);
    let answer = get(&client, &lb.url("/pastes/x")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.backend(), "a");
    lb.stop().await;
}

/// A webserver whose accept backlog is full (too busy to take connections: connects
/// to it time out) is slow, not gone. Before, the balancer ejected it like one that
/// refused connections: with one webserver left, every request then got a 503
/// `no_backend` for the whole ejection, although the webserver was serving.
#[tokio::test]
async fn a_webserver_too_busy_to_take_connections_is_not_ejected() {
    // A listener with the shortest backlog, never accepting, filled until a connect
    // times out: from then on the kernel drops new connection attempts.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let _listener = socket.listen(0).unwrap();
    let mut held = Vec::new();
    loop {
        assert!(held.len() < 64, "the backlog never filled");
        let connect = tokio::net::TcpStream::connect(addr);
        match tokio::time::timeout(Duration::from_millis(200), connect).await {
            Ok(stream) => held.push(stream.unwrap()),
            Err(_) => break,
        }
    }
    let mut config = lb::Config::new(vec![addr.to_string()]);
    let defaults = test_config(&[]);
    config.connect_timeout = defaults.connect_timeout;
    config.response_timeout = defaults.response_timeout;
    config.ejection = defaults.ejection;
    config.retry.budget = defaults.retry.budget;
    config.server.drain_timeout = defaults.server.drain_timeout;
    // Only the passive path is under test: no health check fails it meanwhile.
    config.health.interval = Duration::from_secs(3600);
    let lb = TestLb::start(config).await;
    let client = client();
    for _ in 0..2 {
        let answer = get(&client, &lb.url("/pastes/x")).await;
        answer.assert_error(StatusCode::BAD_GATEWAY);
    }
    let status = status(&client, &lb).await;
    let backend = &status["backends"][0];
    assert!(backend["errors"].as_u64().unwrap() >= 2, "{status}");
    assert_eq!(backend["ejections"], 0, "{status}");
    assert_eq!(backend["available"], true, "{status}");
    lb.stop().await;
}

#[tokio::test]
async fn a_client_s_own_forwarding_headers_are_replaced() {
    let a = FakeBackend::start("a").await;
    let lb = TestLb::start(test_config(&[&a])).await;
    let client = client();
    let req = Request::builder()
        .uri(lb.url("/pastes/x"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-real-ip", "203.0.113.9")
        .header("forwarded", "for=203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .body(body(""))
        .unwrap();
    assert_eq!(send(&client, req).await.unwrap().status, StatusCode::OK);
    let seen = a.seen().pop().unwrap();
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], lb.addr.to_string());
    assert!(seen.headers.get("x-real-ip").is_none());
    assert!(seen.headers.get("forwarded").is_none());
    lb.stop().await;
}

#[tokio::test]
async fn a_trusted_proxy_s_forwarding_headers_are_kept() {
    let a = FakeBackend::start("a").await;
    let mut config = test_config(&[&a]);
    config.trusted_proxies = vec!["127.0.0.0/8".into()];
    let lb = TestLb::start(config).await;
    let client = client();
    let req = Request::builder()
        .uri(lb.url("/pastes/x"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-real-ip", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .body(body(""))
        .unwrap();
    assert_eq!(send(&client, req).await.unwrap().status, StatusCode::OK);
    let seen = a.seen().pop().unwrap();
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(seen.headers["x-real-ip"], "203.0.113.9");
    lb.stop().await;
}

#[tokio::test]
async fn unimplemented_transfer_codings_get_501() {
    let a = FakeBackend::start("a").await;
    let lb = TestLb::start(test_config(&[&a])).await;
    let answer = raw_exchange(
        &lb,
        "POST /pastes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nx-content-type-options: nosniff\r\n"),
        "{answer}"
    );
    assert_eq!(a.hits(), 0);
    lb.stop().await;
}

#[tokio::test]
async fn host_headers_follow_rfc_9112() {
    let a = FakeBackend::start("a").await;
    let lb = TestLb::start(test_config(&[&a])).await;
    for (why, raw) in [
        (
            "HTTP/1.1 without Host",
            "GET /pastes/x HTTP/1.1\r\nConnection: close\r\n\r\n",
        ),
        (
            "two Hosts",
            "GET /pastes/x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        ),
        (
            "HTTP/1.0 without Host, no public host",
            "GET /pastes/x HTTP/1.0\r\n\r\n",
        ),
        (
            "an empty Host",
            "GET /pastes/x HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
        ),
    ] {
        let answer = raw_exchange(&lb, raw).await;
        assert!(answer.contains(" 400 "), "{why}: {answer}");
        assert!(answer.contains("\"error\""), "{why}: {answer}");
    }
    assert_eq!(a.hits(), 0);
    lb.stop().await;

    // With a public host of its own, the balancer names it instead.
    let mut config = test_config(&[&a]);
    config.fallback_host = Some("paste.example:8080".into());
    let lb = TestLb::start(config).await;
    for raw in [
        "GET /pastes/x HTTP/1.0\r\n\r\n",
        "GET /pastes/x HTTP/1.1\r\nHost: a.example/path\r\nConnection: close\r\n\r\n",
        "GET /pastes/x HTTP/1.1\r\nHost: a.example\r\nConnection: close, Host\r\n\r\n",
    ] {
        let answer = raw_exchange(&lb, raw).await;
        assert!(answer.contains(" 200 "), "{raw:?}: {answer}");
        let seen = a.seen().pop().unwrap();
        let expected = if raw.contains("Host: a.example\r") {
            "a.example"
        } else {
            "paste.example:8080"
        };
        assert_eq!(seen.headers["x-forwarded-host"], expected, "{raw:?}");
    }
    lb.stop().await;
}

#[tokio::test]
async fn too_many_headers_are_refused_at_the_edge() {
    let a = FakeBackend::start("a").await;
    let lb = TestLb::start(test_config(&[&a])).await;
    let mut raw = String::from("GET /pastes/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..httpkit::framing::MAX_HEADERS {
        raw.push_str(&format!("x-h{i}: 1\r\n"));
    }
    raw.push_str("\r\n");
    let answer = raw_exchange(&lb, &raw).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(a.hits(), 0);
    let _ = Method::GET;
    lb.stop().await;
}

/// Reads until the balancer closes the connection (within a minute); returns what
/// it sent.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut buf))
        .await
        .expect("the balancer did not close the connection")
        .ok();
    String::from_utf8_lossy(&buf).into_owned()
}

fn short_head_timeout(a: &FakeBackend) -> lb::Config {
    let mut config = test_config(&[a]);
    config.server.header_read_timeout = Duration::from_millis(300);
    config
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_cut_off() {
    let a = FakeBackend::start("a").await;
    let lb = TestLb::start(short_head_timeout(&a)).await;
    let mut stream = tokio::net::TcpStream::connect(lb.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Nothing else would close it: the header read timeout did.
    let answer = read_until_closed(&mut stream).await;
    assert_eq!(answer, "");
    lb.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_answers() {
    let a = FakeBackend::start("a").await;
    let lb = TestLb::start(short_head_timeout(&a)).await;
    let mut stream = tokio::net::TcpStream::connect(lb.addr).await.unwrap();
    // Two requests on the connection, then silence.
    for _ in 0..2 {
        stream
            .write_all(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    assert_eq!(read_until_closed(&mut stream).await, "");
    lb.stop().await;
}

#[tokio::test]
async fn an_answer_slower_than_the_head_timeout_is_not_cut() {
    let a = FakeBackend::start("a").await;
    let mut config = short_head_timeout(&a);
    // The webserver takes three head timeouts to answer; the response timeout allows it.
    let slow = config.server.header_read_timeout * 3;
    config.response_timeout = slow * 4;
    config.retry.budget = slow * 8;
    // Its health checks are as slow: they must pass, or it would go down meanwhile.
    config.health.timeout = slow * 4;
    a.set(Behaviour::Slow(slow));
    let lb = TestLb::start(config).await;
    let answer = raw_exchange(
        &lb,
        "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    lb.stop().await;
}
