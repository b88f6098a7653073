//! Each component as its own OS process, started the way a multi-host deployment
//! starts them (`pastebin sqlsvc|nosqlsvc|web|lb` with their peers' addresses): the
//! balancer in front of two webserver processes that are all killed, answers 503
//! quickly, and recovers by itself when one comes back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Spawned, announced, curlish, spawn_pastebin};

/// One component process and the address it announced.
struct Proc {
    child: Spawned,
    addr: String,
}

async fn spawn(kind: &str, listen: &str, data_dir: &Path, extra: &[&str]) -> Proc {
    let mut args: Vec<&std::ffi::OsStr> = vec![kind.as_ref(), "--listen".as_ref(), listen.as_ref()];
    args.extend(["--data-dir".as_ref(), data_dir.as_os_str()]);
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let mut child = spawn_pastebin(args);
    let line = announced(&mut child, |line| line.starts_with("LISTENING ")).await;
    let addr = line["LISTENING ".len()..].to_owned();
    Proc { child, addr }
}

/// Status of `GET path` over a fresh connection.
async fn status(addr: &str, path: &str) -> u16 {
    curlish("GET", &format!("http://{addr}{path}"), None)
        .await
        .0
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
