//! Concurrent creates (distinct ids, batched commits) and clients that hang up.

use std::collections::HashSet;
use std::time::Duration;

use sqlsvc::api::{CreateMeta, Meta};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_get_distinct_ids_and_are_batched() {
    let app = spawn_app().await;
    let url = app.url("/pastes");
    let creates = (0..200).map(|i| {
        let client = app.client.clone();
        let url = url.clone();
        async move {
            let body = CreateMeta {
                paste_path: format!("c{i}").parse().unwrap(),
                expires_at: None,
                size: Some(i),
                burn_after_reading: false,
                unlisted: false,
            };
            client.post_json::<_, Meta>(&url, &body).await.unwrap()
        }
    });
    let tasks: Vec<_> = creates.map(tokio::spawn).collect();
    let mut metas = Vec::new();
    for task in tasks {
        metas.push(task.await.unwrap());
    }
    let ids: HashSet<_> = metas.iter().map(|m| m.paste_id.clone()).collect();
    assert_eq!(ids.len(), 200);
    for meta in &metas {
        let fetched: Meta = app
            .client
            .get_json(&app.url(&format!("/pastes/{}", meta.paste_id)))
            .await
            .unwrap();
        assert_eq!(&fetched, meta);
    }
    let (_, stats) = app.get("/stats").await;
    assert_eq!(stats["created"], 200);
    let commits = stats["commits"].as_u64().unwrap();
    assert!(commits < 200, "no batching: {stats}");
    assert!(stats["largest_batch"].as_u64().unwrap() > 1, "{stats}");
    eprintln!("200 concurrent creates: {stats}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_hanging_up_do_not_hurt_the_server() {
    let app = spawn_app().await;
    let addr = app.addr;
    let hangups = (0..200u64).map(|i| async move {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            return;
        };
        let body = format!(r#"{{"paste_path":"gone{i}"}}"#);
        let head = format!(
            "POST /pastes HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        if i % 2 == 0 {
            // Half send the whole request and hang up while it is being committed...
            let _ = stream.write_all(body.as_bytes()).await;
        } else {
            // ...half hang up in the middle of the body.
            let _ = stream.write_all(&body.as_bytes()[..5]).await;
        }
        tokio::time::sleep(Duration::from_millis(1 + i % 5)).await;
        drop(stream);
    });
    let spawned: Vec<_> = hangups.map(tokio::spawn).collect();
    for task in spawned {
        task.await.unwrap();
    }
    // Still serving, still creating.
    assert_eq!(app.get("/healthz").await.0, 200);
    let meta = app.create("after").await;
    assert_eq!(app.get(&format!("/pastes/{}", meta.paste_id)).await.0, 200);
    let (_, stats) = app.get("/stats").await;
    assert_eq!(stats["failed_batches"], 0, "{stats}");
    app.stop().await;
}
