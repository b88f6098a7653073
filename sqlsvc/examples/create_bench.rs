//! Microbenchmark of creates: an in-process sqlsvc over a temporary database and N
//! concurrent keep-alive clients posting for a few seconds.
//! `cargo run --release -p sqlsvc --example create_bench -- [clients] [seconds]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlsvc::api::CreateMeta;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().map_or(64, |a| a.parse().unwrap());
    let seconds: u64 = args.next().map_or(5, |a| a.parse().unwrap());

    let dir = tempfile::tempdir_in(".").unwrap();
    let (listener, addr) = httpkit::server::bind_ephemeral().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = sqlsvc::Config {
        db_path: dir.path().join("bench.db"),
        readers: sqlsvc::default_readers(),
        server: httpkit::ServerConfig::default(),
        sweeper: None,
    };
    let server = tokio::spawn(sqlsvc::run(listener, config, async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let http = httpkit::JsonClient::new(httpkit::ClientConfig::default());
    let client = contract::MetaClient::new(http.clone(), format!("http://{addr}"));
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (client, done) = (client.clone(), done.clone());
            tokio::spawn(async move {
                let body = CreateMeta {
                    paste_path: format!("bench{i}").parse().unwrap(),
                    expires_at: None,
                    size: Some(100),
                    burn_after_reading: false,
                    unlisted: false,
                };
                while Instant::now() < deadline {
                    let _ = client.create(&body).await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let stats: serde_json::Value = http
        .get_json(&format!("http://{addr}/stats"))
        .await
        .unwrap();
    println!(
        "{clients} clients, {elapsed:.1}s: {n} creates, {:.0} creates/s; stats {stats}",
        n as f64 / elapsed
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
