//! Bad input: every kind gets a clear JSON error with the right status, and changes
//! nothing.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};

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
async fn an_oversized_chunked_body_is_413() {
    let stack = Stack::spawn().await;
    // No Content-Length: the limit must be enforced while reading.
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = (0..40)
        .map(|_| Ok(http_body::Frame::data(Bytes::from(vec![b'z'; 4096]))))
        .collect();
    let body = StreamBody::new(futures_util::stream::iter(chunks)).boxed();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::combinators::BoxBody<Bytes, std::io::Error>>();
    let req = Request::post(stack.url("/pastes/"))
        .header("content-type", "text/plain")
        .body(body)
        .unwrap();
    match client.request(req).await {
        Ok(resp) => assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE),
        // The server may answer and close before the client finished sending, and
        // the client then sees the connection end instead of the answer.
        Err(err) => assert!(!err.is_connect(), "{err:?}"),
    }
    let listed = stack.client.get(&stack.url("/pastes")).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 0);
    stack.shutdown().await;
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
        (Method::POST, "/pastes/AAAAAAAAAA", "GET, HEAD"),
        (Method::POST, "/healthz", "GET, HEAD"),
    ] {
        let resp = stack.client.send(method, &stack.url(path), None).await;
        resp.assert_error(StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.header("allow"), Some(allow), "{path}");
    }
    // HEAD works where GET does, without a body.
    let id = stack.create("head me").await;
    let req = Request::head(stack.url(&format!("/pastes/{id}")))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = stack.client.request(req).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(resp.body.is_empty());
    stack.shutdown().await;
}
