//! Crash durability, the core promise: `kill -9` of sqlsvc, and of nosqlsvc (embedded,
//! and on MongoDB through FerretDB), while clients create pastes concurrently. Each
//! store is its own process (`pastebin sqlsvc|nosqlsvc`), killed without warning and
//! started again on its address and data; afterwards every create that got a 201
//! reads back byte for byte. Creates that failed may have left an unreachable text,
//! never an id that points at nothing.
//!
//! The same `kill -9` of each store in the middle of deletes, and in the middle of
//! sweeps of expired pastes: afterwards every 201 that was not deleted still reads
//! back byte for byte, every paste whose delete answered 204 (or that expired) is 404
//! on every webserver and in sqlsvc, a delete that got no answer left the whole paste
//! or nothing, and the stores converge to exactly the pastes and texts kept.

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
    let mut nosqlsvc = Store::start("nosqlsvc", &data, nosql_extra).await;
    // Its sweeper talks to this test's nosqlsvc, never to whatever runs on the default.
    let mut sqlsvc = Store::start("sqlsvc", &data, &["--nosqlsvc", nosqlsvc.addr.as_str()]).await;
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
        // The webserver keeps what it creates in its cache, so the read above may
        // never have reached a store: the stores themselves must hold it.
        let stored =
            testkit::client::text_in_stores(&client, &sqlsvc.addr, &nosqlsvc.addr, id).await;
        assert_eq!(
            stored.as_deref(),
            Some(text.as_str()),
            "{id}: a 201 the stores lost"
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
    let args = mongodb_args("creates");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kill_9_under_creates("nosqlsvc", &args).await;
}

