//! The HTTP suite: every endpoint and bad input, against a nosqlsvc started from a
//! config, so each backend can run it.

use std::collections::HashSet;
use std::time::Duration;

use http::{Method, StatusCode};
use nosqlsvc::Config;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::TestApp;
use super::client::{self, delete, get, new_client, post_json, post_raw, send_with};
use super::conformance::{MISSING, unicode_samples};

async fn insert(app: &TestApp, text: &str) -> String {
    let answer = post_json(&app.url("/texts"), &json!({ "text": text })).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let path = answer.json()["paste_path"].as_str().unwrap().to_owned();
    assert!(nosqlsvc::api::PastePath::is_valid(&path));
    path
}

pub async fn insert_get_delete(config: Config) {
    let app = TestApp::spawn(config).await;
    let path = insert(&app, "some text").await;

    let answer = get(&app.url(&format!("/texts/{path}"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/json");
    let doc: nosqlsvc::api::TextDoc = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(doc.paste_path.as_str(), path);
    assert_eq!(doc.text, "some text");

    get(&app.url(&format!("/texts/{MISSING}")))
        .await
        .assert_error(StatusCode::NOT_FOUND);

    let answer = delete(&app.url(&format!("/texts/{path}"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({ "deleted": true }));
    get(&app.url(&format!("/texts/{path}")))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    delete(&app.url(&format!("/texts/{path}")))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    app.stop().await.unwrap();
}

pub async fn batch_get(config: Config) {
    let app = TestApp::spawn(config).await;
    let url = app.url("/texts/batch");
    let a = insert(&app, "first").await;
    let b = insert(&app, "second").await;

    let answer = post_json(&url, &json!({ "paths": [b, MISSING, a] })).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({ "texts": ["second", null, "first"] }));

    let answer = post_json(&url, &json!({ "paths": [] })).await;
    assert_eq!(answer.json(), json!({ "texts": [] }));

    let max: Vec<&str> = std::iter::repeat_n(a.as_str(), 1000).collect();
    let answer = post_json(&url, &json!({ "paths": max })).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["texts"].as_array().unwrap().len(), 1000);

    let too_many: Vec<&str> = std::iter::repeat_n(a.as_str(), 1001).collect();
    post_json(&url, &json!({ "paths": too_many }))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    for bad in [
        json!({ "paths": [a, "bad.path"] }),
        json!({ "paths": [""] }),
        json!({ "paths": ["x".repeat(65)] }),
        json!({ "paths": [1] }),
        json!({ "paths": "abc" }),
        json!({}),
    ] {
        post_json(&url, &bad)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    post_raw(&url, b"{\"paths\": [")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    app.stop().await.unwrap();
}

pub async fn bad_inserts(config: Config) {
    let app = TestApp::spawn(config).await;
    let url = app.url("/texts");
    for body in [
        &b"{\"text\": "[..],
        b"not json",
        b"",
        b"{}",
        b"{\"text\": 5}",
        b"{\"text\": null}",
        b"{\"text\": [\"a\"]}",
        b"{\"text\": \"\"}",
        b"[\"text\"]",
        b"{\"text\": \"\xff\xfe\"}",
    ] {
        let answer = post_raw(&url, body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "body {:?}",
            String::from_utf8_lossy(body)
        );
        answer.assert_error(StatusCode::BAD_REQUEST);
    }
    app.stop().await.unwrap();
}

pub async fn body_over_limit(mut config: Config) {
    config.max_body_bytes = 1024;
    let app = TestApp::spawn(config).await;
    let url = app.url("/texts");

    let fits = serde_json::to_vec(&json!({ "text": "a".repeat(1024 - 11) })).unwrap();
    assert_eq!(fits.len(), 1024);
    assert_eq!(post_raw(&url, &fits).await.status, StatusCode::CREATED);

    let over = serde_json::to_vec(&json!({ "text": "a".repeat(1024 - 10) })).unwrap();
    post_raw(&url, &over)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    post_raw(&app.url("/texts/batch"), &vec![b' '; 5000])
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE);

    // Chunked, no Content-Length: the limit is enforced while reading.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let chunk = "a".repeat(800);
    let request = format!(
        "POST /texts HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
         {:x}\r\n{{\"text\":\"{chunk}\r\n{:x}\r\n{chunk}\"}}\r\n0\r\n\r\n",
        chunk.len() + 9,
        chunk.len() + 2
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(super::STEP, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "answer: {answer}");
    app.stop().await.unwrap();
}

pub async fn routing_errors(config: Config) {
    let app = TestApp::spawn(config).await;
    let c = new_client();
    for path in ["/", "/nope", "/texts/a/b", "/healthz/x", "/TEXTS"] {
        send_with(&c, Method::GET, &app.url(path), None)
            .await
            .assert_error(StatusCode::NOT_FOUND);
    }
    for (method, path, allow) in [
        (Method::GET, "/texts", "POST"),
        (Method::PUT, "/texts", "POST"),
        (Method::GET, "/texts/batch", "POST"),
        (Method::PUT, "/texts/abc", "GET, DELETE"),
        (Method::POST, "/texts/abc", "GET, DELETE"),
        (Method::POST, "/healthz", "GET"),
    ] {
        let answer = send_with(&c, method.clone(), &app.url(path), None).await;
        answer.assert_error(StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(answer.headers["allow"], allow, "{method} {path}");
    }
    let long = "x".repeat(65);
    for path in ["/texts/bad.path", "/texts/%41", &format!("/texts/{long}")] {
        send_with(&c, Method::GET, &app.url(path), None)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
        send_with(&c, Method::DELETE, &app.url(path), None)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    app.stop().await.unwrap();
}

pub async fn health_ok(config: Config) {
    let app = TestApp::spawn(config).await;
    let answer = get(&app.url("/healthz")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({ "status": "ok" }));
    app.stop().await.unwrap();
}

pub async fn unicode_over_http(config: Config) {
    let app = TestApp::spawn(config).await;
    let samples = unicode_samples();
    let mut paths = Vec::new();
    for text in &samples {
        let path = insert(&app, text).await;
        let answer = get(&app.url(&format!("/texts/{path}"))).await;
        assert_eq!(answer.json()["text"].as_str(), Some(text.as_str()));
        paths.push(path);
    }
    // A NUL written as a JSON escape by hand, not by serde.
    let answer = post_raw(&app.url("/texts"), br#"{"text": "a\u0000b \ud83d\ude00"}"#).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let path = answer.json()["paste_path"].as_str().unwrap().to_owned();
    let answer = get(&app.url(&format!("/texts/{path}"))).await;
    assert_eq!(answer.json()["text"], "a\0b 😀");

    let answer = post_json(&app.url("/texts/batch"), &json!({ "paths": paths })).await;
    let want: Vec<Value> = samples.into_iter().map(Value::String).collect();
    assert_eq!(answer.json()["texts"], Value::Array(want));
    app.stop().await.unwrap();
}

/// A 512 KiB text whose every byte is JSON-escaped (6 bytes each) fits the default limit.
pub async fn escaped_large_text(config: Config) {
    let app = TestApp::spawn(config).await;
    let text: String = (0..512 * 1024)
        .map(|i| char::from((i % 31 + 1) as u8))
        .collect();
    let mut body = String::from("{\"text\":\"");
    for ch in text.chars() {
        body.push_str(&format!("\\u{:04x}", ch as u32));
    }
    body.push_str("\"}");
    assert!(body.len() > 3 * 1024 * 1024);
    let answer = post_raw(&app.url("/texts"), body.as_bytes()).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let path = answer.json()["paste_path"].as_str().unwrap().to_owned();
    let answer = get(&app.url(&format!("/texts/{path}"))).await;
    assert_eq!(answer.json()["text"].as_str(), Some(text.as_str()));
    app.stop().await.unwrap();
}

/// A body of exactly the configured limit (8 MiB by default) is stored and read back
/// whole, alone and in a batch.
pub async fn text_at_body_limit(config: Config) {
    let limit = config.max_body_bytes;
    let app = TestApp::spawn(config).await;
    let text = "z".repeat(limit - 11);
    let body = serde_json::to_vec(&json!({ "text": text })).unwrap();
    assert_eq!(body.len(), limit);
    let answer = post_raw(&app.url("/texts"), &body).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let path = answer.json()["paste_path"].as_str().unwrap().to_owned();
    let answer = get(&app.url(&format!("/texts/{path}"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.json()["text"].as_str() == Some(text.as_str()),
        "text differs"
    );
    let answer = post_json(
        &app.url("/texts/batch"),
        &json!({ "paths": [path, MISSING] }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.json()["texts"][0].as_str() == Some(text.as_str()));
    // One byte more is `body_over_limit`'s job (with a small limit: an 8 MiB body the
    // server refuses early is cut off mid-send, a client error rather than a 413).
    app.stop().await.unwrap();
}

pub async fn concurrent_http_inserts(config: Config) {
    let app = TestApp::spawn(config).await;
    let c = new_client();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let c = c.clone();
            let url = app.url("/texts");
            tokio::spawn(async move {
                let text = format!("paste {i}");
                let body = serde_json::to_vec(&json!({ "text": text })).unwrap();
                let answer = send_with(&c, Method::POST, &url, Some(body)).await;
                assert_eq!(answer.status, StatusCode::CREATED);
                (
                    answer.json()["paste_path"].as_str().unwrap().to_owned(),
                    text,
                )
            })
        })
        .collect();
    let mut written = Vec::new();
    for t in tasks {
        written.push(t.await.unwrap());
    }
    let distinct: HashSet<&String> = written.iter().map(|(p, _)| p).collect();
    assert_eq!(distinct.len(), 200);
    let paths: Vec<&String> = written.iter().map(|(p, _)| p).collect();
    let answer = post_json(&app.url("/texts/batch"), &json!({ "paths": paths })).await;
    let texts = answer.json()["texts"].clone();
    for (i, (_, text)) in written.iter().enumerate() {
        assert_eq!(texts[i].as_str(), Some(text.as_str()));
    }
    app.stop().await.unwrap();
}

pub async fn persists_across_restart(config: Config) {
    let app = TestApp::spawn(config.clone()).await;
    let path = insert(&app, "still here after a restart ✓").await;
    let gone = insert(&app, "deleted before the restart").await;
    assert_eq!(
        delete(&app.url(&format!("/texts/{gone}"))).await.status,
        StatusCode::OK
    );
    app.stop().await.unwrap();

    let app = TestApp::spawn(config).await;
    let answer = get(&app.url(&format!("/texts/{path}"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["text"], "still here after a restart ✓");
    get(&app.url(&format!("/texts/{gone}")))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    app.stop().await.unwrap();
}

/// 200 clients send a POST and hang up a few milliseconds later, mid-request or while
/// their insert waits for the group commit; the server and its writer keep working.
pub async fn survives_clients_hanging_up(config: Config) {
    let app = TestApp::spawn(config).await;
    let c = new_client();
    let text = "h".repeat(64 * 1024);
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let c = c.clone();
            let url = app.url("/texts");
            let body = serde_json::to_vec(&json!({ "text": text })).unwrap();
            tokio::spawn(async move {
                let wait = Duration::from_millis(1 + i % 8);
                let _ =
                    tokio::time::timeout(wait, send_with(&c, Method::POST, &url, Some(body))).await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Still serving, and the writer still commits.
    let answer = get(&app.url("/healthz")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let path = insert(&app, "after the hang-ups").await;
    let answer = client::get(&app.url(&format!("/texts/{path}"))).await;
    assert_eq!(answer.json()["text"], "after the hang-ups");
    app.stop().await.unwrap();
}

/// Clients that announce a body and close before sending it all.
pub async fn survives_truncated_bodies(config: Config) {
    let app = TestApp::spawn(config).await;
    for _ in 0..50 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(
                b"POST /texts HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{\"text\": \"abc",
            )
            .await
            .unwrap();
        drop(stream);
    }
    let path = insert(&app, "after truncated bodies").await;
    assert_eq!(
        get(&app.url(&format!("/texts/{path}"))).await.status,
        StatusCode::OK
    );
    app.stop().await.unwrap();
}

/// The sweeper's endpoints and `/metrics`, with their bad inputs.
pub async fn sweep_endpoints(config: Config) {
    let app = TestApp::spawn(config).await;
    let a = insert(&app, "kept").await;
    let b = insert(&app, "orphan").await;
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let answer = get(&app.url(&format!("/texts/unsettled?before={later}&limit=1000"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    let listed: Vec<String> = serde_json::from_value(answer.json()["paths"].clone()).unwrap();
    assert!(listed.contains(&a) && listed.contains(&b), "{listed:?}");

    let answer = post_json(&app.url("/texts/settle"), &json!({ "paths": [a] })).await;
    assert_eq!(answer.json(), json!({ "affected": 1 }));
    let answer = post_json(&app.url("/texts/delete"), &json!({ "paths": [b, MISSING] })).await;
    assert_eq!(answer.json(), json!({ "affected": 1 }));
    get(&app.url(&format!("/texts/{b}")))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    let answer = get(&app.url(&format!("/texts/unsettled?before={later}"))).await;
    assert_eq!(answer.json(), json!({ "paths": [] }));

    let answer = get(&app.url("/metrics")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    assert!(text.contains("\npastebin_texts 1\n"), "{text}");
    assert!(
        text.contains("\npastebin_sweeper_texts_deleted_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("\npastebin_sweeper_texts_settled_total 1\n"),
        "{text}"
    );

    for bad in [
        "/texts/unsettled",
        "/texts/unsettled?before=x",
        "/texts/unsettled?before=1&limit=0",
    ] {
        get(&app.url(bad))
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    post_json(&app.url("/texts/delete"), &json!({ "paths": ["a/b"] }))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    let too_many: Vec<String> = (0..1001).map(|i| format!("p{i}")).collect();
    post_json(&app.url("/texts/settle"), &json!({ "paths": too_many }))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    get(&app.url("/texts/delete"))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED);
    app.stop().await.unwrap();
}
