//! Stage 1: a correct round-robin reverse proxy (distribution, headers, streaming,
//! size limit, 502/503/504, connection reuse, admin endpoints, graceful shutdown).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use testkit::eventually;

use crate::support::*;

#[tokio::test]
async fn round_robin_spreads_requests_evenly() {
    let a = FakeBackend::start("a").await;
    let b = FakeBackend::start("b").await;
    let c = FakeBackend::start("c").await;
    let lb = TestLb::start(test_config(&[&a, &b, &c])).await;
    let client = client();
    let mut order = vec![];
    for i in 0..30 {
        let answer = get(&client, &lb.url(&format!("/pastes/{i}"))).await;
        assert_eq!(answer.status, StatusCode::OK);
        order.push(answer.backend());
    }
    assert_eq!((a.hits(), b.hits(), c.hits()), (10, 10, 10));
    // Strict rotation: every window of three holds each backend once.
    for window in order.chunks(3) {
        let mut w = window.to_vec();
        w.sort();
        assert_eq!(w, ["a", "b", "c"], "{order:?}");
    }
    // The path and query reach the webserver unchanged.
    assert_eq!(a.seen()[0].path, "/pastes/0");
    lb.stop().await;
}

#[tokio::test]
async fn forwarded_headers_are_set_and_hop_by_hop_headers_stripped_both_ways() {
    let a = FakeBackend::start("a").await;
    let lb = TestLb::start(test_config(&[&a])).await;
    let client = client();
    let req = Request::get(lb.url("/pastes?page=2"))
        .header("host", "paste.example:8080")
        .header("x-forwarded-for", "10.1.2.3")
        .header("x-forwarded-proto", "https")
        .header("connection", "keep-alive, x-private")
        .header("x-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("trailer", "x-checksum")
        .header("x-end-to-end", "yes")
        .body(body(Bytes::new()))
        .unwrap();
    let answer = send(&client, req).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);

    let seen = &a.seen()[0];
    let h = &seen.headers;
    // The client is no trusted proxy: its own X-Forwarded-For is replaced.
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "paste.example:8080");
    assert_eq!(h["host"], "paste.example:8080");
    assert_eq!(h["x-end-to-end"], "yes");
    for hop in [
        "x-private",
        "keep-alive",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert!(h.get(hop).is_none(), "{hop} reached the webserver: {h:?}");
    }
    // `connection` is only what the balancer's own client may add, never the client's.
    assert!(
        h.get_all("connection")
            .iter()
            .all(|v| !v.to_str().unwrap().contains("x-private")),
        "{h:?}"
    );
    assert_eq!(seen.path, "/pastes?page=2");

    let h = &answer.headers;
    assert_eq!(h["x-end-to-end"], "kept");
    for hop in [
        "x-hop-secret",
        "keep-alive",
        "proxy-authenticate",
        "upgrade",
    ] {
        assert!(h.get(hop).is_none(), "{hop} reached the client: {h:?}");
    }
    assert!(
        h.get_all("connection")
            .iter()
            .all(|v| !v.to_str().unwrap().contains("x-hop-secret")),
        "{h:?}"
    );
    lb.stop().await;
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let a = FakeBackend::start("a").await;
    let mut config = test_config(&[&a]);
    config.max_body_bytes = 16 * 1024 * 1024;
    let lb = TestLb::start(config).await;
    let client = client();

    // 6 MB response.
    let answer = get(&client, &lb.url("/big?6000000")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body.len(), 6_000_000);

    // 5 MB request echoed back.
    let payload: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let req = Request::post(lb.url("/echo"))
        .body(body(payload.clone()))
        .unwrap();
    let answer = send(&client, req).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body == payload, "echoed body differs");

    // Streaming, not buffering: the first chunk comes back before the rest is sent.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, BoxError>(Frame::data(chunk)), rx))
    });
    let req = Request::post(lb.url("/echo"))
        .body(StreamBody::new(stream).boxed())
        .unwrap();
    tx.send(Bytes::from_static(b"first chunk")).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), client.hyper().request(req))
        .await
        .unwrap()
        .unwrap();
    let mut resp_body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(30), resp_body.frame())
        .await
        .expect("first chunk not streamed back while the request is open")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first chunk");
    tx.send(Bytes::from_static(b"second")).await.unwrap();
    drop(tx);
    let rest = tokio::time::timeout(Duration::from_secs(30), resp_body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "second");
    lb.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_at_the_edge() {
    let a = FakeBackend::start("a").await;
    let mut config = test_config(&[&a]);
    config.max_body_bytes = 1024 * 1024;
    let lb = TestLb::start(config).await;

    // A declared length over the limit: 413 before any byte of body, no backend call.
    let mut stream = tokio::net::TcpStream::connect(lb.addr).await.unwrap();
    stream
        .write_all(b"POST /pastes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.contains("application/json") && text.contains("\"error\""),
        "{text}"
    );
    assert_eq!(a.hits(), 0);

    // A chunked body over the limit (no length announced): cut while it is read, a
    // 413 to the client, and the webserver never gets a complete 2 MB body.
    let request = testkit::raw::request(
        "POST",
        "/pastes",
        &[("Transfer-Encoding", "chunked")],
        &testkit::raw::chunked(2 * 1024 * 1024, 65536),
    );
    let answer = testkit::raw::exchange(lb.addr, &request).await;
    answer.assert_error(413);
    assert_eq!(answer.json()["error"], "request body too large");
    assert!(a.seen().iter().all(|s| s.body_len < 2 * 1024 * 1024));
    let client = client();

    // Under the limit is fine.
    let req = Request::post(lb.url("/pastes"))
        .body(body(vec![b'y'; 500_000]))
        .unwrap();
    let answer = send(&client, req).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["body_len"], 500_000);
    lb.stop().await;
}

