//! The typed clients against real local HTTP servers (testkit's `FakeService`, on
//! port 0): the URLs they call, and what each answer status becomes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use contract::{CallError, ClientConfig, JsonClient, MetaClient, PasteId, PastePath, TextClient};
use http::{Method, StatusCode};
use serde_json::json;
use testkit::fake::{FakeService, Reply};

/// Short, so the hanging case ends soon, but not so short that an in-process fake's
/// answer delayed by a loaded machine (three test binaries at once on two cores)
/// becomes a timeout.
fn http() -> JsonClient {
    JsonClient::new(ClientConfig {
        request_timeout: Duration::from_secs(3),
        ..ClientConfig::default()
    })
}

fn meta_client(fake: &FakeService) -> MetaClient {
    MetaClient::new(http(), format!("http://{}", fake.authority()))
}

fn text_client(fake: &FakeService) -> TextClient {
    TextClient::new(http(), format!("http://{}", fake.authority()))
}

fn id() -> PasteId {
    "aZ09aZ09aZ".parse().unwrap()
}

fn error(status: u16, message: &str) -> Reply {
    Reply::Json(
        StatusCode::from_u16(status).unwrap(),
        json!({ "error": message }),
    )
}

#[tokio::test]
async fn statuses_become_typed_errors() {
    let cases: Vec<(u16, CallError)> = vec![
        (404, CallError::NotFound),
        (409, CallError::Conflict("m409".into())),
        (
            400,
            CallError::Invalid {
                status: StatusCode::BAD_REQUEST,
                message: "m400".into(),
            },
        ),
        (
            413,
            CallError::Invalid {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: "m413".into(),
            },
        ),
        (503, CallError::Overloaded("m503".into())),
        (
            500,
            CallError::Failed {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "m500".into(),
            },
        ),
        (
            502,
            CallError::Failed {
                status: StatusCode::BAD_GATEWAY,
                message: "m502".into(),
            },
        ),
    ];
    for (status, want) in cases {
        let fake = FakeService::start(move |_| async move { error(status, &format!("m{status}")) });
        let got = meta_client(&fake).get(&id()).await.unwrap_err();
        assert_eq!(got, want, "status {status}");
        assert!(got.answered(), "status {status}");
        let got = text_client(&fake)
            .get(&"p".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(got, want, "status {status}");
    }
}

#[tokio::test]
async fn failures_without_an_answer_are_typed_too() {
    let hang = FakeService::start(|_| async { Reply::Hang });
    let err = meta_client(&hang).health().await.unwrap_err();
    assert_eq!(err, CallError::Timeout);
    assert!(!err.answered());

    let close = FakeService::start(|_| async { Reply::Close });
    let err = text_client(&close).health().await.unwrap_err();
    assert!(matches!(err, CallError::Unavailable(_)), "{err:?}");
    assert!(!err.answered());
    // The request may have been sent before the connection was dropped.
    assert!(!err.not_applied());
    assert!(!CallError::Timeout.not_applied());

    let junk = FakeService::start(|_| async { Reply::Raw(StatusCode::OK, "{\"paste_id\": 4") });
    let err = meta_client(&junk).get(&id()).await.unwrap_err();
    assert!(matches!(err, CallError::BadResponse(_)), "{err:?}");

    // An answer that breaks the contract's validators is a bad response, too.
    let bad_path = FakeService::start(|_| async {
        Reply::Json(StatusCode::CREATED, json!({ "paste_path": "a/b" }))
    });
    let err = text_client(&bad_path).insert("x").await.unwrap_err();
    assert!(matches!(err, CallError::BadResponse(_)), "{err:?}");

    // Nothing listens: a port kept bound without listening (a port bound then freed
    // could be handed to a parallel test's server meanwhile, which would answer).
    let refusing = testkit::Refusing::new();
    let err = MetaClient::new(http(), format!("http://{}", refusing.authority()))
        .health()
        .await
        .unwrap_err();
    // Refused: never sent, so certainly not applied, though not answered either.
    assert!(matches!(err, CallError::NotSent(_)), "{err:?}");
    assert!(!err.answered());
    assert!(err.not_applied());
}

#[tokio::test]
async fn the_meta_client_owns_its_urls() {
    let fake = FakeService::start(|r| async move {
        let meta = json!({
            "paste_id": "aZ09aZ09aZ", "paste_path": "p_1", "created_at": 1,
            "expires_at": null, "size": 3,
        });
        match (r.method.clone(), r.path.as_str()) {
            (Method::POST, "/pastes") => {
                let mut created = meta.clone();
                created["delete_token"] = json!("T0ken");
                Reply::Json(StatusCode::CREATED, created)
            }
            (Method::GET, "/pastes/aZ09aZ09aZ")
            | (Method::DELETE, "/pastes/aZ09aZ09aZ")
            | (Method::POST, "/pastes/aZ09aZ09aZ/claim") => Reply::Json(StatusCode::OK, meta),
            (Method::GET, "/pastes/aZ09aZ09aZ/stats") => Reply::Json(
                StatusCode::OK,
                json!({ "views": 3, "monthly": { "2026-11": 3 } }),
            ),
            (Method::POST, "/views") => Reply::Json(StatusCode::OK, json!({ "applied": 1 })),
            (Method::GET, p) if p.starts_with("/pastes?") => Reply::Json(
                StatusCode::OK,
                json!({ "pastes": [meta], "cursors": ["c1"], "next_cursor": null }),
            ),
            (Method::GET, p) if p.starts_with("/deletions") => Reply::Json(
                StatusCode::OK,
                json!({ "epoch": 1, "reset": false, "ids": [], "next": 5, "more": false }),
            ),
            (Method::GET, "/healthz") => Reply::Json(StatusCode::OK, json!({ "ok": true })),
            _ => error(404, "no such route"),
        }
    });
    let client = meta_client(&fake);
    let created = client
        .create(&contract::meta::CreateMeta {
            paste_path: "p_1".parse().unwrap(),
            expires_at: Some(9),
            size: Some(3),
            burn_after_reading: false,
            unlisted: true,
        })
        .await
        .unwrap();
    assert_eq!(created.meta.paste_path.as_str(), "p_1");
    assert_eq!(created.delete_token, "T0ken");
    client.delete(&id(), Some("T0ken")).await.unwrap();
    client.claim(&id()).await.unwrap();
    assert_eq!(client.stats(&id()).await.unwrap().views, 3);
    client
        .add_views(&contract::meta::ViewCounts { views: vec![] })
        .await
        .unwrap();
    assert_eq!(client.get(&id()).await.unwrap().paste_id, id());
    assert_eq!(client.list(20, None).await.unwrap().cursors, ["c1"]);
    client.list(5, Some("abc")).await.unwrap();
    assert_eq!(client.deletions(None).await.unwrap().next, 5);
    client.deletions(Some(4)).await.unwrap();
    client.health().await.unwrap();
    let seen: Vec<(Method, String)> = fake
        .received()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    let want = [
        (Method::POST, "/pastes"),
        (Method::DELETE, "/pastes/aZ09aZ09aZ"),
        (Method::POST, "/pastes/aZ09aZ09aZ/claim"),
        (Method::GET, "/pastes/aZ09aZ09aZ/stats"),
        (Method::POST, "/views"),
        (Method::GET, "/pastes/aZ09aZ09aZ"),
        (Method::GET, "/pastes?limit=20"),
        (Method::GET, "/pastes?limit=5&cursor=abc"),
        (Method::GET, "/deletions"),
        (Method::GET, "/deletions?since=4"),
        (Method::GET, "/healthz"),
    ];
    let want: Vec<(Method, String)> = want.iter().map(|(m, p)| (m.clone(), (*p).into())).collect();
    assert_eq!(seen, want);
    let body: serde_json::Value = serde_json::from_slice(&fake.received()[0].body).unwrap();
    assert_eq!(
        body,
        json!({ "paste_path": "p_1", "expires_at": 9, "size": 3, "burn_after_reading": false, "unlisted": true })
    );
    let body: serde_json::Value = serde_json::from_slice(&fake.received()[1].body).unwrap();
    assert_eq!(body, json!({ "delete_token": "T0ken" }));
}

#[tokio::test]
async fn the_text_client_owns_its_urls() {
    let fake = FakeService::start(|r| async move {
        match (r.method.clone(), r.path.as_str()) {
            (Method::POST, "/texts") => {
                Reply::Json(StatusCode::CREATED, json!({ "paste_path": "new_path" }))
            }
            (Method::GET, "/texts/p-1") => Reply::Json(
                StatusCode::OK,
                json!({ "paste_path": "p-1", "text": "hello" }),
            ),
            (Method::POST, "/texts/batch") => {
                Reply::Json(StatusCode::OK, json!({ "texts": ["a", null] }))
            }
            (Method::DELETE, "/texts/p-1") => {
                Reply::Json(StatusCode::OK, json!({ "deleted": true }))
            }
            (Method::GET, "/healthz") => Reply::Json(StatusCode::OK, json!({})),
            _ => error(404, "no such route"),
        }
    });
    let client = text_client(&fake);
    let path: PastePath = "p-1".parse().unwrap();
    assert_eq!(
        client.insert("hi").await.unwrap().paste_path.as_str(),
        "new_path"
    );
    assert_eq!(client.get(&path).await.unwrap().text, "hello");
    let paths = [path.clone(), "q".parse().unwrap()];
    assert_eq!(
        client.get_many(&paths).await.unwrap().texts,
        [Some("a".to_owned()), None]
    );
    assert!(client.delete(&path).await.unwrap().deleted);
    client.health().await.unwrap();
    let got = fake.received();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&got[0].body).unwrap(),
        json!({ "text": "hi" })
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&got[2].body).unwrap(),
        json!({ "paths": ["p-1", "q"] })
    );
    assert_eq!(got.len(), 5);
}
