//! `pastebin up` as a user runs it: real processes, a config file with port 0
//! everywhere, requests through the balancer reaching both webservers, a killed
//! webserver restarted, a clean stop on SIGTERM, and the data still there after.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `pastebin up`; killed (and so its children, which watch its pipe) if a
/// test fails half-way.
struct Up {
    child: Child,
    url: String,
}

impl Up {
    async fn start(dir: &Path, webservers: usize) -> Up {
        let config = dir.join("pastebin.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\n[lb]\nlisten = \"127.0.0.1:0\"\n[web]\ncount = {webservers}\nbase_port = 0\n[sqlsvc]\nlisten = \"127.0.0.1:0\"\n[nosqlsvc]\nlisten = \"127.0.0.1:0\"\n",
                dir.join("data")
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_pastebin"))
            .arg("--config")
            .arg(&config)
            .arg("up")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.starts_with("http://") {
                    return line;
                }
            }
            panic!("pastebin up exited without printing its URL");
        })
        .await
        .expect("no URL within 60 s");
        Up { child, url }
    }

    /// SIGTERM, then the launcher must exit cleanly within 30 s.
    async fn stop(mut self) {
        let pid = self.child.id().unwrap() as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("pastebin up did not stop within 30 s")
            .unwrap();
        assert!(status.success(), "{status}");
    }
}

async fn get(url: &str) -> (u16, serde_json::Value) {
    let out = curlish("GET", url, None).await;
    (
        out.0,
        serde_json::from_str(&out.1).unwrap_or(serde_json::Value::Null),
    )
}

/// A tiny HTTP/1.1 client over a fresh connection (no pooling: a restarted
/// webserver must not be hidden by a stale pooled connection in the test itself).
async fn curlish(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .expect("answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn up_serves_through_both_webservers_restarts_a_dead_one_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path(), 2).await;

    let (status, body) = curlish(
        "POST",
        &format!("{}/pastes/", up.url),
        Some(r#"{"text": "hello from up"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = created["paste_id"].as_str().unwrap().to_owned();

    let mut webs = HashSet::new();
    let mut pids = HashSet::new();
    for _ in 0..8 {
        let (status, health) = get(&format!("{}/healthz", up.url)).await;
        assert_eq!(status, 200);
        webs.insert(health["addr"].as_str().unwrap().to_owned());
        pids.insert(health["pid"].as_u64().unwrap());
    }
    assert_eq!(
        webs.len(),
        2,
        "requests through lb reach both webservers: {webs:?}"
    );

    // kill -9 one webserver: the launcher restarts it on the same address.
    let victim = *pids.iter().next().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut now_pids = HashSet::new();
        for _ in 0..6 {
            let (status, health) = get(&format!("{}/healthz", up.url)).await;
            if status == 200 {
                now_pids.insert(health["pid"].as_u64().unwrap());
            }
        }
        if now_pids.len() == 2 && !now_pids.contains(&victim) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webserver not restarted: {now_pids:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, paste) = get(&format!("{}/pastes/{id}", up.url)).await;
    assert_eq!(status, 200);
    assert_eq!(paste["text"], "hello from up");

    let lb_addr = up.url.trim_start_matches("http://").to_owned();
    up.stop().await;
    assert!(
        tokio::net::TcpStream::connect(&lb_addr).await.is_err(),
        "the balancer still listens after stop"
    );

    // Same data directory, a new topology: the paste is still there.
    let up = Up::start(dir.path(), 1).await;
    let (status, paste) = get(&format!("{}/pastes/{id}", up.url)).await;
    assert_eq!(status, 200);
    assert_eq!(paste["text"], "hello from up");
    up.stop().await;
}

#[tokio::test]
async fn bad_configuration_exits_with_a_usage_error_naming_the_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_pastebin"))
        .args(["up", "--webservers", "0"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--webservers"), "{stderr}");
}
