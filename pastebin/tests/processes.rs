//! Each component as its own OS process, started the way a multi-host deployment
//! starts them (`pastebin sqlsvc|nosqlsvc|web|lb` with their peers' addresses): the
//! balancer in front of two webserver processes that are all killed, answers 503
//! quickly, and recovers by itself when one comes back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// One component process and the address it announced.
struct Proc {
    child: Child,
    addr: String,
}

async fn spawn(kind: &str, listen: &str, data_dir: &Path, extra: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pastebin"))
        .arg(kind)
        .args(["--listen", listen])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("no LISTENING line within 30 s")
        .unwrap()
        .expect("exited before listening");
    let addr = line.strip_prefix("LISTENING ").expect(&line).to_owned();
    Proc { child, addr }
}

/// Status of `GET path` over a fresh connection.
async fn status(addr: &str, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut buf))
        .await
        .expect("answer within 15 s")
        .unwrap();
    String::from_utf8_lossy(&buf)[9..12].parse().unwrap()
}

#[tokio::test]
async fn all_webservers_killed_gives_quick_503_and_one_returning_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sql = spawn("sqlsvc", "127.0.0.1:0", &data, &[]).await;
    let nosql = spawn("nosqlsvc", "127.0.0.1:0", &data, &[]).await;
    let stores = ["--sqlsvc", &sql.addr, "--nosqlsvc", &nosql.addr];
    let mut webs = Vec::new();
    for _ in 0..2 {
        webs.push(spawn("web", "127.0.0.1:0", &data, &stores).await);
    }
    let list: Vec<&str> = webs
        .iter()
        .flat_map(|w| ["--webserver", w.addr.as_str()])
        .collect();
    let lb = spawn("lb", "127.0.0.1:0", &data, &list).await;
    assert_eq!(status(&lb.addr, "/readyz").await, 200);

    // kill -9 every webserver.
    let first_addr = webs[0].addr.clone();
    for web in &mut webs {
        web.child.start_kill().unwrap();
        web.child.wait().await.unwrap();
    }
    for _ in 0..5 {
        let started = Instant::now();
        let code = status(&lb.addr, "/pastes").await;
        assert!(code == 503 || code == 502, "{code}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }
    // Eventually (passive ejection marks both down) the answer is 503.
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&lb.addr, "/pastes").await != 503 {
        assert!(Instant::now() < deadline, "never answered 503");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One webserver comes back on its old address: the balancer finds it by itself.
    let _back = spawn("web", &first_addr, &data, &stores).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(&lb.addr, "/pastes").await != 200 {
        assert!(Instant::now() < deadline, "the balancer did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((sql, nosql, lb));
}
