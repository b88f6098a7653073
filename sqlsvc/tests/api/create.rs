//! `POST /pastes`: the happy path and every refused input.

use crate::helpers::{header, now, spawn_app};

#[tokio::test]
async fn create_returns_201_with_the_stored_meta() {
    let app = spawn_app().await;
    let expires = now() + 3600;
    let body = format!(r#"{{"paste_path":"p_1-A","expires_at":{expires},"size":42}}"#);
    let (status, headers, meta) = app.request("POST", "/pastes", Some(&body)).await;
    assert_eq!(status, 201, "{meta}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let id = meta["paste_id"].as_str().unwrap();
    assert!(id.len() == 10 && id.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(meta["paste_path"], "p_1-A");
    assert_eq!(meta["expires_at"], expires);
    assert_eq!(meta["size"], 42);
    let created = meta["created_at"].as_i64().unwrap();
    assert!((now() - created).abs() <= 2);

    // Optional fields may be absent.
    let (status, _, meta) = app
        .request("POST", "/pastes", Some(r#"{"paste_path":"x"}"#))
        .await;
    assert_eq!(status, 201);
    assert!(meta["expires_at"].is_null() && meta["size"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn bad_creates_are_400() {
    let app = spawn_app().await;
    let long = "a".repeat(contract::ids::MAX_PATH_LEN + 1);
    let past = now() - 3600;
    let cases = [
        "not json".to_owned(),
        "".to_owned(),
        "{}".to_owned(),
        r#"{"paste_path":5}"#.to_owned(),
        r#"{"paste_path":""}"#.to_owned(),
        format!(r#"{{"paste_path":"{long}"}}"#),
        r#"{"paste_path":"a/b"}"#.to_owned(),
        r#"{"paste_path":"a b"}"#.to_owned(),
        r#"{"paste_path":"é"}"#.to_owned(),
        format!(r#"{{"paste_path":"p","expires_at":{past}}}"#),
        r#"{"paste_path":"p","expires_at":"tomorrow"}"#.to_owned(),
        r#"{"paste_path":"p","size":-1}"#.to_owned(),
        r#"{"paste_path":"p","size":18446744073709551615}"#.to_owned(),
    ];
    for body in cases {
        let (status, _, answer) = app.request("POST", "/pastes", Some(&body)).await;
        assert_eq!(status, 400, "{body:?} -> {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    // An expiry a moment past (the caller's clock read just before a slow create) is
    // stored, already expired: a 201 whose paste reads as gone, not a 400.
    let just_past = format!(r#"{{"paste_path":"p","expires_at":{}}}"#, now() - 1);
    let (status, _, meta) = app.request("POST", "/pastes", Some(&just_past)).await;
    assert_eq!(status, 201, "{meta}");
    let id = meta["paste_id"].as_str().unwrap();
    assert_eq!(
        app.request("GET", &format!("/pastes/{id}"), None).await.0,
        404
    );
    // The longest valid path is accepted.
    let ok = format!(
        r#"{{"paste_path":"{}"}}"#,
        "a".repeat(contract::ids::MAX_PATH_LEN)
    );
    assert_eq!(app.request("POST", "/pastes", Some(&ok)).await.0, 201);
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = spawn_app().await;
    let padding = " ".repeat(64 * 1024);
    let body = format!(r#"{{"paste_path":"p"{padding}}}"#);
    let (status, _, answer) = app.request("POST", "/pastes", Some(&body)).await;
    assert_eq!(status, 413);
    assert!(answer["error"].is_string());
    app.stop().await;
}
