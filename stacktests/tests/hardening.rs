//! The hardening suite, on real processes started by `pastebin up`:
//!
//! - faults: each store hung (SIGSTOP, then SIGCONT) and killed (SIGKILL, the launcher
//!   restarts it), in turn, under a mixed load: routes that need no store never fail,
//!   the others fail with a JSON 5xx from the webserver (its store timeout fires
//!   before the balancer's wait), no webserver is ejected, the stack recovers by
//!   itself, and every 201 is readable afterwards;
//! - sizes: texts at, just under and just over the body limit, of ASCII, multi-byte
//!   UTF-8 and characters JSON escapes 6x, for the default limit and the largest
//!   valid one: accepted means readable and listable, otherwise 413;
//! - the edge: links never name a webserver, one header-count limit, RFC 9112 Host
//!   rules, `Transfer-Encoding: gzip, chunked` refused;
//! - a second `pastebin up` on the same data directory fails at once, naming the lock
//!   and its holder.
//!
//! Loopback only; every wait polls with a deadline, nothing asserts a duration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testkit::{Launch, Stack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A stack of two webservers with `config` lines and global `args` (timeouts);
/// under `PASTEBIN_TEST_NOSQL=mongodb`, nosqlsvc on MongoDB.
async fn start(dir: &std::path::Path, config: &str, args: &[&str]) -> Stack {
    launch(dir, config, args).start().await
}

fn launch(dir: &std::path::Path, config: &str, args: &[&str]) -> Launch {
    let mut launch = Launch::new()
        .in_dir(dir)
        .config(config)
        .nosql_from_env("pastebin_hardening_tests");
    for arg in args {
        launch = launch.arg(arg);
    }
    launch
}

/// The pid of the launcher's running `component` child.
fn child_pid(up: &Stack, component: &str) -> Option<i32> {
    up.find_child(component, None).map(|pid| pid as i32)
}

/// An answer read whole.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "not JSON ({err}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// A JSON error body with an `error` string.
    fn is_json_error(&self) -> bool {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .is_ok_and(|v| v["error"].is_string())
    }
}

/// Sends `head` (request line and headers, without the final blank line) plus
/// `Connection: close` and `body`, and reads the answer to the end.
async fn exchange(addr: &str, head: &str, body: &[u8]) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{head}\r\nConnection: close\r\n").into_bytes();
    if !body.is_empty() || head.starts_with("POST") {
        req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    let fut = async {
        // The server may answer (413) before reading a large body, then close.
        let _ = stream.write_all(&req).await;
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf).await;
        buf
    };
    let buf = tokio::time::timeout(Duration::from_secs(180), fut)
        .await
        .expect("no answer within 180 s");
    parse_answer(&buf)
}

/// Whether the answer's head carries `X-Content-Type-Options: nosniff`.
fn says_nosniff(answer: &Answer) -> bool {
    answer
        .head
        .to_ascii_lowercase()
        .contains("\r\nx-content-type-options: nosniff")
}

fn parse_answer(buf: &[u8]) -> Answer {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head[9..12].parse().expect("status code");
    let mut body = buf[split + 4..].to_vec();
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Answer { status, head, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..eol])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

async fn get(addr: &str, path: &str) -> Answer {
    exchange(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}"), b"").await
}

async fn post(addr: &str, content_type: &str, body: &[u8]) -> Answer {
    exchange(
        addr,
        &format!("POST /pastes/ HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}"),
        body,
    )
    .await
}

