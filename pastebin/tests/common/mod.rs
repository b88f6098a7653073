//! Shared by the process-level tests: starting the `pastebin` binary, reading what it
//! announces on stdout, and a tiny HTTP client over fresh connections.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

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
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log.try_clone().expect("clone the stderr file"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pastebin");
    Spawned { child, log }
}

/// The first line `child` prints on stdout for which `wanted` holds (within 60 s).
pub async fn announced(child: &mut Child, wanted: impl Fn(&str) -> bool) -> String {
    let mut lines = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if wanted(&line) {
                return line;
            }
        }
        panic!("pastebin exited without announcing itself");
    })
    .await
    .expect("no announcement within 60 s")
}

/// A tiny HTTP/1.1 client over a fresh connection (no pooling: a restarted server
/// must not be hidden by a stale pooled connection in the test itself).
pub async fn curlish(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.expect("send");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut buf))
        .await
        .expect("answer within 15 s")
        .expect("read answer");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text[9..12].parse().expect("status code");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
