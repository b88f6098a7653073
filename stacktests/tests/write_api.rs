//! The Write API against a real nosqlsvc (embedded store, in this process) and a fake
//! sqlsvc that, when asked to record a paste, first checks that its text is already
//! stored: text before metadata; the orphaned text deleted when sqlsvc refuses; after
//! a timeout (sqlsvc may have written the row) the text kept; nosqlsvc down -> sqlsvc
//! never asked.
//!
//! Here in `stacktests`, not in `write/tests`, so that `write` needs no store as a
//! dev-dependency (`cargo tree -p write` names no storage engine).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use contract::CallError;
use http::StatusCode;
use httpkit::{ClientConfig, JsonClient};
use serde_json::json;
use testkit::fake::{FakeService, Reply};
use testkit::spawn::{Spawned, spawn};
use write::{Upstreams, WriteApi, WriteError};

/// How the fake sqlsvc answers a metadata write.
#[derive(Clone, Copy)]
enum Sql {
    Records,
    Refuses(StatusCode),
    Hangs,
}

struct Setup {
    _dir: tempfile::TempDir,
    nosqlsvc: Spawned,
    sqlsvc: FakeService,
    /// For each metadata write: the text nosqlsvc held under its path at that moment.
    texts_seen: Arc<Mutex<Vec<Option<String>>>>,
    api: WriteApi,
}

fn nosqlsvc_url(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}")
}

async fn setup(sql: Sql) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = nosqlsvc::Config::embedded(dir.path().join("texts.redb"));
    let nosqlsvc = spawn(move |listener, shutdown| async move {
        nosqlsvc::run(listener, config, shutdown).await.unwrap();
    });
    let texts_url = nosqlsvc_url(nosqlsvc.addr);
    let texts_seen = Arc::new(Mutex::new(Vec::new()));
    let seen = texts_seen.clone();
    let sqlsvc = FakeService::start(move |req| {
        let texts_url = texts_url.clone();
        let seen = seen.clone();
        async move {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            let path = body["paste_path"].as_str().unwrap().to_owned();
            let stored = testkit::Client::new()
                .get(&format!("{texts_url}/texts/{path}"))
                .await;
            seen.lock().unwrap().push(
                (stored.status == StatusCode::OK)
                    .then(|| stored.json()["text"].as_str().unwrap().to_owned()),
            );
            match sql {
                Sql::Records => Reply::Json(
                    StatusCode::CREATED,
                    json!({
                        "paste_id": "AbCdEf0123",
                        "paste_path": path,
                        "created_at": 1_700_000_000,
                        "expires_at": body["expires_at"],
                        "size": body["size"],
                        "burn_after_reading": body["burn_after_reading"],
                        "unlisted": body["unlisted"],
                        "delete_token": "T0kenT0kenT0kenT0kenT0kenT0kenT0",
                    }),
                ),
                Sql::Refuses(status) => Reply::Json(status, json!({"error": "refused"})),
                Sql::Hangs => Reply::Hang,
            }
        }
    });
    let api = WriteApi::new(
        JsonClient::new(ClientConfig {
            // Short, for the hanging sqlsvc; the stores here answer in milliseconds.
            request_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        }),
        Upstreams {
            sqlsvc: format!("http://{}", sqlsvc.addr),
            nosqlsvc: nosqlsvc_url(nosqlsvc.addr),
        },
    );
    Setup {
        _dir: dir,
        nosqlsvc,
        sqlsvc,
        texts_seen,
        api,
    }
}

impl Setup {
    /// The path sqlsvc was asked to record (the only metadata write).
    fn recorded_path(&self) -> String {
        let received = self.sqlsvc.received();
        assert_eq!(received.len(), 1, "{received:?}");
        let body: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
        body["paste_path"].as_str().unwrap().to_owned()
    }

    async fn stored_text(&self, path: &str) -> Option<String> {
        let answer = testkit::Client::new()
            .get(&format!(
                "{}/texts/{path}",
                nosqlsvc_url(self.nosqlsvc.addr)
            ))
            .await;
        match answer.status {
            StatusCode::OK => Some(answer.json()["text"].as_str().unwrap().to_owned()),
            StatusCode::NOT_FOUND => None,
            other => panic!("nosqlsvc answered {other}: {}", answer.text()),
        }
    }
}

#[tokio::test]
async fn the_text_is_stored_before_the_metadata_is_recorded() {
    let mut setup = setup(Sql::Records).await;
    let meta = setup
        .api
        .create("text first ✓", Some(1_900_000_000))
        .await
        .unwrap();
    assert_eq!(meta.paste_id.as_str(), "AbCdEf0123");
    assert_eq!(
        *setup.texts_seen.lock().unwrap(),
        [Some("text first ✓".to_owned())],
        "sqlsvc was asked before the text was stored"
    );
    let path = setup.recorded_path();
    assert_eq!(meta.paste_path.as_str(), path);
    // What sqlsvc was told: the expiry and the size in bytes.
    let body: serde_json::Value = serde_json::from_slice(&setup.sqlsvc.received()[0].body).unwrap();
    assert_eq!(body["expires_at"], 1_900_000_000);
    assert_eq!(body["size"], "text first ✓".len());
    assert_eq!(
        setup.stored_text(&path).await.as_deref(),
        Some("text first ✓")
    );
    setup.nosqlsvc.stop().await;
}

#[tokio::test]
async fn a_refused_metadata_write_deletes_the_orphaned_text() {
    for status in [StatusCode::CONFLICT, StatusCode::INTERNAL_SERVER_ERROR] {
        let mut setup = setup(Sql::Refuses(status)).await;
        let err = setup.api.create("orphan", None).await.unwrap_err();
        match &err {
            WriteError::Meta(CallError::Conflict(_)) => assert_eq!(status, StatusCode::CONFLICT),
            WriteError::Meta(CallError::Failed { status: got, .. }) => assert_eq!(*got, status),
            other => panic!("{status}: {other:?}"),
        }
        let path = setup.recorded_path();
        assert_eq!(
            *setup.texts_seen.lock().unwrap(),
            [Some("orphan".to_owned())]
        );
        assert_eq!(
            setup.stored_text(&path).await,
            None,
            "{status}: the orphaned text was kept"
        );
        setup.nosqlsvc.stop().await;
    }
}

#[tokio::test]
async fn a_metadata_timeout_keeps_the_text() {
    // sqlsvc may have recorded the row before going silent: deleting the text would
    // leave an id pointing at nothing, so it stays (unreachable at worst).
    let mut setup = setup(Sql::Hangs).await;
    let err = setup.api.create("maybe recorded", None).await.unwrap_err();
    assert!(
        matches!(err, WriteError::Meta(CallError::Timeout)),
        "{err:?}"
    );
    let path = setup.recorded_path();
    assert_eq!(
        setup.stored_text(&path).await.as_deref(),
        Some("maybe recorded")
    );
    setup.nosqlsvc.stop().await;
}

#[tokio::test]
async fn nosqlsvc_down_fails_before_sqlsvc_is_asked() {
    let mut setup = setup(Sql::Records).await;
    setup.nosqlsvc.stop().await;
    let err = setup.api.create("nowhere to go", None).await.unwrap_err();
    assert!(
        matches!(err, WriteError::Text(CallError::NotSent(_))),
        "{err:?}"
    );
    assert!(setup.sqlsvc.received().is_empty());
}
