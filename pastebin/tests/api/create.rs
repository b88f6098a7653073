//! Creating pastes: JSON and plain-text bodies, links, expiry.

use http::{Method, StatusCode};

use crate::helpers::{MAX_BODY, Stack};

fn is_id(s: &str) -> bool {
    s.len() == 10 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[tokio::test]
async fn json_create_answers_201_with_id_url_and_location() {
    let stack = Stack::spawn().await;
    for path in ["/pastes/", "/pastes"] {
        let resp = stack
            .client
            .send(
                Method::POST,
                &stack.url(path),
                Some((
                    "application/json",
                    r#"{"text": "this is a new paste"}"#.into(),
                )),
            )
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
        let body = resp.json();
        let id = body["paste_id"].as_str().unwrap();
        assert!(is_id(id), "{id}");
        let url = body["url"].as_str().unwrap();
        assert_eq!(url, stack.url(&format!("/pastes/{id}")));
        assert_eq!(resp.header("location"), Some(url));
        let created = body["created_at"].as_str().unwrap();
        assert!(created.ends_with('Z') && created.len() == 20, "{created}");
        assert!(body.get("expires_at").is_none());
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn plain_text_create_answers_the_url_on_a_line() {
    let stack = Stack::spawn().await;
    for content_type in [Some("text/plain"), Some("text/plain; charset=utf-8"), None] {
        let text = "line one\nline two\n";
        let resp = match content_type {
            Some(ct) => {
                stack
                    .client
                    .send(
                        Method::POST,
                        &stack.url("/pastes/"),
                        Some((ct, text.into())),
                    )
                    .await
            }
            None => {
                let req = http::Request::post(stack.url("/pastes/"))
                    .body(http_body_util::Full::new(bytes::Bytes::from(text)))
                    .unwrap();
                stack.client.request(req).await
            }
        };
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
        let body = resp.text();
        assert!(body.ends_with('\n'));
        let url = body.trim_end();
        assert_eq!(resp.header("location"), Some(url));
        assert!(
            resp.header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        let got = stack.client.get(url).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.json()["text"], text);
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn expiry_is_recorded_and_a_paste_vanishes_when_it_expires() {
    let stack = Stack::spawn().await;
    let resp = stack
        .client
        .send(
            Method::POST,
            &stack.url("/pastes/"),
            Some((
                "application/json",
                r#"{"text": "brief", "expires_in": 1}"#.into(),
            )),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED);
    let body = resp.json();
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    let id = body["paste_id"].as_str().unwrap().to_owned();

    let resp = stack
        .client
        .send(
            Method::POST,
            &stack.url("/pastes/?expires_in=3600"),
            Some(("text/plain", "an hour".into())),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED);
    let hour_url = resp.text().trim_end().to_owned();
    assert!(stack.client.get(&hour_url).await.json()["expires_at"].is_string());

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let gone = stack.client.get(&stack.url(&format!("/pastes/{id}"))).await;
    gone.assert_error(StatusCode::NOT_FOUND);
    let listed = stack.client.get(&stack.url("/pastes")).await.json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["paste_id"] != id.as_str()),
        "expired paste still listed"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn unicode_and_a_text_at_the_size_limit_round_trip() {
    let stack = Stack::spawn().await;
    let unicode = "héllo wörld — 日本語 — עברית — 😀🚀 — \u{0}nul — \"quotes\" \\ back";
    let id = stack.create(unicode).await;
    let got = stack.client.get(&stack.url(&format!("/pastes/{id}"))).await;
    assert_eq!(got.json()["text"], unicode);

    let exact = "a".repeat(MAX_BODY);
    let resp = stack
        .client
        .send(
            Method::POST,
            &stack.url("/pastes/"),
            Some(("text/plain", exact.clone().into())),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let raw = stack
        .client
        .get(&format!("{}/raw", resp.text().trim_end()))
        .await;
    assert_eq!(raw.body.len(), MAX_BODY);
    assert_eq!(raw.text(), exact);
    stack.shutdown().await;
}

#[tokio::test]
async fn concurrent_creates_get_distinct_ids_and_all_read_back() {
    let stack = Stack::spawn().await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let client = stack.client.clone();
        let url = stack.url("/pastes/");
        tasks.push(tokio::spawn(async move {
            let text = format!("paste number {i}");
            let body = serde_json::json!({ "text": text }).to_string();
            let resp = client
                .send(Method::POST, &url, Some(("application/json", body.into())))
                .await;
            assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
            (resp.json()["paste_id"].as_str().unwrap().to_owned(), text)
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let (id, text) = task.await.unwrap();
        let got = stack.client.get(&stack.url(&format!("/pastes/{id}"))).await;
        assert_eq!(got.json()["text"], text);
        assert!(ids.insert(id), "duplicate id");
    }
    assert_eq!(ids.len(), 100);
    stack.shutdown().await;
}
