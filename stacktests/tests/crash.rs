//! Crash durability, the core promise: `kill -9` of sqlsvc, and of nosqlsvc (embedded,
//! and on MongoDB through FerretDB), while clients create pastes concurrently. Each
//! store is its own process (`pastebin sqlsvc|nosqlsvc`), killed without warning and
//! started again on its address and data; afterwards every create that got a 201
//! reads back byte for byte. Creates that failed may have left an unreachable text,
//! never an id that points at nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use testkit::spawn::spawn;

use testkit::announce::Announcements;
use testkit::stack::{Process, spawn_pastebin};

/// A store process on an address it keeps across restarts.
struct Store {
    kind: &'static str,
    addr: String,
    data: std::path::PathBuf,
    extra: Vec<String>,
    child: Process,
}

impl Store {
    async fn start(kind: &'static str, data: &Path, extra: &[&str]) -> Store {
        // A port outside the ephemeral range: free for it again after a kill, never
        // handed to a parallel test in between.
        let addr = format!("127.0.0.1:{}", testkit::net::port_outside_ephemeral_range());
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let child = Store::spawn(kind, &addr, data, &extra).await;
        Store {
            kind,
            addr,
            data: data.to_owned(),
            extra,
            child,
        }
    }

    async fn spawn(kind: &str, addr: &str, data: &Path, extra: &[String]) -> Process {
        let mut args: Vec<std::ffi::OsString> = vec![
            kind.into(),
            "--exit-with-parent".into(),
            "--listen".into(),
            addr.into(),
            "--data-dir".into(),
            data.into(),
        ];
        args.extend(extra.iter().map(Into::into));
        let mut child = spawn_pastebin(args);
        let announced = Announcements::of(&mut child).listening().await;
        assert_eq!(announced, addr);
        child
    }

    /// SIGKILL: nothing is flushed on the way out.
    async fn kill_9(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    async fn start_again(&mut self) {
        self.child = Store::spawn(self.kind, &self.addr, &self.data, &self.extra).await;
    }
}

/// Clients creating pastes through a webserver until stopped; every 201 is kept.
struct Creators {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<(String, String)>>>,
    created: Arc<AtomicU64>,
}

impl Creators {
    fn start(url: String, clients: usize) -> Creators {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let created = Arc::new(AtomicU64::new(0));
        let client = testkit::Client::new();
        let tasks = (0..clients)
            .map(|c| {
                let (client, url, stopped, created) = (
                    client.clone(),
                    url.clone(),
                    stopped.clone(),
                    created.clone(),
                );
                tokio::spawn(async move {
                    let mut ok = Vec::new();
                    let mut n = 0u64;
                    while !*stopped.borrow() {
                        n += 1;
                        // Multi-byte text, different lengths: "byte for byte" means it.
                        let text = format!(
                            "client {c} paste {n} — ünïcödé ✓ {}",
                            "x".repeat((n % 50) as usize)
                        );
                        let req = http::Request::post(&url)
                            .header("content-type", "text/plain; charset=utf-8")
                            .body(testkit::client::body(text.clone()))
                            .unwrap();
                        // Failures are expected while a store is down (no answer, or a
                        // 5xx); only 201s are promises.
                        if let Ok(answer) = client.request(req).await
                            && answer.status == StatusCode::CREATED
                        {
                            let link = answer.text().trim_end().to_owned();
                            let id = link.rsplit('/').next().unwrap().to_owned();
                            ok.push((id, text));
                            created.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    ok
                })
            })
            .collect();
        Creators {
            stop,
            tasks,
            created,
        }
    }

    /// Waits until `n` more creates have succeeded.
    async fn succeed(&self, n: u64, what: &str) {
        let from = self.created.load(Ordering::SeqCst);
        testkit::eventually(what, || async {
            self.created.load(Ordering::SeqCst) >= from + n
        })
        .await;
    }

    async fn finish(self) -> Vec<(String, String)> {
        let _ = self.stop.send(true);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(task.await.unwrap());
        }
        all
    }
}

/// Starts both stores as processes and a webserver in this process; kills `victim`
/// ("sqlsvc" or "nosqlsvc") twice under concurrent creates, starting it again each
/// time; then checks every 201.
async fn kill_9_under_creates(victim: &str, nosql_extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut sqlsvc = Store::start("sqlsvc", &data, &[]).await;
    let mut nosqlsvc = Store::start("nosqlsvc", &data, nosql_extra).await;
    let config = web::Config::new(sqlsvc.addr.clone(), nosqlsvc.addr.clone());
    let mut web = spawn(move |listener, shutdown| async move {
        web::run(listener, config, shutdown).await.unwrap();
    });
    let creators = Creators::start(web.url("/pastes/"), 8);
    for round in 0..2 {
        creators.succeed(100, "creates succeed").await;
        let store = if victim == "sqlsvc" {
            &mut sqlsvc
        } else {
            &mut nosqlsvc
        };
        store.kill_9().await;
        store.start_again().await;
        creators
            .succeed(
                50,
                &format!("creates succeed again after kill -9 #{}", round + 1),
            )
            .await;
    }
    let created = creators.finish().await;
    assert!(created.len() >= 300, "{} creates", created.len());

    let client = testkit::Client::new();
    let mut ids = std::collections::HashSet::new();
    for (id, text) in &created {
        assert!(ids.insert(id.clone()), "id {id} handed out twice");
        let raw = client.get(&web.url(&format!("/pastes/{id}/raw"))).await;
        assert_eq!(raw.status, StatusCode::OK, "{id}: {}", raw.text());
        assert_eq!(
            raw.body.as_ref(),
            text.as_bytes(),
            "{id} reads back different bytes"
        );
    }
    web.stop().await;
    drop((sqlsvc, nosqlsvc));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_sqlsvc_during_concurrent_creates_loses_no_201() {
    kill_9_under_creates("sqlsvc", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_embedded_nosqlsvc_during_concurrent_creates_loses_no_201() {
    kill_9_under_creates("nosqlsvc", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MongoDB/FerretDB: set PASTEBIN_TEST_MONGODB_URI (scripts/test.sh does)"]
async fn kill_9_of_mongodb_nosqlsvc_during_concurrent_creates_loses_no_201() {
    let uri = std::env::var("PASTEBIN_TEST_MONGODB_URI")
        .expect("PASTEBIN_TEST_MONGODB_URI is not set: run scripts/test.sh or scripts/ferretdb.sh");
    let collection = format!("crash_{}", std::process::id());
    kill_9_under_creates(
        "nosqlsvc",
        &[
            "--nosql-backend",
            "mongodb",
            "--mongodb-uri",
            &uri,
            "--mongodb-database",
            "pastebin_crash_tests",
            "--mongodb-collection",
            &collection,
        ],
    )
    .await;
}