/// nosqlsvc's arguments for MongoDB (FerretDB) at `PASTEBIN_TEST_MONGODB_URI`, in a
/// collection of this test's own (`what` and the process id), so tests running at
/// once and earlier runs never see each other's texts.
fn mongodb_args(what: &str) -> Vec<String> {
    let uri = std::env::var("PASTEBIN_TEST_MONGODB_URI")
        .expect("PASTEBIN_TEST_MONGODB_URI is not set: run scripts/test.sh or scripts/ferretdb.sh");
    [
        "--nosql-backend",
        "mongodb",
        "--mongodb-uri",
        &uri,
        "--mongodb-database",
        "pastebin_crash_tests",
        "--mongodb-collection",
        &format!("crash_{what}_{}", std::process::id()),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A paste created for the delete and sweep tests: its id, text and delete token.
#[derive(Clone)]
struct Created {
    id: String,
    text: String,
    token: String,
}

/// Both stores as processes (sqlsvc sweeping often, orphans after `orphan_grace`
/// seconds) and two webservers in this process.
struct Rig {
    _dir: tempfile::TempDir,
    sqlsvc: Store,
    nosqlsvc: Store,
    webs: Vec<testkit::spawn::Spawned>,
    client: testkit::Client,
}

impl Rig {
    /// `nosql_extra`: nosqlsvc's own arguments (its MongoDB backend).
    async fn start(orphan_grace: &str, nosql_extra: &[String]) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let nosql_extra: Vec<&str> = nosql_extra.iter().map(String::as_str).collect();
        let nosqlsvc = Store::start("nosqlsvc", &data, &nosql_extra).await;
        let sqlsvc = Store::start(
            "sqlsvc",
            &data,
            &[
                "--nosqlsvc",
                nosqlsvc.addr.as_str(),
                "--sweep-interval",
                "0.2",
                "--orphan-grace",
                orphan_grace,
            ],
        )
        .await;
        let webs = (0..2)
            .map(|_| {
                let config = web::Config::new(sqlsvc.addr.clone(), nosqlsvc.addr.clone());
                spawn(move |listener, shutdown| async move {
                    web::run(listener, config, shutdown).await.unwrap();
                })
            })
            .collect();
        Rig {
            _dir: dir,
            sqlsvc,
            nosqlsvc,
            webs,
            client: testkit::Client::new(),
        }
    }

    fn store(&mut self, victim: &str) -> &mut Store {
        if victim == "sqlsvc" {
            &mut self.sqlsvc
        } else {
            &mut self.nosqlsvc
        }
    }

    /// Creates `n` pastes through the webservers, 8 at a time; all must succeed.
    async fn create(&self, n: usize, expires_in: Option<u64>, tag: &str) -> Vec<Created> {
        let mut all = Vec::new();
        for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
            let tasks: Vec<_> = chunk
                .iter()
                .map(|&i| {
                    let client = self.client.clone();
                    let url = self.webs[i % 2].url("/pastes");
                    let text = format!("{tag} {i} — ünïcödé ✓ {}", "y".repeat(i % 40));
                    let mut body = serde_json::json!({ "text": text });
                    if let Some(secs) = expires_in {
                        body["expires_in"] = secs.into();
                    }
                    tokio::spawn(async move {
                        let resp = client.post_json(&url, &body).await;
                        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
                        let json = resp.json();
                        Created {
                            id: json["paste_id"].as_str().unwrap().to_owned(),
                            token: json["delete_token"].as_str().unwrap().to_owned(),
                            text,
                        }
                    })
                })
                .collect();
            for task in tasks {
                all.push(task.await.unwrap());
            }
        }
        all
    }

    /// `DELETE /pastes/{id}` with the token through webserver `web`; None: no answer.
    async fn delete(&self, web: usize, paste: &Created) -> Option<StatusCode> {
        let req = http::Request::delete(self.webs[web % 2].url(&format!("/pastes/{}", paste.id)))
            .header("authorization", format!("Bearer {}", paste.token))
            .body(testkit::client::body(""))
            .unwrap();
        self.client.request(req).await.ok().map(|a| a.status)
    }

    /// The raw text through every webserver: Some(bytes) on 200, None on 404. Other
    /// answers (a connection to a killed store still pooled) are retried; only if no
    /// 200 or 404 comes within the deadline does the test fail.
    async fn read_everywhere(&self, id: &str) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::new();
        for web in &self.webs {
            let url = web.url(&format!("/pastes/{id}/raw"));
            let got = testkit::wait::eventually_within(
                &format!("a 200 or 404 for {id}"),
                testkit::wait::DEADLINE,
                || async {
                    let raw = self.try_get(&url).await?;
                    match raw.status {
                        StatusCode::OK => Some(Some(raw.body.to_vec())),
                        StatusCode::NOT_FOUND => Some(None),
                        _ => None,
                    }
                },
            )
            .await;
            out.push(got);
        }
        out
    }

    /// Whether sqlsvc itself (no cache in between) still has the paste; retried as
    /// [`Rig::read_everywhere`] is.
    async fn in_sqlsvc(&self, id: &str) -> bool {
        let url = format!("http://{}/pastes/{id}", self.sqlsvc.addr);
        testkit::wait::eventually_within(
            &format!("sqlsvc answers 200 or 404 for {id}"),
            testkit::wait::DEADLINE,
            || async {
                match self.try_get(&url).await?.status {
                    StatusCode::OK => Some(true),
                    StatusCode::NOT_FOUND => Some(false),
                    _ => None,
                }
            },
        )
        .await
    }

    /// The paste's text as the stores hold it, asked directly (no cache between).
    async fn in_stores(&self, id: &str) -> Option<String> {
        testkit::client::text_in_stores(&self.client, &self.sqlsvc.addr, &self.nosqlsvc.addr, id)
            .await
    }

    /// `GET url`; None if no answer came.
    async fn try_get(&self, url: &str) -> Option<testkit::client::Answer> {
        let req = http::Request::get(url)
            .body(testkit::client::body(""))
            .unwrap();
        self.client.request(req).await.ok()
    }

    async fn metric(&self, addr: &str, name: &str) -> Option<u64> {
        let resp = self.try_get(&format!("http://{addr}/metrics")).await?;
        if resp.status != StatusCode::OK {
            return None;
        }
        resp.text()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// Every kept paste reads back byte for byte through every webserver; every gone
    /// one is (within the caches' bound) 404 on every webserver and in sqlsvc; and the
    /// stores converge to exactly the kept pastes and their texts (nothing left in
    /// sqlsvc's trash, no text orphaned).
    async fn check(&self, kept: &[Created], gone: &[Created]) {
        for paste in kept {
            for got in self.read_everywhere(&paste.id).await {
                assert_eq!(
                    got.as_deref(),
                    Some(paste.text.as_bytes()),
                    "kept paste {} reads back different bytes",
                    paste.id
                );
            }
            // The webservers may answer from their caches: the stores must hold it.
            assert_eq!(
                self.in_stores(&paste.id).await.as_deref(),
                Some(paste.text.as_str()),
                "kept paste {} is not in the stores",
                paste.id
            );
        }
        for paste in gone {
            testkit::eventually(&format!("{} is 404 everywhere", paste.id), || async {
                !self.in_sqlsvc(&paste.id).await
                    && self
                        .read_everywhere(&paste.id)
                        .await
                        .iter()
                        .all(Option::is_none)
            })
            .await;
        }
        let want = kept.len() as u64;
        testkit::eventually(
            "the stores hold exactly the kept pastes and texts",
            || async {
                self.metric(&self.sqlsvc.addr, "pastebin_pastes").await == Some(want)
                    && self.metric(&self.sqlsvc.addr, "pastebin_text_trash").await == Some(0)
                    && self.metric(&self.nosqlsvc.addr, "pastebin_texts").await == Some(want)
            },
        )
        .await;
        // And nothing gone came back once the stores settled.
        for paste in gone {
            assert!(!self.in_sqlsvc(&paste.id).await, "{} came back", paste.id);
            assert!(
                self.read_everywhere(&paste.id)
                    .await
                    .iter()
                    .all(Option::is_none),
                "{} came back",
                paste.id
            );
        }
    }

    async fn stop(mut self) {
        for web in &mut self.webs {
            web.stop().await;
        }
    }
}