/// Polls `check` until it holds, for at most `deadline`.
async fn eventually<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while !check().await {
        assert!(Instant::now() < end, "{what}: not within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one request of the mixed load needed and got.
#[derive(Debug, Clone)]
struct Outcome {
    #[allow(dead_code)] // shown in failure reports
    route: &'static str,
    needs_store: bool,
    status: u16,
    json_error: bool,
    body: String,
    phase: &'static str,
}

/// A mixed load through the balancer: pages and health (no store), reads, writes
/// and listings (stores), recording every outcome and every created id.
struct Load {
    stop: Arc<AtomicBool>,
    phase: Arc<Mutex<&'static str>>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    created: Arc<Mutex<Vec<(String, String)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(lb: &str, known_id: &str, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(Mutex::new("before"));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let created = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..workers)
            .map(|w| {
                let (lb, known) = (lb.to_owned(), known_id.to_owned());
                let (stop, phase, outcomes, created) = (
                    stop.clone(),
                    phase.clone(),
                    outcomes.clone(),
                    created.clone(),
                );
                tokio::spawn(async move {
                    let mut n = w;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let started_in = *phase.lock().unwrap();
                        let (route, needs_store, answer, text) = match n % 6 {
                            0 => ("GET /", false, get(&lb, "/").await, None),
                            1 => ("GET /healthz", false, get(&lb, "/healthz").await, None),
                            2 | 3 => (
                                "GET /pastes/{id}",
                                true,
                                get(&lb, &format!("/pastes/{known}")).await,
                                None,
                            ),
                            4 => {
                                let text = format!("load {w} {n}");
                                let body = serde_json::json!({ "text": text }).to_string();
                                (
                                    "POST /pastes",
                                    true,
                                    post(&lb, "application/json", body.as_bytes()).await,
                                    Some(text),
                                )
                            }
                            _ => ("GET /pastes", true, get(&lb, "/pastes?limit=5").await, None),
                        };
                        if answer.status == 201 {
                            let id = answer.json()["paste_id"].as_str().unwrap().to_owned();
                            created.lock().unwrap().push((id, text.unwrap()));
                        }
                        let ended_in = *phase.lock().unwrap();
                        outcomes.lock().unwrap().push(Outcome {
                            route,
                            needs_store,
                            status: answer.status,
                            json_error: answer.is_json_error(),
                            body: String::from_utf8_lossy(
                                &answer.body[..answer.body.len().min(200)],
                            )
                            .into_owned(),
                            // A request that meets a fault belongs to it.
                            phase: if ended_in == "fault" {
                                "fault"
                            } else {
                                started_in
                            },
                        });
                        tokio::time::sleep(Duration::from_millis(15)).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            phase,
            outcomes,
            created,
            tasks,
        }
    }

    fn set_phase(&self, phase: &'static str) {
        *self.phase.lock().unwrap() = phase;
    }

    fn count(&self) -> usize {
        self.outcomes.lock().unwrap().len()
    }

    async fn finish(self) -> (Vec<Outcome>, Vec<(String, String)>) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
        let outcomes = self.outcomes.lock().unwrap().clone();
        let created = self.created.lock().unwrap().clone();
        (outcomes, created)
    }
}

/// SIGCONTs a stopped store when dropped, so a failing test never leaves a stopped
/// process that cannot see its launcher go.
struct Resume(i32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0), Signal::SIGCONT);
    }
}

