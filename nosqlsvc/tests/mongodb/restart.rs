//! FerretDB killed under a running nosqlsvc and started again on the same port and
//! data: every request fails fast with a JSON 503 while it is down, requests succeed
//! again once it is back, texts written before the outage are still there, and
//! nosqlsvc is never restarted. The test runs a FerretDB process of its own, from
//! `PASTEBIN_FERRETDB_BIN` (see `scripts/ferretdb.sh install`).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use nosqlsvc::mongo::MongoConfig;
use nosqlsvc::{BackendConfig, Config};
use serde_json::json;
use tokio::net::TcpStream;

use crate::common::TestApp;
use crate::common::client::{self, Answer, delete, get, post_json};

const BIN_VAR: &str = "PASTEBIN_FERRETDB_BIN";

/// Longest any request may take while the server is down: a generous bound (the
/// server selection timeout is 1 s) that still tells failing fast from hanging
/// until the driver's default 30 s selection timeout, on a busy machine.
const FAIL_FAST: Duration = Duration::from_secs(15);

/// Longest FerretDB may take to listen, and nosqlsvc to recover once it does (a
/// deadline for polling, generous for a busy machine).
const STARTUP: Duration = Duration::from_secs(60);

/// The FerretDB binary. The test calling this is `#[ignore]`d; asked to run without
/// one, it fails rather than pass having run nothing.
fn ferretdb_bin() -> PathBuf {
    match std::env::var_os(BIN_VAR) {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => panic!(
            "{BIN_VAR} is not set (scripts/ferretdb.sh install prints the path; scripts/test.sh sets it)"
        ),
    }
}