/// Deletes run concurrently through two webservers; `victim` is killed with `kill -9`
/// once some have answered 204, and started again while the rest go on.
async fn kill_9_under_deletes(victim: &str, nosql_extra: &[String]) {
    let mut rig = Rig::start("600", nosql_extra).await;
    let kept = rig.create(100, None, "kept").await;
    let doomed = rig.create(400, None, "doomed").await;

    let queue = Arc::new(std::sync::Mutex::new(doomed.clone()));
    let deleted_204 = Arc::new(AtomicU64::new(0));
    let webs: Vec<String> = rig.webs.iter().map(|w| w.url("")).collect();
    let tasks: Vec<_> = (0..8)
        .map(|c| {
            let (queue, deleted_204, webs, client) = (
                queue.clone(),
                deleted_204.clone(),
                webs.clone(),
                rig.client.clone(),
            );
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                loop {
                    let Some(paste) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let req = http::Request::delete(format!("{}/pastes/{}", webs[c % 2], paste.id))
                        .header("authorization", format!("Bearer {}", paste.token))
                        .body(testkit::client::body(""))
                        .unwrap();
                    let status = client.request(req).await.ok().map(|a| a.status);
                    if status == Some(StatusCode::NO_CONTENT) {
                        deleted_204.fetch_add(1, Ordering::SeqCst);
                    }
                    outcomes.push((paste, status));
                }
                outcomes
            })
        })
        .collect();
    testkit::eventually("some deletes answer 204", || async {
        deleted_204.load(Ordering::SeqCst) >= 40
    })
    .await;
    let store = rig.store(victim);
    store.kill_9().await;
    store.start_again().await;
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.unwrap());
    }
    assert_eq!(outcomes.len(), doomed.len());

    let (deleted, unsure): (Vec<_>, Vec<_>) = outcomes
        .into_iter()
        .partition(|(_, status)| *status == Some(StatusCode::NO_CONTENT));
    let deleted: Vec<Created> = deleted.into_iter().map(|(p, _)| p).collect();
    eprintln!(
        "{victim}: {} deletes answered 204, {} did not",
        deleted.len(),
        unsure.len()
    );
    // A delete without a 204 left the whole paste or nothing, never a paste without
    // its text: through the webservers, and in the stores themselves (a webserver
    // may still answer from its cache; `in_stores` fails on a row without a text).
    for (paste, _) in &unsure {
        for bytes in rig.read_everywhere(&paste.id).await.into_iter().flatten() {
            assert_eq!(bytes, paste.text.as_bytes(), "{} is half there", paste.id);
        }
        if let Some(text) = rig.in_stores(&paste.id).await {
            assert_eq!(text, paste.text, "{} is half there", paste.id);
        }
    }
    // Deleting them again with their token works now (or finds them already gone).
    for (i, (paste, _)) in unsure.iter().enumerate() {
        let status = rig.delete(i, paste).await;
        assert!(
            matches!(
                status,
                Some(StatusCode::NO_CONTENT) | Some(StatusCode::NOT_FOUND)
            ),
            "delete of {} again answered {status:?}",
            paste.id
        );
    }
    let gone: Vec<Created> = deleted
        .into_iter()
        .chain(unsure.into_iter().map(|(p, _)| p))
        .collect();
    rig.check(&kept, &gone).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_sqlsvc_during_deletes_loses_no_kept_paste_and_revives_no_deleted_one() {
    kill_9_under_deletes("sqlsvc", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_embedded_nosqlsvc_during_deletes_loses_no_kept_paste_and_revives_no_deleted_one()
{
    kill_9_under_deletes("nosqlsvc", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MongoDB/FerretDB: set PASTEBIN_TEST_MONGODB_URI (scripts/test.sh does)"]
async fn kill_9_of_mongodb_nosqlsvc_during_deletes_loses_no_kept_paste_and_revives_no_deleted_one()
{
    kill_9_under_deletes("nosqlsvc", &mongodb_args("deletes")).await;
}

/// Clients keep creating pastes that expire after a second while the sweeper runs
/// every 0.2 s; `victim` is killed with `kill -9` twice, each time in the middle of a
/// sweep: when the sweeper has removed expired rows and not yet deleted all their
/// texts (sqlsvc's trash is not empty), and started again each time.
async fn kill_9_under_sweeps(victim: &str, nosql_extra: &[String]) {
    // Texts of creates that the kill cut between their two steps are orphans after 2 s.
    let mut rig = Rig::start("2", nosql_extra).await;
    let kept = rig.create(100, None, "kept").await;
    let creators = Creators::start(rig.webs[0].url("/pastes?expires_in=1"), 4);
    for round in 0..2 {
        creators.succeed(200, "expiring creates succeed").await;
        // Polled more often than `eventually` does: the window is short.
        let deadline = tokio::time::Instant::now() + testkit::wait::DEADLINE * 2;
        loop {
            if rig.metric(&rig.sqlsvc.addr, "pastebin_text_trash").await > Some(0) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never saw a sweep half done (rows removed, texts not yet deleted)"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let store = rig.store(victim);
        store.kill_9().await;
        store.start_again().await;
        eprintln!("{victim}: kill -9 #{} in the middle of a sweep", round + 1);
    }
    creators.succeed(50, "expiring creates succeed again").await;
    let expiring: Vec<Created> = creators
        .finish()
        .await
        .into_iter()
        .map(|(id, text)| Created {
            id,
            text,
            token: String::new(),
        })
        .collect();
    eprintln!("{victim}: {} expiring pastes created", expiring.len());
    // Everything expiring has expired (1 s) and been swept once the stores converge.
    rig.check(&kept, &expiring).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_sqlsvc_during_sweeps_loses_no_kept_paste_and_revives_no_expired_one() {
    kill_9_under_sweeps("sqlsvc", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_embedded_nosqlsvc_during_sweeps_loses_no_kept_paste_and_revives_no_expired_one()
{
    kill_9_under_sweeps("nosqlsvc", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MongoDB/FerretDB: set PASTEBIN_TEST_MONGODB_URI (scripts/test.sh does)"]
async fn kill_9_of_mongodb_nosqlsvc_during_sweeps_loses_no_kept_paste_and_revives_no_expired_one() {
    kill_9_under_sweeps("nosqlsvc", &mongodb_args("sweeps")).await;
}
