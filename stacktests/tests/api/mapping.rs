//! The webserver's own error mapping, straight to it (no balancer in front to answer
//! instead): a store that fails or sends garbage -> 502, a store too slow -> 504, a
//! store unavailable -> 503, a store refusing what the webserver sent (its bug) -> 500.
//! Every one a JSON error with a generic message; fake stores script the failures.

use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use testkit::fake::{FakeService, Reply};
use testkit::spawn::spawn;

/// A fake sqlsvc whose answer to `GET /pastes/<id>` depends on the id. Its deletion
/// log is empty and answers, so the webserver's cache sees a live sqlsvc.
fn scripted_sqlsvc() -> FakeService {
    FakeService::start(|req| async move {
        if req.path.starts_with("/deletions") {
            return Reply::Json(
                StatusCode::OK,
                json!({"epoch": 1, "reset": false, "ids": [], "next": 0, "more": false}),
            );
        }
        let id = req.path.trim_start_matches("/pastes/");
        match id {
            "Fails00500" => Reply::Json(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "disk on fire"}),
            ),
            "Garbage000" => Reply::Raw(StatusCode::OK, "<html>not json</html>"),
            "WrongShape" => Reply::Json(StatusCode::OK, json!({"unexpected": true})),
            "Hangs00000" => Reply::Hang,
            "Unavail503" => Reply::Json(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "busy"})),
            "Refuses400" => Reply::Json(StatusCode::BAD_REQUEST, json!({"error": "bad request"})),
            _ => Reply::Json(StatusCode::NOT_FOUND, json!({"error": "no such paste"})),
        }
    })
}

#[tokio::test]
async fn store_failures_map_to_502_504_503_and_500() {
    let sqlsvc = scripted_sqlsvc();
    // nosqlsvc answers every text insert with garbage.
    let nosqlsvc =
        FakeService::start(|_| async { Reply::Raw(StatusCode::CREATED, "{\"paste_path\": 42") });
    let mut config = web::Config::new(sqlsvc.authority(), nosqlsvc.authority());
    // Short, so the hang case ends soon (but not so short that a fake's answer
    // delayed by a loaded machine turns into a 504); the test client waits far
    // longer, so the 504 can only be the webserver's own.
    config.client.request_timeout = Duration::from_secs(3);
    let mut web = spawn(move |listener, shutdown| async move {
        web::run(listener, config, shutdown).await.unwrap();
    });
    let client = testkit::Client::new();
    for (id, status) in [
        ("Fails00500", StatusCode::BAD_GATEWAY),
        ("Garbage000", StatusCode::BAD_GATEWAY),
        ("WrongShape", StatusCode::BAD_GATEWAY),
        ("Hangs00000", StatusCode::GATEWAY_TIMEOUT),
        ("Unavail503", StatusCode::SERVICE_UNAVAILABLE),
        ("Refuses400", StatusCode::INTERNAL_SERVER_ERROR),
        ("Missing000", StatusCode::NOT_FOUND),
    ] {
        let answer = client.get(&web.url(&format!("/pastes/{id}"))).await;
        answer.assert_error(status);
        // 5xx bodies stay generic: nothing the store said leaks.
        for leak in ["disk on fire", "busy", "html", "unexpected"] {
            assert!(!answer.text().contains(leak), "{id}: {}", answer.text());
        }
    }
    let answer = client
        .post_json(&web.url("/pastes/"), &json!({"text": "x"}))
        .await;
    answer.assert_error(StatusCode::BAD_GATEWAY);
    // The metadata store was never asked to record a text that was not stored.
    assert!(
        sqlsvc
            .received()
            .iter()
            .all(|r| r.method != http::Method::POST),
        "{:?}",
        sqlsvc.received()
    );
    web.stop().await;
}

#[tokio::test]
async fn readyz_fails_with_either_store_down() {
    let up = FakeService::start(|_| async { Reply::Json(StatusCode::OK, json!({"status": "ok"})) });
    let down = testkit::Refusing::new();
    for (sql, nosql, status) in [
        (&up.authority(), &up.authority(), StatusCode::OK),
        (
            &up.authority(),
            &down.authority(),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            &down.authority(),
            &up.authority(),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ] {
        let config = web::Config::new(sql.clone(), nosql.clone());
        let mut web = spawn(move |listener, shutdown| async move {
            web::run(listener, config, shutdown).await.unwrap();
        });
        let answer = testkit::Client::new().get(&web.url("/readyz")).await;
        if status == StatusCode::OK {
            answer.assert_status(status);
        } else {
            answer.assert_error(status);
        }
        web.stop().await;
    }
}
