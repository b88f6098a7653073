//! Bad input: every kind gets a clear JSON error with the right status, and changes
//! nothing.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use testkit::raw;

use crate::helpers::{MAX_BODY, Stack};

#[tokio::test]
async fn bad_bodies_are_rejected_and_store_nothing() {
    let stack = Stack::spawn().await;
    let cases: Vec<(&str, Bytes, StatusCode)> = vec![
        (
            "application/json",
            "{not json".into(),
            StatusCode::BAD_REQUEST,
        ),
        ("application/json", "{}".into(), StatusCode::BAD_REQUEST),
        (
            "application/json",
            r#"{"text": 42}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            r#"{"text": null}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            r#"["text"]"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            r#"{"text": ""}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            r#"{"text": "x", "expires_in": 0}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            r#"{"text": "x", "expires_in": -5}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            r#"{"text": "x", "expires_in": "soon"}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            Bytes::from_static(b"{\"text\": \"\xff\xfe\"}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "text/plain",
            Bytes::from_static(b"caf\xe9"),
            StatusCode::BAD_REQUEST,
        ),
        ("text/plain", Bytes::new(), StatusCode::BAD_REQUEST),
        (
            "application/xml",
            "<text/>".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "multipart/form-data; boundary=x",
            "--x\r\n".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        // The home page's form without JavaScript: bad encoding, no text, bad expiry.
        (
            "application/x-www-form-urlencoded",
            "text=%zz".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/x-www-form-urlencoded",
            "expires_in=60".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/x-www-form-urlencoded",
            "text=x&expires_in=0".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "text/plain",
            Bytes::from(vec![b'a'; MAX_BODY + 1]),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (content_type, body, status) in cases {
        let resp = stack
            .client
            .send(
                Method::POST,
                &stack.url("/pastes/"),
                Some((content_type, body.clone())),
            )
            .await;
        assert_eq!(
            resp.status,
            status,
            "{content_type} {body:?}: {}",
            resp.text()
        );
        resp.assert_error(status);
        // The webserver itself, not only the balancer in front, refuses it the same way.
        let direct = stack
            .client
            .send(
                Method::POST,
                &stack.web_url("/pastes/"),
                Some((content_type, body.clone())),
            )
            .await;
        direct.assert_error(status);
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is unread: both close the connection and say so, or
            // a client reuses it and its next request fails (it did, now and then).
            assert_eq!(resp.header("connection"), Some("close"));
            assert_eq!(direct.header("connection"), Some("close"));
        }
    }
    let resp = stack
        .client
        .send(
            Method::POST,
            &stack.url("/pastes/?expires_in=soon"),
            Some(("text/plain", "x".into())),
        )
        .await;
    resp.assert_error(StatusCode::BAD_REQUEST);

    let listed = stack.client.get(&stack.url("/pastes")).await.json();
    assert_eq!(
        listed.as_array().unwrap().len(),
        0,
        "a bad request stored something"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn an_oversized_chunked_body_is_413_from_the_balancer_and_from_the_webserver() {
    let stack = Stack::spawn().await;
    // No Content-Length: the limit must be enforced while reading. Through the
    // balancer (which answers first), then straight to a webserver (its own limit).
    let request = raw::request(
        "POST",
        "/pastes/",
        &[
            ("Content-Type", "text/plain"),
            ("Transfer-Encoding", "chunked"),
        ],
        &raw::chunked(MAX_BODY + 4096, 4096),
    );
    for addr in [stack.lb.addr, stack.webs[0].addr] {
        let answer = raw::exchange(addr, &request).await;
        answer.assert_error(413);
    }
    // A declared length over the limit, straight to the webserver: refused before the
    // body is read.
    let declared = raw::request(
        "POST",
        "/pastes/",
        &[
            ("Content-Type", "text/plain"),
            ("Content-Length", &(MAX_BODY + 1).to_string()),
        ],
        b"",
    );
    raw::exchange(stack.webs[0].addr, &declared)
        .await
        .assert_error(413);
    assert!(
        stack.listed().await.is_empty(),
        "an oversized body was stored"
    );
    stack.shutdown().await;
}

/// A webserver alone, its stores never reached (the body never arrives).
#[tokio::test(start_paused = true)]
async fn a_stalled_body_is_408_from_the_webserver_itself() {
    // Paused time: the webserver's 30 s body-read limit passes at once, since the
    // test, the webserver and the client all run on this runtime.
    let sqlsvc = testkit::Refusing::new();
    let nosqlsvc = testkit::Refusing::new();
    let config = web::Config::new(sqlsvc.authority(), nosqlsvc.authority());
    let mut web = testkit::spawn::spawn(move |listener, shutdown| async move {
        web::run(listener, config, shutdown).await.unwrap();
    });
    let stalled = raw::request(
        "POST",
        "/pastes/",
        &[("Content-Type", "text/plain"), ("Content-Length", "1000")],
        b"only ten b",
    );
    // The client side waits (in paused time) well past the server's limit, and keeps
    // its half open: the answer must come from the server's own timer.
    let answer = raw::exchange_within(web.addr, &stalled, Duration::from_secs(600)).await;
    answer.assert_error(408);
    web.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let stack = Stack::spawn().await;
    stack
        .client
        .get(&stack.url("/nothing/here"))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    stack
        .client
        .get(&stack.url("/pastes/AAAAAAAAAA/extra"))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    for (method, path, allow) in [
        (Method::DELETE, "/pastes", "GET, HEAD, POST"),
        (Method::PUT, "/pastes/", "GET, HEAD, POST"),
        (Method::POST, "/pastes/AAAAAAAAAA", "GET, HEAD, DELETE"),
        (Method::POST, "/pastes/AAAAAAAAAA/stats", "GET, HEAD"),
        (Method::POST, "/healthz", "GET, HEAD"),
    ] {
        let resp = stack.client.send(method, &stack.url(path), None).await;
        resp.assert_error(StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.header("allow"), Some(allow), "{path}");
    }
    stack.shutdown().await;
}

/// HEAD answers what GET answers (status, content type, length), and not one byte of
/// body: read from the socket, where a client library would hide a stray body.
#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let stack = Stack::spawn().await;
    let id = stack.create("head me").await;
    let paths = [
        format!("/pastes/{id}"),
        format!("/pastes/{id}/raw"),
        "/pastes".to_owned(),
        "/pastes/AAAAAAAAAA".to_owned(),
        "/healthz".to_owned(),
        "/".to_owned(),
    ];
    for addr in [stack.lb.addr, stack.webs[0].addr] {
        for path in &paths {
            let get = raw::exchange(addr, &raw::request("GET", path, &[], b"")).await;
            let head = raw::exchange(addr, &raw::request("HEAD", path, &[], b"")).await;
            assert_eq!(head.status(), get.status(), "{addr}{path}");
            assert!(
                head.body().is_empty(),
                "HEAD {addr}{path} sent a body: {:?}",
                head.body_text()
            );
            assert!(!get.body().is_empty(), "GET {addr}{path}");
            assert_eq!(
                head.header("content-type"),
                get.header("content-type"),
                "{addr}{path}"
            );
            if path != "/healthz" {
                // (healthz reports the answering webserver, so its length may differ
                // between two webservers behind the balancer.)
                assert_eq!(
                    head.header("content-length"),
                    get.header("content-length"),
                    "{addr}{path}"
                );
            }
        }
    }
    stack.shutdown().await;
}