/// The balancer's ejection count of every webserver.
async fn ejections(lb: &str) -> Vec<u64> {
    let status = get(lb, "/_lb/status").await.json();
    status["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["ejections"].as_u64().unwrap())
        .collect()
}

/// Whether the store-backed routes work again, through every webserver. Each
/// webserver, asked directly, must be ready (`/readyz` asks both stores, and is 503
/// while its deletion-log polls still find sqlsvc down, when its reads that need
/// sqlsvc fail fast): the balancer's round robin is shared with the load, so the
/// requests below need not reach every webserver, and the known paste may be
/// answered from a webserver's cache whatever the stores do. Then each route
/// through the balancer, several times.
async fn recovered(up: &Stack, known: &str) -> bool {
    for web in up.backends() {
        if get(&web, "/readyz").await.status != 200 {
            return false;
        }
    }
    let lb = up.lb.as_str();
    for _ in 0..3 {
        let ok = get(lb, &format!("/pastes/{known}")).await.status == 200
            && post(lb, "text/plain", b"recovery probe").await.status == 201
            && get(lb, "/pastes?limit=1").await.status == 200;
        if !ok {
            return false;
        }
    }
    true
}

#[tokio::test]
async fn stores_hung_and_killed_under_load_cost_only_their_own_routes() {
    let dir = tempfile::tempdir().unwrap();
    // Nested timeouts, short so each fault is quick: store calls 1 s < the
    // balancer's wait 2 s < its total 3 s.
    // The launcher restarts a killed store on the address it had: fixed ports, so
    // no parallel test is handed that port in between.
    let up = launch(
        dir.path(),
        "",
        &[
            "--web-store-timeout-ms",
            "1000",
            "--lb-response-timeout-ms",
            "2000",
            "--lb-total-timeout-ms",
            "3000",
        ],
    )
    .fixed_ports()
    .start()
    .await;
    let lb = up.lb.clone();
    let first = post(
        &lb,
        "application/json",
        br#"{"text": "written before the faults"}"#,
    )
    .await;
    assert_eq!(first.status, 201, "{first:?}");
    let known = first.json()["paste_id"].as_str().unwrap().to_owned();
    let load = Load::start(&lb, &known, 3);

    for store in ["sqlsvc", "nosqlsvc"] {
        for signal in [Signal::SIGSTOP, Signal::SIGKILL] {
            let pid = child_pid(&up, store).unwrap_or_else(|| panic!("no {store} child"));
            load.set_phase("fault");
            let before = load.count();
            kill(Pid::from_raw(pid), signal).unwrap();
            let resume = (signal == Signal::SIGSTOP).then_some(Resume(pid));
            // Hold the fault until the load has met it for a while: enough requests
            // for every route to have run into it more than once.
            let held = load.count();
            eventually(
                &format!("load during {store} {signal}"),
                Duration::from_secs(120),
                || {
                    let n = load.count();
                    async move { n >= held + 30 }
                },
            )
            .await;
            assert!(load.count() > before);
            drop(resume); // SIGCONT; a killed store is restarted by the launcher
            load.set_phase("recovery");
            eventually(
                &format!("recovery after {store} {signal}"),
                Duration::from_secs(60),
                || recovered(&up, &known),
            )
            .await;
            load.set_phase("after");
            // Every store really serves again (a new pid after a kill).
            if signal == Signal::SIGKILL {
                assert_ne!(child_pid(&up, store), Some(pid), "{store} not restarted");
            }
        }
    }
    let (outcomes, created) = load.finish().await;

    // Routes that need no store never failed, in any phase.
    let storeless: Vec<_> = outcomes.iter().filter(|o| !o.needs_store).collect();
    assert!(storeless.len() > 20, "too little load: {}", storeless.len());
    let failed: Vec<_> = storeless.iter().filter(|o| o.status != 200).collect();
    assert!(
        failed.is_empty(),
        "routes without a store failed: {failed:#?}"
    );

    // The others failed only as a webserver's JSON 5xx: never the balancer's own
    // timeout (the webserver's store timeout fires first) nor "no healthy webserver".
    let store_failures: Vec<_> = outcomes
        .iter()
        .filter(|o| o.needs_store && o.status >= 400)
        .collect();
    assert!(
        !store_failures.is_empty(),
        "the faults were never felt: is the load reaching the stores?"
    );
    for o in &store_failures {
        assert!(matches!(o.status, 502..=504), "{o:?}");
        assert!(o.json_error, "{o:?}");
        assert!(
            !o.body.contains("gateway timeout"),
            "the balancer timed out first: {o:?}"
        );
        assert!(!o.body.contains("no healthy webserver"), "{o:?}");
        assert!(
            o.phase == "fault" || o.phase == "recovery",
            "a failure outside a fault: {o:?}"
        );
    }
    let store_ok = outcomes
        .iter()
        .filter(|o| o.needs_store && o.status < 400)
        .count();
    assert!(
        store_ok > 10,
        "too few store requests succeeded: {store_ok}"
    );

    // No webserver was ejected for a store's fault.
    assert!(
        ejections(&lb).await.iter().all(|e| *e == 0),
        "{:?}",
        ejections(&lb).await
    );

    // Every 201 is readable afterwards, through the balancer, and is in the stores
    // themselves (asked directly: the webservers keep what they create in their
    // caches, so a read through them alone would not show a lost write).
    assert!(!created.is_empty());
    for (id, text) in &created {
        let answer = get(&lb, &format!("/pastes/{id}")).await;
        assert_eq!(answer.status, 200, "{id}: {answer:?}");
        assert_eq!(answer.json()["text"], text.as_str());
        assert_eq!(
            up.text_in_stores(id).await.as_deref(),
            Some(text.as_str()),
            "{id} is not in the stores"
        );
    }
    up.stop().await;
}

/// One case of the size matrix: a plain-text body of `repeat` copies of `unit`.
async fn size_case(lb: &str, limit: usize, unit: &str, bytes: usize) {
    assert_eq!(bytes % unit.len(), 0);
    let text = unit.repeat(bytes / unit.len());
    let what = format!("{} bytes of {unit:?} (limit {limit})", text.len());
    let answer = post(lb, "text/plain", text.as_bytes()).await;
    if text.len() > limit {
        assert_eq!(answer.status, 413, "{what}: {answer:?}");
        assert!(answer.is_json_error(), "{what}");
        return;
    }
    assert_eq!(answer.status, 201, "{what}: {:?}", answer.head);
    let url = String::from_utf8(answer.body.clone()).unwrap();
    let id = url.trim().rsplit('/').next().unwrap().to_owned();
    // Readable as JSON (escaped) and raw.
    let read = get(lb, &format!("/pastes/{id}")).await;
    assert_eq!(read.status, 200, "{what}: {:?}", read.head);
    assert!(
        read.json()["text"].as_str() == Some(text.as_str()),
        "{what}: text differs"
    );
    let raw = get(lb, &format!("/pastes/{id}/raw")).await;
    assert_eq!(raw.status, 200, "{what}");
    assert!(raw.body == text.as_bytes(), "{what}: raw text differs");
    // Listable: the newest paste, alone on its page if need be.
    let page = get(lb, "/pastes").await;
    assert_eq!(page.status, 200, "{what}: {:?}", page.head);
    let page = page.json();
    assert_eq!(page[0]["paste_id"], id.as_str(), "{what}");
    assert!(
        page[0]["text"].as_str() == Some(text.as_str()),
        "{what}: listed text differs"
    );
}

/// At, just under and just over `limit`, for ASCII, 2-byte UTF-8 and a control
/// character that JSON escapes as 6 bytes.
async fn size_matrix(lb: &str, limit: usize) {
    for unit in ["a", "é", "\u{1}"] {
        let step = unit.len();
        let at = limit / step * step;
        for bytes in [at - step, at, at + step] {
            size_case(lb, limit, unit, bytes).await;
        }
    }
    // A JSON body at the limit, its text all escapes: accepted and readable.
    let escapes = "\\u0001".repeat((limit - 12) / 6);
    let body = format!("{{\"text\":\"{escapes}\"}}");
    assert!(body.len() <= limit);
    let answer = post(lb, "application/json", body.as_bytes()).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let id = answer.json()["paste_id"].as_str().unwrap().to_owned();
    let read = get(lb, &format!("/pastes/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(
        read.json()["text"].as_str().unwrap().len(),
        (limit - 12) / 6
    );
}

#[tokio::test]
async fn the_size_matrix_holds_at_the_default_limit() {
    let dir = tempfile::tempdir().unwrap();
    let up = start(dir.path(), "", &[]).await;
    size_matrix(&up.lb, 512 * 1024).await;
    up.stop().await;
}

#[tokio::test]
async fn the_size_matrix_holds_at_the_largest_valid_limit() {
    let dir = tempfile::tempdir().unwrap();
    let limit = httpkit::limits::MAX_BODY_BYTES;
    // Generous timeouts: this is about sizes, and a debug build on a shared machine
    // is slow to escape 48 MiB of JSON.
    let up = start(
        dir.path(),
        &format!("max_body_bytes = {limit}"),
        &[
            "--web-store-timeout-ms",
            "60000",
            "--lb-response-timeout-ms",
            "90000",
            "--lb-total-timeout-ms",
            "120000",
        ],
    )
    .await;
    size_matrix(&up.lb, limit).await;
    // The listing of several of those pastes stays within its budget, one at least.
    let page = get(&up.lb, "/pastes?limit=50").await;
    assert_eq!(page.status, 200);
    assert!(page.body.len() <= httpkit::limits::json_escaped_max(limit) + 4096);
    assert!(
        page.header("link").is_some(),
        "a cut page links to the rest"
    );
    up.stop().await;
}

#[tokio::test]
async fn the_edge_leaks_no_internal_address_and_applies_one_header_limit() {
    let dir = tempfile::tempdir().unwrap();
    let up = start(dir.path(), "", &[]).await;
    let lb = up.lb.clone();
    let webs: HashSet<String> = up.backends().into_iter().collect();
    assert_eq!(webs.len(), 2);
    let leaks = |answer: &Answer| {
        let all = format!("{}{}", answer.head, String::from_utf8_lossy(&answer.body));
        webs.iter().any(|w| all.contains(w.as_str()))
    };
    let body = r#"{"text": "where do my links point?"}"#;
    for (why, head) in [
        ("HTTP/1.0 without Host", "POST /pastes HTTP/1.0\r\nContent-Type: application/json".to_owned()),
        ("an empty Host", "POST /pastes HTTP/1.1\r\nHost: \r\nContent-Type: application/json".to_owned()),
        ("a Host with a path", "POST /pastes HTTP/1.1\r\nHost: a.example/x\r\nContent-Type: application/json".to_owned()),
        ("Host named in Connection", "POST /pastes HTTP/1.1\r\nHost: paste.example\r\nConnection: Host\r\nContent-Type: application/json".to_owned()),
    ] {
        let answer = exchange(&lb, &head, body.as_bytes()).await;
        assert!(!leaks(&answer), "{why}: {answer:?}");
        assert!(answer.status == 201 || answer.status == 400, "{why}: {answer:?}");
        if answer.status == 201 {
            let location = answer.header("location").unwrap();
            assert!(
                location.starts_with(&format!("http://{lb}/")) || location.starts_with("http://paste.example/"),
                "{why}: {location}"
            );
        }
    }
    for (why, head) in [
        ("HTTP/1.1 without Host", "GET /pastes HTTP/1.1".to_owned()),
        (
            "two Hosts",
            format!("GET /pastes HTTP/1.1\r\nHost: {lb}\r\nHost: {lb}"),
        ),
    ] {
        let answer = exchange(&lb, &head, b"").await;
        assert_eq!(answer.status, 400, "{why}: {answer:?}");
        assert!(answer.is_json_error(), "{why}");
    }
    // /healthz through the balancer: no address, no pid.
    let health = get(&lb, "/healthz").await;
    assert_eq!(health.status, 200);
    assert!(!leaks(&health), "{health:?}");
    assert!(health.json().get("pid").is_none(), "{:?}", health.json());

    // Transfer codings other than chunked: 501.
    let answer = exchange(
        &lb,
        &format!("POST /pastes HTTP/1.1\r\nHost: {lb}\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip, chunked"),
        b"5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 501, "{answer:?}");
    assert!(says_nosniff(&answer), "{answer:?}");
    // A webserver refuses it the same way before its handler runs, and that answer
    // says nosniff too (every answer of every server does).
    for web in &webs {
        let answer = exchange(
            web,
            &format!("POST /pastes HTTP/1.1\r\nHost: {lb}\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip, chunked"),
            b"5\r\nhello\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(answer.status, 501, "{web}: {answer:?}");
        assert!(answer.is_json_error(), "{web}: {answer:?}");
        assert!(says_nosniff(&answer), "{web}: {answer:?}");
    }

    // One header-count limit: what the balancer accepts, the webserver behind it
    // serves; one more is refused at the edge.
    let limit = httpkit::framing::MAX_HEADERS;
    let with_headers = |n: usize| {
        // Host and Connection (added by `exchange`) count too.
        let mut head = format!("GET / HTTP/1.1\r\nHost: {lb}");
        for i in 0..n - 2 {
            head.push_str(&format!("\r\nX-Filler-{i}: {i}"));
        }
        head
    };
    let answer = exchange(&lb, &with_headers(limit), b"").await;
    assert_eq!(answer.status, 200, "{} headers: {:?}", limit, answer.head);
    let answer = exchange(&lb, &with_headers(limit + 1), b"").await;
    assert_eq!(
        answer.status,
        431,
        "{} headers: {:?}",
        limit + 1,
        answer.head
    );
    // A webserver asked directly draws the line at the same place.
    let web = webs.iter().next().unwrap().clone();
    let direct =
        |n: usize| with_headers(n).replace(&format!("Host: {lb}"), &format!("Host: {web}"));
    let answer = exchange(&web, &direct(limit), b"").await;
    assert_eq!(
        answer.status, 200,
        "{limit} headers direct: {:?}",
        answer.head
    );
    let answer = exchange(&web, &direct(limit + 1), b"").await;
    assert_eq!(
        answer.status,
        431,
        "{} headers direct: {:?}",
        limit + 1,
        answer.head
    );
    assert!(answer.is_json_error());
    up.stop().await;
}

#[tokio::test]
async fn a_second_launcher_on_the_same_data_directory_fails_at_once_naming_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let up = start(dir.path(), "", &[]).await;
    let config = dir.path().join("pastebin.toml");
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(testkit::stack::pastebin_binary())
            .arg("--config")
            .arg(&config)
            .arg("up")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the second launcher did not give up")
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pastebin-up.lock"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", up.pid())), "{stderr}");
    // It started nothing: the first stack still answers, with its own children.
    assert_eq!(get(&up.lb, "/healthz").await.status, 200);
    up.stop().await;
}

#[tokio::test]
async fn timeouts_that_do_not_nest_are_a_usage_error_naming_both_settings() {
    for (args, names) in [
        (
            vec!["--web-store-timeout-ms", "10000"],
            ["--web-store-timeout-ms", "--lb-response-timeout-ms"],
        ),
        (
            vec!["--lb-response-timeout-ms", "15000"],
            ["--lb-response-timeout-ms", "--lb-total-timeout-ms"],
        ),
    ] {
        let out = tokio::process::Command::new(testkit::stack::pastebin_binary())
            .args(&args)
            .arg("up")
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for name in names {
            assert!(stderr.contains(name), "{args:?}: {stderr}");
        }
    }
}