#[tokio::test]
async fn a_dead_backend_gives_a_quick_502() {
    let dead = Refusing::new();
    let mut config = lb::Config::new(vec![dead.authority()]);
    // Quick means "on the refusal", not "after the connect timeout": with a connect
    // timeout far longer than the client waits, only the refusal can produce the 502.
    // (Nested, as the balancer requires: connect < response < retry budget.)
    config.connect_timeout = Duration::from_secs(600);
    config.response_timeout = Duration::from_secs(1200);
    config.retry.budget = Duration::from_secs(2400);
    let lb = TestLb::start(config).await;
    let client = client();
    let answer = client
        .request_within(
            Request::get(lb.url("/pastes/x"))
                .body(body(Bytes::new()))
                .unwrap(),
            Duration::from_secs(60),
        )
        .await
        .expect("a refused connection must be answered at once");
    answer.assert_error(StatusCode::BAD_GATEWAY);
    assert_eq!(answer.json()["error"], "bad gateway");
    // Ejected now: the balancer says so at once instead of trying again.
    let answer = get(&client, &lb.url("/pastes/x")).await;
    assert!(
        [StatusCode::BAD_GATEWAY, StatusCode::SERVICE_UNAVAILABLE].contains(&answer.status),
        "{}",
        answer.status
    );
    lb.stop().await;
}

#[tokio::test]
async fn a_hung_backend_gives_504_within_the_timeout() {
    let a = FakeBackend::start("a").await;
    a.set(Behaviour::Hang);
    let config = test_config(&[&a]);
    let timeout = config.response_timeout;
    let lb = TestLb::start(config).await;
    let client = client();
    let started = Instant::now();
    let answer = get(&client, &lb.url("/pastes/x")).await;
    let elapsed = started.elapsed();
    // The backend never answers, so a 504 can only come from the response timeout
    // (the client waits far longer); and a timer never fires early.
    answer.assert_error(StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.json()["error"], "gateway timeout");
    assert!(elapsed >= timeout, "{elapsed:?}");
    lb.stop().await;
}

/// Sends the headers of a POST with `Content-Length: 1000` and only 10 bytes of body.
async fn stalled_post(lb: &TestLb) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(lb.addr).await.unwrap();
    stream
        .write_all(b"POST /pastes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n0123456789")
        .await
        .unwrap();
    stream
}