/// A FerretDB child process over the SQLite files in `dir/data`; killed and reaped
/// when dropped, on every path out of the test.
struct FerretDb {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl FerretDb {
    /// Starts FerretDB on `127.0.0.1:port` (0: a port the kernel picks, read back from
    /// its log) and waits until it accepts connections. `run` names the log file.
    async fn start(bin: &Path, dir: &Path, port: u16, run: u32) -> FerretDb {
        let data = dir.join("data");
        let state = dir.join("state");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        let log = dir.join(format!("ferretdb-{run}.log"));
        let out = File::create(&log).unwrap();
        let child = Command::new(bin)
            .arg("--handler=sqlite")
            // An absolute directory URL ending in '/'.
            .arg(format!("--sqlite-url=file:{}/", data.display()))
            .arg(format!("--listen-addr=127.0.0.1:{port}"))
            .arg(format!("--state-dir={}", state.display()))
            .arg("--debug-addr=-")
            .arg("--telemetry=disable")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", bin.display()));
        let mut server = FerretDb {
            child,
            port: 0,
            log,
        };
        let start = Instant::now();
        server.port = loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "FerretDB exited at startup ({status}):\n{}",
                    server.log_text()
                );
            }
            if let Some(listening) = listening_port(&server.log_text()) {
                break listening;
            }
            assert!(
                start.elapsed() < STARTUP,
                "FerretDB did not listen within {STARTUP:?}:\n{}",
                server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if port != 0 {
            assert_eq!(server.port, port, "FerretDB listens on another port");
        }
        while TcpStream::connect(("127.0.0.1", server.port))
            .await
            .is_err()
        {
            assert!(
                start.elapsed() < STARTUP,
                "FerretDB does not accept connections"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for FerretDb {
    /// SIGKILL, like a crash or an OOM kill: nothing is flushed on the way out.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port of FerretDB's "Listening on TCP 127.0.0.1:PORT..." log line.
fn listening_port(log: &str) -> Option<u16> {
    let rest = log.split("Listening on TCP 127.0.0.1:").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Runs `request`, asserts it answered a JSON 503 within [`FAIL_FAST`]; returns the time.
async fn fails_fast(what: &str, request: impl Future<Output = Answer>) -> Duration {
    let start = Instant::now();
    let answer = tokio::time::timeout(FAIL_FAST, request)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {FAIL_FAST:?} with the server down"));
    let took = start.elapsed();
    answer.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    took
}

async fn insert(app: &TestApp, text: &str) -> String {
    let answer = post_json(&app.url("/texts"), &json!({ "text": text })).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    answer.json()["paste_path"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs FerretDB: set PASTEBIN_FERRETDB_BIN (scripts/test.sh does)"]
async fn ferretdb_killed_and_restarted_under_a_running_service() {
    let bin = ferretdb_bin();
    tokio::time::timeout(Duration::from_secs(180), scenario(bin))
        .await
        .expect("restart scenario timed out");
}

async fn scenario(bin: PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    // It comes back on the same port after the crash: one outside the kernel's
    // ephemeral range, so no parallel test is handed it while it is down.
    let port = testkit::net::port_outside_ephemeral_range();
    let server = FerretDb::start(&bin, dir.path(), port, 1).await;
    // The service's own settings only: no driver timeouts tuned in the URI.
    let settings = MongoConfig {
        server_selection_timeout: Duration::from_secs(1),
        ..MongoConfig::new(format!("mongodb://127.0.0.1:{port}/"))
    };
    let app = TestApp::spawn(Config {
        backend: BackendConfig::MongoDb(settings),
        ..Config::mongodb("unused")
    })
    .await;

    assert_eq!(get(&app.url("/healthz")).await.status, StatusCode::OK);
    let kept = insert(&app, "written before the outage ✓").await;
    let doomed = insert(&app, "deleted after the outage").await;

    // Down: a crash, with nosqlsvc's pooled connections open.
    drop(server);
    let mut slowest = Duration::ZERO;
    for took in [
        fails_fast(
            "insert",
            post_json(&app.url("/texts"), &json!({ "text": "x" })),
        )
        .await,
        fails_fast("get", get(&app.url(&format!("/texts/{kept}")))).await,
        fails_fast(
            "batch",
            post_json(
                &app.url("/texts/batch"),
                &json!({ "paths": [kept, doomed] }),
            ),
        )
        .await,
        fails_fast("delete", delete(&app.url(&format!("/texts/{doomed}")))).await,
        fails_fast("health", get(&app.url("/healthz"))).await,
    ] {
        slowest = slowest.max(took);
    }
    // Many at once: none waits behind the others for longer than the bound.
    let c = client::new_client();
    let burst: Vec<_> = (0..32)
        .map(|i| {
            let c = c.clone();
            let url = app.url("/texts");
            tokio::spawn(async move {
                let body = serde_json::to_vec(&json!({ "text": format!("burst {i}") })).unwrap();
                fails_fast(
                    "concurrent insert",
                    client::send_with(&c, http::Method::POST, &url, Some(body)),
                )
                .await
            })
        })
        .collect();
    for task in burst {
        slowest = slowest.max(task.await.unwrap());
    }
    assert!(!app.is_finished(), "nosqlsvc must keep running");

    // Back, same port, same data.
    let server = FerretDb::start(&bin, dir.path(), port, 2).await;
    let back = Instant::now();
    let mut refused = 0;
    let answer = loop {
        let answer = get(&app.url(&format!("/texts/{kept}"))).await;
        if answer.status == StatusCode::OK {
            break answer;
        }
        answer.assert_error(StatusCode::SERVICE_UNAVAILABLE);
        refused += 1;
        assert!(back.elapsed() < STARTUP, "nosqlsvc did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let recovered_in = back.elapsed();
    assert_eq!(answer.json()["text"], "written before the outage ✓");
    assert_eq!(get(&app.url("/healthz")).await.status, StatusCode::OK);
    let answer = post_json(
        &app.url("/texts/batch"),
        &json!({ "paths": [doomed, kept] }),
    )
    .await;
    assert_eq!(
        answer.json(),
        json!({ "texts": ["deleted after the outage", "written before the outage ✓"] })
    );
    let fresh = insert(&app, "written after the outage").await;
    assert_eq!(
        get(&app.url(&format!("/texts/{fresh}"))).await.json()["text"],
        "written after the outage"
    );
    assert_eq!(
        delete(&app.url(&format!("/texts/{doomed}"))).await.status,
        StatusCode::OK
    );
    get(&app.url(&format!("/texts/{doomed}")))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    let _ = writeln!(
        std::io::stderr(),
        "restart: slowest 503 while down {slowest:?}; served again {recovered_in:?} after \
         FerretDB listened ({refused} 503s meanwhile)"
    );

    app.stop().await.unwrap();
    drop(server);
}

#[test]
fn reads_the_port_from_the_log_line() {
    let log = "2026-01-01T00:00:00Z\tINFO\tclientconn/listener.go:107\t\
               Listening on TCP 127.0.0.1:40123...\t{\"name\":\"listener\"}\n";
    assert_eq!(listening_port(log), Some(40123));
    assert_eq!(listening_port("Starting FerretDB v1.24.2..."), None);
}
