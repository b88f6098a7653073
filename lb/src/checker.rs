//! Active health checks: one task per webserver sends `GET {health.path}` every
//! interval and feeds the result to its health state. A task ends when its webserver
//! has been removed and finished its requests, or on shutdown. The checks run on the
//! caller's runtime, apart from the forwarding workers.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use http::{Request, header};
use http_body_util::{BodyExt, Limited};
use tokio::sync::watch;

use crate::backend::Backend;
use crate::body::ForwardBody;
use crate::config::Config;
use crate::config::HealthConfig;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The health checks' pooled keep-alive client (forwarding uses each worker's own
/// connections, see `upstream`).
pub type HttpClient = Client<HttpConnector, ForwardBody>;

/// Builds the health checks' client.
pub fn build_client(config: &Config) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .build(connector)
}

/// Largest health answer read (the body is drained so the connection is reused).
const MAX_HEALTH_BODY: usize = 64 * 1024;

/// Starts checking `backend` now and every `config.interval` until `stop` turns true.
pub fn spawn(
    backend: &Arc<Backend>,
    client: HttpClient,
    config: HealthConfig,
    stop: watch::Receiver<bool>,
) {
    let weak = Arc::downgrade(backend);
    tokio::spawn(check_loop(weak, client, config, stop));
}

async fn check_loop(
    backend: Weak<Backend>,
    client: HttpClient,
    config: HealthConfig,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        // Holding the Arc only during a check lets a removed webserver go away.
        let Some(b) = backend.upgrade() else { return };
        let started = Instant::now();
        let ok = tokio::select! {
            ok = check(&client, &b, config.timeout) => ok,
            _ = stop.changed() => return,
        };
        b.record_check(ok, started, &config);
        drop(b);
        tokio::select! {
            () = tokio::time::sleep(config.interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One check: a 2xx answer within `timeout` passes.
async fn check(client: &HttpClient, backend: &Backend, timeout: Duration) -> bool {
    let req = Request::get(backend.health_uri().clone())
        .header(header::USER_AGENT, "pastebin-lb-health")
        .body(ForwardBody::empty());
    let Ok(req) = req else { return false };
    let exchange = async {
        let resp = client.request(req).await.ok()?;
        let ok = resp.status().is_success();
        Limited::new(resp.into_body(), MAX_HEALTH_BODY)
            .collect()
            .await
            .ok()?;
        Some(ok)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Some(ok)) => ok,
        Ok(None) | Err(_) => {
            tracing::debug!(backend = backend.addr(), "health check failed");
            false
        }
    }
}