#[tokio::test]
async fn a_stalled_upload_gets_408_and_the_webserver_is_not_blamed() {
    let a = FakeBackend::start("a").await;
    let config = test_config(&[&a]);
    let idle = config.request_body_idle_timeout;
    assert!(idle > config.response_timeout * 2);
    let lb = TestLb::start(config).await;
    let client = client();

    let mut stream = stalled_post(&lb).await;
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buf))
        .await
        .expect("no answer to a stalled upload")
        .unwrap();
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&buf[..n]);
    // A 408 after the body idle timeout (a timer never fires early), not a 504 after
    // the response timeout.
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.contains("application/json") && text.contains("\"error\""),
        "{text}"
    );
    assert!(elapsed >= idle, "{elapsed:?}");

    // The webserver is still in, with no error counted, and gets the next request.
    let status = status(&client, &lb).await;
    assert!(available(&status, &a), "{status}");
    assert_eq!(status["backends"][0]["errors"], 0, "{status}");
    assert_eq!(status["backends"][0]["ejections"], 0, "{status}");
    let answer = get(&client, &lb.url("/pastes/x")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.backend(), "a");
    let metrics = get(&client, &lb.url("/_lb/metrics")).await;
    let metrics = String::from_utf8_lossy(&metrics.body);
    assert!(
        metrics.contains("lb_errors_total{kind=\"client_timeout\"} 1"),
        "{metrics}"
    );
    lb.stop().await;
}

#[tokio::test]
async fn stalled_uploads_cannot_eject_every_webserver() {
    let a = FakeBackend::start("a").await;
    let b = FakeBackend::start("b").await;
    let config = test_config(&[&a, &b]);
    let response_timeout = config.response_timeout;
    let lb = TestLb::start(config).await;
    let client = client();
    let mut stalled = vec![];
    for _ in 0..4 {
        stalled.push(stalled_post(&lb).await);
    }
    // Let the response timeout pass while every upload is still stalled. (A wait for
    // something that must NOT happen: there is no event to poll for.)
    tokio::time::sleep(response_timeout * 2).await;
    let status = status(&client, &lb).await;
    assert!(available(&status, &a) && available(&status, &b), "{status}");
    for backend in status["backends"].as_array().unwrap() {
        assert_eq!(backend["ejections"], 0, "{status}");
        assert_eq!(backend["errors"], 0, "{status}");
    }
    for _ in 0..4 {
        assert_eq!(
            get(&client, &lb.url("/pastes/x")).await.status,
            StatusCode::OK
        );
    }
    drop(stalled);
    lb.stop().await;
}

#[tokio::test]
async fn a_slow_but_steady_upload_is_answered() {
    // Sending the body takes longer than the response timeout, with pauses under the
    // body idle timeout: the webserver answers once it has the whole body.
    let a = FakeBackend::start("a").await;
    let config = test_config(&[&a]);
    let response_timeout = config.response_timeout;
    let lb = TestLb::start(config).await;
    let mut stream = tokio::net::TcpStream::connect(lb.addr).await.unwrap();
    stream
        .write_all(
            b"POST /pastes HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    for _ in 0..3 {
        stream.write_all(b"0123456789").await.unwrap();
        tokio::time::sleep(response_timeout.mul_f64(0.8)).await;
    }
    let mut answer = vec![];
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"body_len\":30"), "{text}");
    lb.stop().await;
}

