//! Faults: restarts keep the data; a stopped store gives the README's quick JSON 503
//! (never a 504 after a timeout, never a 500) and `/readyz` says so; the stack recovers
//! by itself. (Clients hanging up: tests/hangups.rs, alone in its process; kill -9 of
//! the stores: tests/crash.rs.)

use http::{Method, StatusCode};

use crate::helpers::Stack;

#[tokio::test]
async fn pastes_survive_a_restart_of_both_stores() {
    let mut stack = Stack::spawn().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(stack.create(&format!("durable {i}")).await);
    }
    stack.restart_sqlsvc().await;
    stack.restart_nosqlsvc().await;
    for (i, id) in ids.iter().enumerate() {
        let resp = stack.read(id).await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
        assert_eq!(resp.json()["text"], format!("durable {i}"));
        // The webservers keep what they create (and prefetch what the others do), so
        // the read above may be a cache hit: the restarted stores themselves, asked
        // directly, must hold it.
        let stored = testkit::client::text_in_stores(
            &stack.client,
            &stack.sqlsvc.addr.to_string(),
            &stack.nosqlsvc.addr.to_string(),
            id,
        )
        .await;
        assert_eq!(stored, Some(format!("durable {i}")), "{id}");
    }
    let mut listed = stack.listed().await;
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids);
    stack.shutdown().await;
}

const DURING: Option<(&str, &str)> = Some(("application/json", r#"{"text": "during"}"#));

#[tokio::test]
async fn a_stopped_sqlsvc_gives_json_503_and_the_stack_recovers() {
    let mut stack = Stack::spawn().await;
    let id = stack.create("before the outage").await;
    let listed_before = stack.listed().await;
    // Every webserver reads it once, so each holds it in its cache.
    for web in &stack.webs {
        let warm = stack.client.get(&web.url(&format!("/pastes/{id}"))).await;
        assert_eq!(warm.status, StatusCode::OK, "{}", warm.text());
    }
    stack.sqlsvc.stop().await;

    // 503 (refused: unavailable), not 504: a refused connection is answered at once,
    // not after the webserver's store timeout. The same straight from a webserver. A
    // paste the webservers hold in their cache is still served: only what needs
    // sqlsvc fails.
    let uncached = "AAAAAAAAAA";
    for _ in 0..4 {
        stack
            .read(uncached)
            .await
            .assert_error(StatusCode::SERVICE_UNAVAILABLE);
        stack
            .send(Method::POST, "/pastes/", DURING)
            .await
            .assert_error(StatusCode::SERVICE_UNAVAILABLE);
        stack
            .client
            .get(&stack.web_url(&format!("/pastes/{uncached}")))
            .await
            .assert_error(StatusCode::SERVICE_UNAVAILABLE);
        let cached = stack
            .client
            .get(&stack.web_url(&format!("/pastes/{id}")))
            .await;
        assert_eq!(cached.status, StatusCode::OK, "{}", cached.text());
        assert_eq!(cached.json()["text"], "before the outage");
    }
    stack
        .client
        .get(&stack.url("/pastes"))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);
    for web in &stack.webs {
        stack
            .client
            .get(&web.url("/readyz"))
            .await
            .assert_error(StatusCode::SERVICE_UNAVAILABLE);
        // Alive, though not ready: the balancer keeps it.
        assert_eq!(
            stack.client.get(&web.url("/healthz")).await.status,
            StatusCode::OK
        );
    }

    stack.restart_sqlsvc().await;
    let resp = stack.read(&id).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    // The failed POSTs left no paste behind.
    assert_eq!(stack.listed().await, listed_before);
    stack.create("after the outage").await;
    for web in &stack.webs {
        assert_eq!(
            stack.client.get(&web.url("/readyz")).await.status,
            StatusCode::OK
        );
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn a_stopped_nosqlsvc_gives_json_503_and_the_stack_recovers() {
    // Without prefetching: the webserver would otherwise cache the paste written
    // straight to the stores below within a poll (250 ms), maybe before nosqlsvc
    // stops, and serve it instead of the 503 this test expects.
    let mut stack = Stack::spawn_tuned(1, |c| c.cache_prefetch = false).await;
    let cached = stack.create("cached").await;
    let uncached = stack.create_in_stores("never read before the outage").await;
    // One read warms the (only) webserver's text cache.
    assert_eq!(stack.read(&cached).await.status, StatusCode::OK);
    stack.nosqlsvc.stop().await;

    stack
        .send(Method::POST, "/pastes/", DURING)
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);
    // A cached text is still served: texts never change, metadata is still asked for.
    let resp = stack.read(&cached).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.json()["text"], "cached");
    // A text not in the cache cannot be: 503, not a 404 or an empty text.
    stack
        .read(&uncached)
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);
    stack
        .client
        .get(&stack.web_url("/readyz"))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);

    stack.restart_nosqlsvc().await;
    assert_eq!(
        stack.read(&uncached).await.json()["text"],
        "never read before the outage"
    );
    let new_id = stack.create("after").await;
    assert_eq!(stack.read(&new_id).await.json()["text"], "after");
    assert_eq!(
        stack.client.get(&stack.web_url("/readyz")).await.status,
        StatusCode::OK
    );
    stack.shutdown().await;
}
