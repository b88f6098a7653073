//! Shared by the process-level tests: starting the `pastebin` binary with a pipe on
//! its stdin (a component started with `--exit-with-parent` exits when the test
//! process, and so the pipe, goes away, even if the test is killed), and a tiny HTTP
//! client over fresh connections.

#![allow(dead_code)] // each test binary uses part of it

use std::net::SocketAddr;

use tokio::process::{Child, Command};

#[allow(unused_imports)]
pub use testkit::announce::{Announcements, announced};

/// A `pastebin` process started by a test. Its stderr (its logs, and those of any
/// children it starts) goes to a temporary file that is printed only if the test
/// fails (drops this while panicking), so passing tests stay quiet and a failing one
/// shows what the processes said. Killed when dropped.
pub struct Spawned {
    child: Child,
    log: std::fs::File,
}

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        use std::io::{Read, Seek};
        let mut text = String::new();
        let _ = self.log.rewind();
        let _ = self.log.read_to_string(&mut text);
        // eprintln!, not a raw write: the test harness captures it with the failure.
        eprintln!(
            "---- stderr of pastebin (pid {:?}), shown because the test failed ----\n{text}---- end ----",
            self.child.id()
        );
    }
}

/// Spawns the `pastebin` binary with `args`: stdout piped (for its announcements),
/// logs at `RUST_LOG=warn` kept for a failure report (see [`Spawned`]), killed if
/// the test drops it.
pub fn spawn_pastebin<I, S>(args: I) -> Spawned
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let log = tempfile::tempfile().expect("a temporary file for stderr");
    let child = Command::new(env!("CARGO_BIN_EXE_pastebin"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(log.try_clone().expect("clone the stderr file"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pastebin");
    Spawned { child, log }
}

/// `METHOD url` over a fresh connection (no pooling: a restarted server must not be
/// hidden by a stale pooled connection in the test itself): status and body.
pub async fn curlish(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr: SocketAddr = tokio::net::lookup_host(authority)
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let request = testkit::raw::request(
        method,
        path,
        &[("Content-Type", "application/json")],
        body.unwrap_or("").as_bytes(),
    );
    let answer = testkit::raw::exchange(addr, &request).await;
    (answer.status(), answer.body_text())
}

/// A running `pastebin up` on a config file with port 0 everywhere; killed (and so
/// its children, which watch its pipe) if a test fails half-way.
pub struct Up {
    pub child: Child,
    pub url: String,
}

impl Up {
    pub async fn start(dir: &std::path::Path, webservers: usize) -> Up {
        Up::start_with_env(dir, webservers, &[]).await
    }

    /// With environment variables set for the launcher (the config's env layer).
    pub async fn start_with_env(
        dir: &std::path::Path,
        webservers: usize,
        env: &[(&str, &str)],
    ) -> Up {
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
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn pastebin up");
        let url = announced(&mut child, |line| line.starts_with("http://")).await;
        Up { child, url }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the launcher runs")
    }

    /// The launcher's children: `(pid, command line)`.
    pub fn children(&self) -> Vec<(u32, String)> {
        testkit::procs::children(self.pid())
    }

    /// The pid of the launcher's `kind` child (`sqlsvc`, `nosqlsvc`, `lb`), other than
    /// `not` (one just killed), waiting for one to run (after a restart).
    pub async fn child_pid(&self, kind: &str, not: Option<u32>) -> u32 {
        testkit::wait::eventually_within(
            &format!("a {kind} child runs"),
            testkit::wait::DEADLINE,
            || async {
                self.children()
                    .into_iter()
                    .find(|(pid, cmd)| {
                        cmd.split(' ').nth(1) == Some(kind)
                            && Some(*pid) != not
                            && testkit::procs::alive(*pid)
                    })
                    .map(|(pid, _)| pid)
            },
        )
        .await
    }

    /// `signal` (TERM or INT), then the launcher must exit cleanly (within 60 s) and
    /// leave none of its children running.
    pub async fn stop_with(mut self, signal: &str) {
        let children = self.children();
        assert!(!children.is_empty(), "the launcher has no children");
        testkit::procs::signal(self.pid(), signal);
        let status = tokio::time::timeout(std::time::Duration::from_secs(60), self.child.wait())
            .await
            .expect("pastebin up did not stop within 60 s")
            .unwrap();
        assert!(status.success(), "{status}");
        for (pid, cmd) in children {
            assert!(
                !testkit::procs::alive(pid),
                "{cmd} ({pid}) outlived the launcher"
            );
        }
    }

    /// SIGTERM, then a clean exit.
    pub async fn stop(self) {
        self.stop_with("TERM").await;
    }
}

/// `GET url` over a fresh connection: status and JSON body (Null if not JSON).
pub async fn get(url: &str) -> (u16, serde_json::Value) {
    let out = curlish("GET", url, None).await;
    (
        out.0,
        serde_json::from_str(&out.1).unwrap_or(serde_json::Value::Null),
    )
}
