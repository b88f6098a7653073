//! Faults: restarts keep the data, and a stopped tier gives quick 5xx and the stack
//! recovers by itself. (Clients hanging up: tests/hangups.rs, alone in its process.)

use std::time::{Duration, Instant};

use http::{Method, StatusCode};

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
