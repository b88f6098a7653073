//! Reading pastes: JSON, raw, not found, and the balancer spreading requests.

use std::collections::HashSet;

use http::StatusCode;

use crate::helpers::Stack;

#[tokio::test]
async fn get_returns_the_paste_as_json_and_raw() {
    let stack = Stack::spawn().await;
    let id = stack.create("<b>hello</b>").await;
    let resp = stack.client.get(&stack.url(&format!("/pastes/{id}"))).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let body = resp.json();
    assert_eq!(body["paste_id"], id.as_str());
    assert_eq!(body["text"], "<b>hello</b>");
    assert!(body["created_at"].is_string());
    assert_eq!(body["url"], stack.url(&format!("/pastes/{id}")));

    let raw = stack
        .client
        .get(&stack.url(&format!("/pastes/{id}/raw")))
        .await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.text(), "<b>hello</b>");
    assert_eq!(
        raw.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(raw.header("x-content-type-options"), Some("nosniff"));
    stack.shutdown().await;
}

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let stack = Stack::spawn().await;
    stack
        .client
        .get(&stack.url("/pastes/AAAAAAAAAA"))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    for bad in [
        "/pastes/short",
        "/pastes/toolongid123",
        "/pastes/abc%20defgh",
        "/pastes/abcdefghi!",
    ] {
        stack
            .client
            .get(&stack.url(bad))
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn the_balancer_reaches_every_webserver() {
    let stack = Stack::spawn().await;
    let mut seen = HashSet::new();
    for _ in 0..10 {
        let resp = stack.client.get(&stack.url("/healthz")).await;
        assert_eq!(resp.status, StatusCode::OK);
        // Through the balancer: an opaque instance, never an address or a pid.
        assert!(resp.json().get("addr").is_none(), "{:?}", resp.json());
        assert!(resp.json().get("pid").is_none(), "{:?}", resp.json());
        seen.insert(resp.json()["instance"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), stack.webs.len());
    let ready = stack.client.get(&stack.url("/readyz")).await;
    assert_eq!(ready.status, StatusCode::OK);
    stack.shutdown().await;
}

#[tokio::test]
async fn every_service_answers_healthz() {
    let stack = Stack::spawn().await;
    stack.assert_all_healthy().await;
    stack.shutdown().await;
}

#[tokio::test]
async fn the_index_page_is_html() {
    let stack = Stack::spawn().await;
    let resp = stack.client.get(&stack.url("/")).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(resp.text().contains("<form"));
    stack.shutdown().await;
}
