//! The launcher (`pastebin up`): a crashed store is restarted with a growing back-off
//! and keeps its data; its children exit when it is killed; SIGINT stops everything
//! cleanly; the environment-variable layer of the config.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use testkit::raw::{fetch as curlish, get_json as get};
use testkit::{Launch, Stack};

async fn create(up: &Stack, text: &str) -> String {
    let body = serde_json::json!({ "text": text }).to_string();
    let (status, body) = curlish("POST", &format!("{}/pastes/", up.url), Some(&body)).await;
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    created["paste_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_crashed_store_is_restarted_with_back_off_and_children_die_with_the_launcher() {
    // sqlsvc comes back on the address it had: a port no parallel test can be handed
    // in between (see `Launch::fixed_ports`).
    let up = Launch::new().webservers(1).fixed_ports().start().await;
    let id = create(&up, "written before the crashes").await;

    // kill -9 sqlsvc three times in a row, each time as soon as it is back: the
    // launcher restarts it each time, waiting longer each time (250 ms doubling).
    // Only lower bounds are asserted: a timer never fires early, whatever the load.
    let mut gaps = Vec::new();
    for _ in 0..3 {
        let pid = up.child_pid("sqlsvc", None).await;
        let killed = Instant::now();
        testkit::procs::signal(pid, "KILL");
        up.child_pid("sqlsvc", Some(pid)).await;
        gaps.push(killed.elapsed());
    }
    for (gap, at_least) in gaps.iter().zip([250u64, 500, 1000]) {
        assert!(
            *gap >= Duration::from_millis(at_least),
            "restart gaps {gaps:?}: back-off not growing"
        );
    }
    // Back on the address it had: the stack serves, the data is still there. The
    // webserver's cache may answer the paste before sqlsvc listens again, so wait on
    // `/readyz` (which asks both stores), not on a read.
    testkit::eventually("the stack is ready again after sqlsvc restarts", || async {
        get(&format!("{}/readyz", up.url)).await.0 == 200
    })
    .await;
    let (_, paste) = get(&format!("{}/pastes/{id}", up.url)).await;
    assert_eq!(paste["text"], "written before the crashes");
    create(&up, "written after the crashes").await;

    // kill -9 of the launcher itself: every child sees its pipe close and exits.
    let children = up.children();
    assert_eq!(children.len(), 4, "{children:?}");
    testkit::procs::signal(up.pid(), "KILL");
    testkit::eventually("every child exits once the launcher is gone", || async {
        children.iter().all(|(pid, _)| !testkit::procs::alive(*pid))
    })
    .await;
}

#[tokio::test]
async fn sigterm_stops_the_balancer_then_the_webservers_then_the_stores() {
    let up = Launch::new().start().await;
    let tier = |cmd: &str| match cmd.split(' ').nth(1) {
        Some("lb") => 0,
        Some("web") => 1,
        Some("sqlsvc" | "nosqlsvc") => 2,
        other => panic!("unexpected child {other:?}"),
    };
    let children: Vec<(u32, usize)> = up
        .children()
        .iter()
        .map(|(pid, cmd)| (*pid, tier(cmd)))
        .collect();
    assert_eq!(children.len(), 5, "{children:?}");
    testkit::procs::signal(up.pid(), "TERM");
    // Watch the children die. Whenever a process of a tier is seen gone, every
    // process of the tiers before it must be gone already. (Two that die between
    // two looks are seen together, which never fails the check wrongly.)
    let mut up = up;
    // Looked at every millisecond or so, to see the tiers apart.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alive: Vec<(u32, usize)> = children
            .iter()
            .copied()
            .filter(|(pid, _)| testkit::procs::alive(*pid))
            .collect();
        for (pid, tier) in &children {
            if !alive.iter().any(|(p, _)| p == pid) {
                assert!(
                    alive.iter().all(|(_, t)| t >= tier),
                    "tier {tier} ({pid}) stopped before an earlier tier: alive {alive:?}"
                );
            }
        }
        if alive.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "children still alive: {alive:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let status = up.process.exit_within(testkit::stack::STOP_LIMIT).await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn sigint_stops_every_child_cleanly() {
    let up = Launch::new().start().await;
    let lb_addr = up.lb.clone();
    up.stop_with("INT").await;
    assert!(
        tokio::net::TcpStream::connect(&lb_addr).await.is_err(),
        "the balancer still listens after SIGINT"
    );
}

#[tokio::test]
async fn environment_variables_override_the_config_file_and_are_validated() {
    // A bad value from the environment: a usage error naming the setting.
    let out = tokio::process::Command::new(testkit::stack::pastebin_binary())
        .arg("up")
        .env("PASTEBIN_WEBSERVERS", "0")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("webservers"), "{stderr}");

    // The file says 2 webservers, the environment 1: the environment wins.
    let up = Launch::new()
        .webservers(2)
        .env("PASTEBIN_WEBSERVERS", "1")
        .start()
        .await;
    let mut seen = HashSet::new();
    for _ in 0..6 {
        let (status, health) = get(&format!("{}/healthz", up.url)).await;
        assert_eq!(status, 200);
        seen.insert(health["instance"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    let webs = up
        .children()
        .iter()
        .filter(|(_, cmd)| cmd.split(' ').nth(1) == Some("web"))
        .count();
    assert_eq!(webs, 1);
    up.stop().await;
}

/// Delete tokens are secrets: a stack logging at debug (`RUST_LOG`, which every
/// component honours), its logs captured (the launcher's stderr, which its children
/// share), creates pastes (JSON and text/plain),
/// deletes them with the right token, with wrong ones and with a token of another
/// paste, also while sqlsvc is down (the error paths log what failed); no log line
/// and no file in the data directory holds any token.
#[tokio::test]
async fn delete_tokens_are_never_logged_nor_stored() {
    let mut up = Launch::new()
        .env("RUST_LOG", "debug")
        .fixed_ports()
        .start()
        .await;
    let client = testkit::Client::new();
    let mut tokens = Vec::new();
    let mut pastes = Vec::new();
    for i in 0..6 {
        let resp = client
            .post_json(
                &up.url("/pastes"),
                &serde_json::json!({ "text": format!("secret-free paste {i}") }),
            )
            .await;
        assert_eq!(resp.status, http::StatusCode::CREATED, "{}", resp.text());
        let json = resp.json();
        let token = json["delete_token"].as_str().unwrap().to_owned();
        pastes.push((json["paste_id"].as_str().unwrap().to_owned(), token.clone()));
        tokens.push(token);
    }
    for i in 0..2 {
        let resp = client
            .send(
                http::Method::POST,
                &up.url("/pastes"),
                Some(("text/plain", format!("plain paste {i}").into())),
            )
            .await;
        assert_eq!(resp.status, http::StatusCode::CREATED, "{}", resp.text());
        let (id, token) = resp.created_plain();
        pastes.push((id, token.clone()));
        tokens.push(token);
    }
    let wrong = [
        "WrongTokenWrongTokenWrongToken01".to_owned(),
        "ShortWrongToken".to_owned(),
        format!("{}junk", tokens[0]),
    ];
    tokens.extend(wrong.iter().cloned());
    let delete = |id: String, authorization: String| {
        let client = client.clone();
        let url = up.url(&format!("/pastes/{id}"));
        async move {
            let req = http::Request::delete(url)
                .header("authorization", authorization)
                .body(testkit::client::body(""))
                .unwrap();
            client.request(req).await.map(|a| a.status).ok()
        }
    };
    // Wrong tokens, another paste's token, the right token in the wrong scheme.
    for (i, (id, _)) in pastes.iter().enumerate() {
        for auth in [
            format!("Bearer {}", wrong[i % wrong.len()]),
            format!("Bearer {}", pastes[(i + 1) % pastes.len()].1),
            format!("Basic {}", pastes[i].1),
        ] {
            let status = delete(id.clone(), auth).await;
            assert_eq!(status, Some(http::StatusCode::NOT_FOUND));
        }
    }
    // The right token for half of them.
    for (id, token) in pastes.iter().step_by(2) {
        let status = delete(id.clone(), format!("Bearer {token}")).await;
        assert_eq!(status, Some(http::StatusCode::NO_CONTENT));
    }
    // A delete while sqlsvc is down, then again once the launcher has restarted it.
    let sqlsvc = up.child_pid("sqlsvc", None).await;
    testkit::procs::signal(sqlsvc, "KILL");
    let (id, token) = pastes[1].clone();
    let _ = delete(id.clone(), format!("Bearer {token}")).await;
    up.child_pid("sqlsvc", Some(sqlsvc)).await;
    testkit::eventually("the delete succeeds once sqlsvc is back", || async {
        matches!(
            delete(id.clone(), format!("Bearer {token}")).await,
            Some(http::StatusCode::NO_CONTENT | http::StatusCode::NOT_FOUND)
        )
    })
    .await;
    let data_dir = up.data_dir.clone();
    up.process.stop_with("TERM").await;

    let log = up.process.log();
    // Every component's log is in there (at warn, the default of tests, these info
    // lines would not be), the restarted sqlsvc's too. Few lines are below info on
    // these paths; the error path of the delete while sqlsvc was down logs at warn.
    for kind in ["lb", "web", "nosqlsvc"] {
        let line = format!("listening component=\"{kind}\"");
        assert!(log.contains(&line), "no {line:?} in the logs:\n{log}");
    }
    assert!(
        log.matches("listening component=\"sqlsvc\"").count() >= 2,
        "the restarted sqlsvc's log is missing:\n{log}"
    );
    for token in &tokens {
        assert!(
            !log.contains(token.as_str()),
            "a delete token is in the logs:\n{log}"
        );
    }
    // Only a hash of each token is kept: no file under the data directory (the SQLite
    // database and its WAL, the text store) holds one.
    let mut files = vec![data_dir];
    let mut seen = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        seen += 1;
        for token in &tokens {
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "{} holds a delete token",
                path.display()
            );
        }
    }
    assert!(seen > 0, "no file in the data directory");
}
