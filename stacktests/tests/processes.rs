//! Each component as its own OS process, started the way a multi-host deployment
//! starts them (`pastebin sqlsvc|nosqlsvc|web|lb` with their peers' addresses, and
//! `--exit-with-parent` so none outlives the test): the balancer in front of two
//! webserver processes that are all killed answers 503 (not a 504 after a timeout),
//! and recovers by itself when one comes back on its address.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use testkit::announce::Announcements;
use testkit::raw::fetch as curlish;
use testkit::stack::{Process, spawn_pastebin};

/// One component process and the address it announced.
struct Proc {
    child: Process,
    addr: String,
}

async fn spawn(kind: &str, listen: &str, data_dir: &Path, extra: &[&str]) -> Proc {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        kind.as_ref(),
        "--exit-with-parent".as_ref(),
        "--listen".as_ref(),
        listen.as_ref(),
    ];
    args.extend(["--data-dir".as_ref(), data_dir.as_os_str()]);
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let mut child = spawn_pastebin(args);
    let addr = Announcements::of(&mut child).listening().await;
    Proc { child, addr }
}

/// Status of `GET path` over a fresh connection.
async fn status(addr: &str, path: &str) -> u16 {
    curlish("GET", &format!("http://{addr}{path}"), None)
        .await
        .0
}

#[tokio::test]
async fn all_webservers_killed_gives_503_and_one_returning_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sql = spawn("sqlsvc", "127.0.0.1:0", &data, &[]).await;
    let nosql = spawn("nosqlsvc", "127.0.0.1:0", &data, &[]).await;
    let stores = ["--sqlsvc", &sql.addr, "--nosqlsvc", &nosql.addr];
    // The first webserver comes back on its address after being killed: a port no
    // parallel test can be handed by the kernel in between (outside the ephemeral
    // range), rather than a port-0 one that is free for anyone once it dies. The
    // second stays dead, but the balancer keeps trying its address: a port-0 one
    // could meanwhile be handed to a parallel test's server, which would answer.
    let first_addr = format!("127.0.0.1:{}", testkit::net::port_outside_ephemeral_range());
    let second_addr = format!("127.0.0.1:{}", testkit::net::port_outside_ephemeral_range());
    let mut webs = vec![
        spawn("web", &first_addr, &data, &stores).await,
        spawn("web", &second_addr, &data, &stores).await,
    ];
    let list: Vec<&str> = webs
        .iter()
        .flat_map(|w| ["--webserver", w.addr.as_str()])
        .collect();
    let lb = spawn("lb", "127.0.0.1:0", &data, &list).await;
    assert_eq!(status(&lb.addr, "/readyz").await, 200);

    // kill -9 every webserver.
    for web in &mut webs {
        web.child.start_kill().unwrap();
        web.child.wait().await.unwrap();
    }
    // Refused connections: 502 while the balancer learns, then 503; never a 504
    // (which would mean it waited for a timeout).
    for _ in 0..5 {
        let code = status(&lb.addr, "/pastes").await;
        assert!(code == 503 || code == 502, "{code}");
    }
    // Passive ejection and health checks mark both down: 503.
    testkit::eventually("the balancer answers 503", || async {
        status(&lb.addr, "/pastes").await == 503
    })
    .await;

    // One webserver comes back on its old address: the balancer finds it by itself.
    let _back = spawn("web", &first_addr, &data, &stores).await;
    testkit::eventually("the balancer recovers", || async {
        status(&lb.addr, "/pastes").await == 200
    })
    .await;
    drop((sql, nosql, lb));
}

#[tokio::test]
async fn a_component_exits_when_its_parent_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let mut sql = spawn("sqlsvc", "127.0.0.1:0", dir.path(), &[]).await;
    // The pipe on its stdin closes, as it does when the launcher dies.
    drop(sql.child.stdin.take());
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), sql.child.wait())
        .await
        .expect("the component outlived its parent")
        .unwrap();
    assert!(status.success(), "{status}");
}
