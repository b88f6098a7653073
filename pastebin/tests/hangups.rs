//! Hundreds of clients hanging up mid-request kill no server and leak nothing. In a
//! test binary of its own, so that the process's open file descriptors are the
//! stack's alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/helpers.rs"]
#[allow(dead_code)] // shared with the API tests, which use all of it
mod helpers;

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::Stack;

#[tokio::test]
async fn hundreds_of_clients_hanging_up_mid_request_kill_nothing() {
    let stack = Stack::spawn().await;
    stack.create("warm-up").await;
    let fds_before = open_fds();
    let lb = stack.lb.addr;
    let mut tasks = Vec::new();
    for i in 0..300u64 {
        let client = stack.client.clone();
        let url = stack.url("/pastes/");
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                // A whole POST, abandoned after a moment: often while its write waits
                // on a commit.
                0 => {
                    let body = serde_json::json!({ "text": format!("abandoned {i}") }).to_string();
                    let _ = tokio::time::timeout(
                        Duration::from_micros(200 + i * 20),
                        client.send(Method::POST, &url, Some(("application/json", body.into()))),
                    )
                    .await;
                }
                // Headers promising a body that never fully comes.
                1 => {
                    if let Ok(mut s) = TcpStream::connect(lb).await {
                        let _ = s
                            .write_all(
                                b"POST /pastes/ HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5000\r\n\r\nonly a part",
                            )
                            .await;
                        tokio::time::sleep(Duration::from_millis(i % 20)).await;
                    }
                }
                // Half a request line, then gone.
                _ => {
                    if let Ok(mut s) = TcpStream::connect(lb).await {
                        let _ = s.write_all(b"GET /pastes HT").await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Every tier still answers, through the balancer and directly.
    let id = stack.create("still alive").await;
    let resp = stack.client.get(&stack.url(&format!("/pastes/{id}"))).await;
    assert_eq!(resp.status, StatusCode::OK);
    stack.assert_all_healthy().await;
    // Nothing leaks: the servers (all in this process) close what was abandoned.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fds = open_fds();
        if fds <= fds_before + 30 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "file descriptors leak: {fds_before} before, {fds} after"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Abandoned writes either completed or not: whatever is listed reads back.
    let listed = stack
        .client
        .get(&stack.url("/pastes?limit=500"))
        .await
        .json();
    for p in listed.as_array().unwrap() {
        let resp = stack.client.get(p["url"].as_str().unwrap()).await;
        assert_eq!(resp.status, StatusCode::OK);
    }
    stack.shutdown().await;
}

/// Open file descriptors of this process (every server of the stack runs in it).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}
