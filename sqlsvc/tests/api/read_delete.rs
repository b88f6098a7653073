//! `GET` and `DELETE /pastes/{id}`, expiry, routing errors, health and stats.

use std::time::Duration;

use crate::helpers::{header, insert_row, now, spawn_app};

#[tokio::test]
async fn get_returns_the_created_meta() {
    let app = spawn_app().await;
    let created = app.create("some_path").await;
    let (status, body) = app.get(&format!("/pastes/{}", created.paste_id)).await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::to_value(&created).unwrap());

    // Through the shared wire types and the pooled client too.
    let fetched: sqlsvc::api::Meta = app
        .client
        .get_json(&app.url(&format!("/pastes/{}", created.paste_id)))
        .await
        .unwrap();
    assert_eq!(fetched, created);
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let app = spawn_app().await;
    let (status, body) = app.get("/pastes/AAAAAAAAAA").await;
    assert_eq!((status, body["error"].is_string()), (404, true));
    for bad in ["short", "AAAAAAAAAAA", "AAAAAAAAA-", "AAAAAAAAA%21"] {
        let (status, body) = app.get(&format!("/pastes/{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let (status, _, _) = app.request("DELETE", &format!("/pastes/{bad}"), None).await;
        assert_eq!(status, 400, "{bad}");
    }
    app.stop().await;
}

#[tokio::test]
async fn delete_returns_the_row_once() {
    let app = spawn_app().await;
    let created = app.create("doomed").await;
    let path = format!("/pastes/{}", created.paste_id);
    let (status, _, body) = app.request("DELETE", &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::to_value(&created).unwrap());
    assert_eq!(app.get(&path).await.0, 404);
    assert_eq!(app.request("DELETE", &path, None).await.0, 404);
    assert_eq!(
        app.request("DELETE", "/pastes/ZZZZZZZZZZ", None).await.0,
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn expired_rows_are_hidden_everywhere() {
    let app = spawn_app().await;
    let live = app.create("live").await;
    insert_row(&app.db_path, "EXPIRED001", Some(now() - 1));
    insert_row(&app.db_path, "FOREVER001", None);
    assert_eq!(app.get("/pastes/EXPIRED001").await.0, 404);
    assert_eq!(app.get("/pastes/FOREVER001").await.0, 200);
    assert_eq!(
        app.request("DELETE", "/pastes/EXPIRED001", None).await.0,
        404
    );
    let (_, page) = app.get("/pastes").await;
    let ids: Vec<&str> = page["pastes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["paste_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["FOREVER001", live.paste_id.as_str()]);
    app.stop().await;
}

#[tokio::test]
async fn a_paste_disappears_when_it_expires() {
    let app = spawn_app().await;
    // Far enough ahead that a busy machine still creates and reads it before then.
    let expires = now() + 5;
    let (status, _, meta) = app
        .request(
            "POST",
            "/pastes",
            Some(&format!(
                r#"{{"paste_path":"brief","expires_at":{expires}}}"#
            )),
        )
        .await;
    assert_eq!(status, 201, "{meta}");
    let path = format!("/pastes/{}", meta["paste_id"].as_str().unwrap());
    assert_eq!(app.get(&path).await.0, 200);
    testkit::eventually("the paste expires", || async {
        app.get(&path).await.0 == 404
    })
    .await;
    // Not before its time: a timer-free check, the clock only moves forward.
    assert!(now() >= expires);
    app.stop().await;
}

#[tokio::test]
async fn routing_errors_are_json() {
    let app = spawn_app().await;
    for path in ["/", "/nope", "/pastes/AAAAAAAAAA/extra", "/healthz/x"] {
        let (status, _, body) = app.request("GET", path, None).await;
        assert_eq!(status, 404, "{path}");
        assert!(body["error"].is_string(), "{path}");
    }
    let cases = [
        ("PUT", "/pastes", "GET, POST"),
        ("DELETE", "/pastes", "GET, POST"),
        ("POST", "/pastes/AAAAAAAAAA", "GET, DELETE"),
        ("PATCH", "/pastes/AAAAAAAAAA", "GET, DELETE"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/stats", "GET"),
    ];
    for (method, path, allow) in cases {
        let (status, headers, body) = app.request(method, path, None).await;
        assert_eq!(status, 405, "{method} {path}");
        assert_eq!(header(&headers, "allow"), Some(allow), "{method} {path}");
        assert!(body["error"].is_string());
    }
    app.stop().await;
}

#[tokio::test]
async fn health_and_stats() {
    let app = spawn_app().await;
    let (status, body) = app.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    app.create("one").await;
    let (status, stats) = app.get("/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["created"], 1);
    assert_eq!(stats["commits"], 1);
    app.stop().await;
}

#[tokio::test]
async fn health_is_503_when_the_query_fails() {
    let app = spawn_app().await;
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch("DROP TABLE pastes").unwrap();
    let (status, body) = app.get("/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "unavailable");
    // 5xx bodies stay generic.
    let (status, body) = app.get("/pastes/AAAAAAAAAA").await;
    assert_eq!(status, 500);
    assert_eq!(body["error"], "internal error");
    app.stop().await;
}
