//! Faults: restarts keep the data, a stopped tier gives quick 5xx and the stack
//! recovers by itself, and clients that hang up mid-request kill nothing.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::Stack;

#[tokio::test]
async fn pastes_survive_a_restart_of_both_stores() {
    let mut stack = Stack::spawn().await;
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(stack.create(&format!("durable {i}")).await);
        }
        ids
    };
    stack.restart_sqlsvc().await;
    stack.restart_nosqlsvc().await;
    for (i, id) in ids.iter().enumerate() {
        let resp = stack.client.get(&stack.url(&format!("/pastes/{id}"))).await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
        assert_eq!(resp.json()["text"], format!("durable {i}"));
    }
    assert_eq!(
        stack
            .client
            .get(&stack.url("/pastes"))
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        5
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_stopped_sqlsvc_gives_a_quick_json_5xx_and_the_stack_recovers() {
    let mut stack = Stack::spawn().await;
    let id = stack.create("before the outage").await;
    stack.sqlsvc.stop().await;

    let started = Instant::now();
    for _ in 0..4 {
        let resp = stack.client.get(&stack.url(&format!("/pastes/{id}"))).await;
        assert!(resp.status.is_server_error(), "{}", resp.status);
        assert!(
            matches!(
                resp.status,
                StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE
            ),
            "{}",
            resp.status
        );
        resp.assert_error(resp.status);
        let resp = stack
            .client
            .send(
                Method::POST,
                &stack.url("/pastes/"),
                Some(("application/json", r#"{"text": "during"}"#.into())),
            )
            .await;
        resp.assert_error(resp.status);
        assert!(resp.status.is_server_error());
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failing took {:?}",
        started.elapsed()
    );
    let ready = stack.client.get(&stack.url("/readyz")).await;
    assert!(ready.status.is_server_error());

    stack.start_sqlsvc_again().await;
    let resp = stack.client.get(&stack.url(&format!("/pastes/{id}"))).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    stack.create("after the outage").await;
    stack.shutdown().await;
}

#[tokio::test]
async fn a_stopped_nosqlsvc_gives_a_quick_json_5xx_and_the_stack_recovers() {
    let mut stack = Stack::spawn_with(1).await;
    let id = stack.create("cached").await;
    // One read warms the (only) webserver's text cache.
    let resp = stack.client.get(&stack.url(&format!("/pastes/{id}"))).await;
    assert_eq!(resp.status, StatusCode::OK);
    stack.nosqlsvc.stop().await;
    let resp = stack
        .client
        .send(
            Method::POST,
            &stack.url("/pastes/"),
            Some(("application/json", r#"{"text": "during"}"#.into())),
        )
        .await;
    resp.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    // A cached text is still served: texts never change, metadata is still asked for.
    let resp = stack.client.get(&stack.url(&format!("/pastes/{id}"))).await;
    assert_eq!(resp.status, StatusCode::OK);
    // Started again on the same address (stopping a stopped service does nothing).
    stack.restart_nosqlsvc().await;
    let new_id = stack.create("after").await;
    let resp = stack
        .client
        .get(&stack.url(&format!("/pastes/{new_id}")))
        .await;
    assert_eq!(resp.json()["text"], "after");
    stack.shutdown().await;
}

#[tokio::test]
async fn hundreds_of_clients_hanging_up_mid_request_kill_nothing() {
    let stack = Stack::spawn().await;
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
    for addr in [
        stack.sqlsvc.addr,
        stack.nosqlsvc.addr,
        stack.webs[0].addr,
        stack.webs[1].addr,
    ] {
        let resp = stack.client.get(&format!("http://{addr}/healthz")).await;
        assert_eq!(resp.status, StatusCode::OK);
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
