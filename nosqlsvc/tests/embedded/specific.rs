//! Tests specific to the embedded backend and to error mapping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use nosqlsvc::Config;
use nosqlsvc::embedded::{GroupCommit, RedbStore};
use nosqlsvc::store::{StoreError, TextStore};
use serde_json::json;

use crate::common::TestApp;
use crate::common::client::{delete, get, new_client, post_json, send_with};

#[tokio::test]
async fn a_locked_file_fails_startup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("texts.redb");
    let first = RedbStore::open(&path, GroupCommit::default())
        .await
        .unwrap();
    let (listener, _) = httpkit::server::bind_ephemeral().await.unwrap();
    let err = nosqlsvc::run(listener, Config::embedded(&path), std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(err, nosqlsvc::Error::OpenEmbedded { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("texts.redb"), "{err}");
    first.close().await;
    // Once closed, the file opens again.
    RedbStore::open(&path, GroupCommit::default())
        .await
        .unwrap()
        .close()
        .await;
}

#[tokio::test]
async fn a_non_redb_file_fails_startup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("texts.redb");
    std::fs::write(&path, b"this is not a redb database, just some bytes....").unwrap();
    let (listener, _) = httpkit::server::bind_ephemeral().await.unwrap();
    let err = nosqlsvc::run(listener, Config::embedded(&path), std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(err, nosqlsvc::Error::OpenEmbedded { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn zero_body_limit_is_a_config_error() {
    let mut config = Config::embedded("/nonexistent/never/opened.redb");
    config.max_body_bytes = 0;
    let (listener, _) = httpkit::server::bind_ephemeral().await.unwrap();
    let err = nosqlsvc::run(listener, config, std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_body_bytes"), "{err}");
}

/// A store that fails every call, the way a broken backend would.
struct FailingStore {
    unavailable: AtomicBool,
}

impl FailingStore {
    fn error(&self) -> StoreError {
        if self.unavailable.load(Ordering::Relaxed) {
            StoreError::Unavailable("backend down: secret detail".into())
        } else {
            StoreError::Internal("disk on fire: secret detail".into())
        }
    }
}

impl TextStore for FailingStore {
    async fn insert(&self, _text: String) -> Result<String, StoreError> {
        Err(self.error())
    }
    async fn get(&self, _path: &str) -> Result<Option<String>, StoreError> {
        Err(self.error())
    }
    async fn get_many(&self, _paths: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        Err(self.error())
    }
    async fn delete(&self, _path: &str) -> Result<bool, StoreError> {
        Err(self.error())
    }
    async fn delete_many(&self, _paths: &[String]) -> Result<u64, StoreError> {
        Err(self.error())
    }
    async fn unsettled(&self, _before: i64, _limit: u32) -> Result<Vec<String>, StoreError> {
        Err(self.error())
    }
    async fn settle(&self, _paths: &[String]) -> Result<u64, StoreError> {
        Err(self.error())
    }
    async fn count(&self) -> Result<u64, StoreError> {
        Err(self.error())
    }
    async fn ready(&self) -> Result<(), StoreError> {
        Err(self.error())
    }
    async fn close(self) {}
}

#[tokio::test]
async fn store_failures_map_to_503_and_500_without_details() {
    for (unavailable, status) in [
        (true, StatusCode::SERVICE_UNAVAILABLE),
        (false, StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        let store = FailingStore {
            unavailable: AtomicBool::new(unavailable),
        };
        let app = TestApp::spawn_store(store, Config::embedded("unused")).await;
        let answers = [
            post_json(&app.url("/texts"), &json!({ "text": "x" })).await,
            get(&app.url("/texts/abc")).await,
            delete(&app.url("/texts/abc")).await,
            post_json(&app.url("/texts/batch"), &json!({ "paths": ["abc"] })).await,
            post_json(&app.url("/texts/delete"), &json!({ "paths": ["abc"] })).await,
            post_json(&app.url("/texts/settle"), &json!({ "paths": ["abc"] })).await,
            get(&app.url("/texts/unsettled?before=1")).await,
            get(&app.url("/metrics")).await,
        ];
        for answer in answers {
            answer.assert_error(status);
            assert!(!String::from_utf8_lossy(&answer.body).contains("secret"));
        }
        let health = get(&app.url("/healthz")).await;
        health.assert_error(StatusCode::SERVICE_UNAVAILABLE);
        assert!(!String::from_utf8_lossy(&health.body).contains("secret"));
        app.stop().await.unwrap();
    }
}

/// Inserts per second through HTTP with 64 concurrent clients; prints the figure.
/// Run: cargo test -p nosqlsvc --release --test embedded -- --ignored --nocapture
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark, not a check: cargo test -p nosqlsvc --test embedded bench_ -- --ignored --nocapture"]
async fn bench_insert_throughput() {
    for (label, group) in [
        ("group commit (256)", GroupCommit::default()),
        (
            "one commit per insert",
            GroupCommit {
                max_ops: 1,
                max_bytes: usize::MAX,
            },
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("t.redb"), group)
            .await
            .unwrap();
        let app = Arc::new(TestApp::spawn_store(store, Config::embedded("unused")).await);
        let c = new_client();
        let per_client = 50;
        let clients = 64;
        let start = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let c = c.clone();
                let url = app.url("/texts");
                tokio::spawn(async move {
                    for i in 0..per_client {
                        let body = serde_json::to_vec(
                            &json!({ "text": format!("{i} {}", "x".repeat(1000)) }),
                        )
                        .unwrap();
                        let a = send_with(&c, http::Method::POST, &url, Some(body)).await;
                        assert_eq!(a.status, StatusCode::CREATED);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let n = (clients * per_client) as f64;
        println!(
            "{label}: {n} inserts of 1 KB in {secs:.2}s = {:.0}/s",
            n / secs
        );
        drop(c);
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(app) = Arc::try_unwrap(app) {
            app.stop().await.unwrap();
        }
    }
}