#[tokio::test]
async fn no_backend_gives_503() {
    let lb = TestLb::start(lb::Config::new(vec![])).await;
    let client = client();
    let answer = get(&client, &lb.url("/pastes")).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json()["error"], "no healthy webserver");
    // The balancer's own answers say nosniff like every webserver answer does.
    assert_eq!(answer.headers["x-content-type-options"], "nosniff");
    lb.stop().await;
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let a = FakeBackend::start("a").await;
    let b = FakeBackend::start("b").await;
    let lb = TestLb::start(test_config(&[&a, &b])).await;
    let client = client();
    for i in 0..200 {
        let answer = get(&client, &lb.url(&format!("/pastes/{i}"))).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    // Also a few POSTs with bodies.
    for _ in 0..20 {
        let req = Request::post(lb.url("/pastes"))
            .body(body("{\"text\":\"hi\"}"))
            .unwrap();
        assert_eq!(send(&client, req).await.unwrap().status, StatusCode::OK);
    }
    assert_eq!(a.hits() + b.hits(), 220);
    // One connection for requests and perhaps one more for a concurrent health check.
    assert!(
        a.connections() <= 3,
        "a saw {} connections",
        a.connections()
    );
    assert!(
        b.connections() <= 3,
        "b saw {} connections",
        b.connections()
    );
    lb.stop().await;
}

#[tokio::test]
async fn admin_endpoints_live_under_their_own_prefix() {
    let a = FakeBackend::start("a").await;
    let lb = TestLb::start(test_config(&[&a])).await;
    let client = client();

    let health = get(&client, &lb.url("/_lb/healthz")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(health.headers["x-content-type-options"], "nosniff");

    get(&client, &lb.url("/pastes/1")).await;
    let status = get(&client, &lb.url("/_lb/status")).await;
    assert_eq!(status.headers["x-content-type-options"], "nosniff");
    let status = status.json();
    assert_eq!(status["backends"][0]["addr"], a.authority());
    assert_eq!(status["backends"][0]["up"], true);
    assert!(status["backends"][0]["requests"].as_u64().unwrap() >= 1);

    for path in ["/metrics", "/_lb/metrics"] {
        let metrics = get(&client, &lb.url(path)).await;
        assert_eq!(metrics.status, StatusCode::OK);
        assert!(
            metrics.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert_eq!(metrics.headers["x-content-type-options"], "nosniff");
        let text = String::from_utf8(metrics.body.to_vec()).unwrap();
        let line = format!("lb_backend_up{{backend=\"{}\"}} 1", a.authority());
        assert!(text.contains(&line), "{text}");
        assert!(
            text.contains("lb_backend_response_seconds_bucket"),
            "{text}"
        );
    }

    let req = Request::builder()
        .method(Method::POST)
        .uri(lb.url("/_lb/status"))
        .body(body(Bytes::new()))
        .unwrap();
    let wrong = send(&client, req).await.unwrap();
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.headers["allow"], "GET, HEAD");
    assert!(wrong.json()["error"].is_string());
    assert_eq!(wrong.headers["x-content-type-options"], "nosniff");

    let missing = get(&client, &lb.url("/_lb/nothing")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.json()["error"].is_string());
    assert_eq!(missing.headers["x-content-type-options"], "nosniff");

    // The webserver's own /healthz is forwarded like any other path.
    let checks = a.health_checks();
    let forwarded = get(&client, &lb.url("/healthz")).await;
    assert_eq!(forwarded.status, StatusCode::OK);
    assert!(a.health_checks() > checks);
    // A proxied answer is passed on as the webserver sent it: the balancer adds
    // nothing to it (the webservers set nosniff themselves; this fake one does not).
    assert!(forwarded.headers.get("x-content-type-options").is_none());
    lb.stop().await;
}

#[tokio::test]
async fn shutdown_drains_requests_in_flight() {
    let a = FakeBackend::start("a").await;
    a.set(Behaviour::Slow(Duration::from_millis(300)));
    let mut config = test_config(&[&a]);
    // Long enough for the slow answer on a busy machine: this is about draining, not
    // about the drain's bound.
    config.server.drain_timeout = Duration::from_secs(30);
    let lb = TestLb::start(config).await;
    let client = client();
    let url = lb.url("/pastes/slow");
    let request = tokio::spawn({
        let client = client.clone();
        async move { get(&client, &url).await }
    });
    // Stop once the request is in flight at the webserver.
    eventually("the slow request reaches the webserver", || async {
        a.hits() == 1
    })
    .await;
    lb.stop().await;
    let answer = request.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
}
