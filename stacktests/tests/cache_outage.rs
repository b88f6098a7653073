//! sqlsvc frozen with SIGSTOP (it accepts connections but never answers), each
//! component its own process: a webserver keeps serving the pastes it has cached,
//! answers uncached ones with a JSON 503 once its deletion-log polls have failed
//! (and a JSON 5xx within its timeout before that), and serves everything again once
//! sqlsvc is continued.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use testkit::announce::announced;
use testkit::raw::fetch as curlish;
use testkit::stack::{Process, spawn_pastebin};

struct Proc {
    child: Process,
    addr: String,
}

async fn spawn(kind: &str, data_dir: &Path, extra: &[&str]) -> Proc {
    let mut args: Vec<&std::ffi::OsStr> =
        vec![kind.as_ref(), "--listen".as_ref(), "127.0.0.1:0".as_ref()];
    args.extend(["--data-dir".as_ref(), data_dir.as_os_str()]);
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let mut child = spawn_pastebin(args);
    let line = announced(&mut child, |line| line.starts_with("LISTENING ")).await;
    let addr = line["LISTENING ".len()..].to_owned();
    Proc { child, addr }
}

fn signal(proc: &Proc, sig: Signal) {
    let pid = proc.child.id().expect("running") as i32;
    kill(Pid::from_raw(pid), sig).unwrap();
}

/// Continues a stopped process when the test ends, however it ends, so that it can
/// be killed and reaped.
struct Continue<'a>(&'a Proc);

impl Drop for Continue<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .child
            .id()
            .map(|pid| kill(Pid::from_raw(pid as i32), Signal::SIGCONT));
    }
}

async fn create(web: &str, text: &str) -> String {
    let body = serde_json::json!({ "text": text }).to_string();
    let (status, answer) = curlish("POST", &format!("http://{web}/pastes"), Some(&body)).await;
    assert_eq!(status, 201, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    v["paste_id"].as_str().unwrap().to_owned()
}

async fn read(web: &str, id: &str) -> (u16, serde_json::Value) {
    let (status, body) = curlish("GET", &format!("http://{web}/pastes/{id}"), None).await;
    let v = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {body:?}"));
    (status, v)
}

/// The webserver's store timeout in this test.
const STORE_TIMEOUT: Duration = Duration::from_secs(20);

/// The bound a cached paste's HTML page must be answered within while sqlsvc is
/// stopped: half the store timeout. Not a performance figure: a page that waits for
/// sqlsvc takes the whole store timeout, one that does not takes a short call's
/// timeout at most (`PAGE_VIEWS_TIMEOUT`, 500 ms), so the bound leaves seconds of
/// margin either way (ten seconds: the page of a cached paste may be slow to come on a
/// loaded machine, three test binaries at once on two cores, without having waited).
const PAGE_BOUND: Duration = Duration::from_secs(10);

/// `GET /pastes/{id}` as a browser asks for it: a 200 page holding the cached text,
/// answered within [`PAGE_BOUND`].
async fn page_within_bound(web: &str, id: &str) {
    let addr = web.parse().unwrap();
    let request = testkit::raw::request(
        "GET",
        &format!("/pastes/{id}"),
        &[("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
        b"",
    );
    let answer = tokio::time::timeout(PAGE_BOUND, testkit::raw::exchange(addr, &request))
        .await
        .unwrap_or_else(|_| {
            panic!("the page of cached paste {id} took longer than {PAGE_BOUND:?}")
        });
    assert_eq!(answer.status(), 200, "{}", answer.body_text());
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{}",
        answer.body_text()
    );
    assert!(answer.body_text().contains("hot"), "{}", answer.body_text());
}

#[tokio::test]
async fn cached_pastes_are_served_while_sqlsvc_is_stopped_and_others_get_503() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sql = spawn("sqlsvc", &data, &[]).await;
    let nosql = spawn("nosqlsvc", &data, &[]).await;
    // A store timeout twice the bound a cached paste's page must meet below, so a
    // page that waited for sqlsvc until its store timeout would miss that bound.
    // Without prefetching, so that the paste created through the other webserver
    // below stays uncached here.
    let web = spawn(
        "web",
        &data,
        &[
            "--sqlsvc",
            &sql.addr,
            "--nosqlsvc",
            &nosql.addr,
            "--web-store-timeout-ms",
            &STORE_TIMEOUT.as_millis().to_string(),
            "--lb-response-timeout-ms",
            "26000",
            "--lb-total-timeout-ms",
            "33000",
            "--cache-prefetch",
            "false",
        ],
    )
    .await;

    // Every webserver starts by asking for the deletion log; until it has an answer
    // a fetch is not cached (the first answer resets the cache).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, health) = curlish("GET", &format!("http://{}/healthz", web.addr), None).await;
        let v: serde_json::Value = serde_json::from_str(&health).unwrap();
        if !v["cache"]["deletion_log_position"].is_null() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the webserver never polled sqlsvc"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A webserver keeps the pastes it creates: the uncached one is created through
    // another webserver.
    let other = spawn(
        "web",
        &data,
        &["--sqlsvc", &sql.addr, "--nosqlsvc", &nosql.addr],
    )
    .await;
    let hot = create(&web.addr, "hot").await;
    let cold = create(&other.addr, "cold").await;
    drop(other);
    let (status, v) = read(&web.addr, &hot).await;
    assert_eq!((status, v["text"].as_str()), (200, Some("hot")));

    signal(&sql, Signal::SIGSTOP);
    let _continue = Continue(&sql);

    // The cached paste is served throughout, without waiting for sqlsvc.
    for _ in 0..3 {
        let (status, v) = read(&web.addr, &hot).await;
        assert_eq!((status, v["text"].as_str()), (200, Some("hot")));
    }
    // Its page too, before the webserver has noticed that sqlsvc is gone: the page
    // does not wait for its view count (an sqlsvc call) for the store timeout.
    page_within_bound(&web.addr, &hot).await;
    // The uncached one: a JSON 5xx within the client timeout (504) until the polls
    // have failed enough, then a JSON 503 at once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, v) = read(&web.addr, &cold).await;
        assert!(v["error"].is_string(), "{status}: {v}");
        match status {
            503 => break,
            504 => {}
            other => panic!("unexpected {other}: {v}"),
        }
        assert!(Instant::now() < deadline, "never answered 503");
    }
    for _ in 0..3 {
        let started = Instant::now();
        let (status, _) = read(&web.addr, &cold).await;
        assert_eq!(status, 503);
        // A figure, not an assertion: the 503 does not wait for sqlsvc.
        eprintln!(
            "uncached read while sqlsvc is stopped: 503 in {:?}",
            started.elapsed()
        );
        let (status, v) = read(&web.addr, &hot).await;
        assert_eq!((status, v["text"].as_str()), (200, Some("hot")));
    }
    // And once it has: the page asks sqlsvc nothing.
    page_within_bound(&web.addr, &hot).await;

    signal(&sql, Signal::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, v) = read(&web.addr, &cold).await;
        if status == 200 {
            assert_eq!(v["text"], "cold");
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {status} {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((web, nosql));
}
