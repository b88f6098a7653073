//! Hundreds of clients hanging up mid-request kill no server and leak nothing: once
//! every client is gone, no server socket of the stack is left holding a connection
//! its client abandoned (read from the kernel's socket table, not estimated from a
//! count of file descriptors). In a test binary of its own, so its load does not
//! slow the API tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/helpers.rs"]
#[allow(dead_code)] // shared with the API tests, which use all of it
mod helpers;

use std::time::Duration;

use http::StatusCode;
use testkit::net::{TcpState, sockets_on_port};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::Stack;

#[tokio::test]
async fn hundreds_of_clients_hanging_up_mid_request_kill_nothing() {
    let stack = Stack::spawn().await;
    stack.create("warm-up").await;
    let lb = stack.lb.addr;
    // The abandoning clients' own pool: dropped with them.
    let abandoning = testkit::Client::new();
    let mut tasks = Vec::new();
    for i in 0..300u64 {
        let client = abandoning.clone();
        let url = stack.url("/pastes/");
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                // A whole POST, abandoned after a moment: often while its write waits
                // on a commit.
                0 => {
                    let body = serde_json::json!({ "text": format!("abandoned {i}") });
                    let _ = tokio::time::timeout(
                        Duration::from_micros(200 + i * 20),
                        client.post_json(&url, &body),
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
    drop(abandoning);
    // The stack's own client pools connections to the balancer; this test's checks
    // are made with it only after the socket check.
    let pooled: Vec<_> = sockets_on_port(lb.port())
        .into_iter()
        .filter(|s| s.state == TcpState::Established)
        .map(|s| s.peer)
        .collect();

    // Nothing leaks: every connection a client abandoned is closed by the server
    // (the balancer's, and the webservers' for what the balancer abandoned upstream).
    // A socket in CLOSE_WAIT is one whose client left and whose server never closed.
    let servers = [stack.lb.addr, stack.sqlsvc.addr, stack.nosqlsvc.addr]
        .into_iter()
        .chain(stack.webs.iter().map(|w| w.addr))
        .collect::<Vec<_>>();
    testkit::eventually(
        "every abandoned connection is closed by its server",
        || async {
            servers.iter().all(|addr| {
                sockets_on_port(addr.port()).iter().all(|s| {
                    s.state != TcpState::CloseWait
                        && !(addr.port() == lb.port()
                            && s.state == TcpState::Established
                            && !pooled.contains(&s.peer))
                })
            })
        },
    )
    .await;
    let left: Vec<_> = sockets_on_port(lb.port())
        .into_iter()
        .filter(|s| s.state.holds_a_descriptor())
        .collect();
    assert!(
        left.len() <= pooled.len(),
        "the balancer still holds client connections: {left:?}"
    );

    // Every tier still answers, through the balancer and directly.
    let id = stack.create("still alive").await;
    assert_eq!(stack.read(&id).await.status, StatusCode::OK);
    stack.assert_all_healthy().await;
    // Abandoned writes either completed or not: whatever is listed reads back.
    for id in stack.listed().await {
        let resp = stack.read(&id).await;
        assert_eq!(resp.status, StatusCode::OK, "{id}: {}", resp.text());
    }
    stack.shutdown().await;
}
