//! The pastebin load balancer: round robin over the healthy webservers, with active
//! health checks, passive ejection, bounded retries, hot reload of the webserver list,
//! Prometheus metrics and a JSON status page, and a graceful drain on shutdown.

mod admin;
mod backend;
mod body;
mod checker;
mod config;
mod error;
mod headers;
mod health;
mod metrics;
mod proxy;
pub mod reload;
pub mod select;
mod server;
mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use admin::PREFIX as ADMIN_PREFIX;
pub use config::{Config, EjectionConfig, HealthConfig, RetryConfig, validate_backends};
pub use error::{Error, ProxyError};
pub use headers::usable_host;

use crate::admin::Route;
use crate::backend::Registry;
use crate::body::LbBody;
use crate::checker::HttpClient;
use crate::metrics::Totals;
use crate::proxy::Proxy;

/// Serves as the balancer on `listener` over `config.backends` until `shutdown`
/// completes, then drains (see [`httpkit::ServerConfig::drain_timeout`]). Requests
/// are served by `config.workers` threads of their own (see `server`); health checks
/// and reloads run on the caller's runtime.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    // A sender that is never used: the list stays `config.backends`.
    let (_keep, reload) = watch::channel(Vec::new());
    run_with_reload(listener, config, reload, shutdown).await
}

/// Like [`run`], and every list sent on `reload` replaces the webservers. The first
/// list is `config.backends`; the value `reload` has already seen is ignored (a fresh
/// receiver from `watch::channel` or `Sender::subscribe` has seen its initial value),
/// but a list sent and not yet seen when this is called, e.g. by a SIGHUP during
/// start-up, is applied at once: no list sent after the receiver was made is lost.
/// Kept webservers keep their state, new ones join after one passing health check,
/// removed ones finish their requests. A list with a bad entry is logged and ignored.
pub async fn run_with_reload(
    listener: TcpListener,
    config: Config,
    reload: watch::Receiver<Vec<String>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    run_boxed(listener, config, reload, Box::pin(shutdown)).await
}

/// [`run_with_reload`]'s body, boxed by a function that is not inlined, so that it is
/// compiled here (see [`httpkit::BoxFuture`]).
#[inline(never)]
fn run_boxed(
    listener: TcpListener,
    config: Config,
    reload: watch::Receiver<Vec<String>>,
    shutdown: httpkit::Shutdown<'_>,
) -> httpkit::BoxFuture<'_, Result<(), Error>> {
    Box::pin(run_body(listener, config, reload, shutdown))
}

async fn run_body(
    listener: TcpListener,
    config: Config,
    mut reload: watch::Receiver<Vec<String>>,
    shutdown: httpkit::Shutdown<'_>,
) -> Result<(), Error> {
    config.validate()?;
    let authorities = config
        .backends
        .iter()
        .map(|b| config::parse_authority(b))
        .collect::<Result<Vec<_>, _>>()?;
    let registry = Arc::new(Registry::new(authorities, &config.health));
    let client = checker::build_client(&config);
    let totals = Arc::new(Totals::default());
    let (stop_tx, stop) = watch::channel(false);
    for backend in registry.snapshot().iter() {
        checker::spawn(backend, client.clone(), config.health.clone(), stop.clone());
    }
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, backends = ?config.backends, "load balancer listening");
    }

    let reloader = {
        let registry = registry.clone();
        let client = client.clone();
        let health = config.health.clone();
        let totals = totals.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = reload.changed() => if changed.is_err() { return },
                    _ = stop.changed() => return,
                }
                let list = reload.borrow_and_update().clone();
                let counter = if apply_reload(&registry, &client, &health, &list, &stop) {
                    &totals.reloads
                } else {
                    &totals.reloads_rejected
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let server_config = config.server.clone();
    let workers = server::worker_count(config.workers);
    let lb = Lb {
        proxy: Proxy {
            registry,
            config: Arc::new(config),
            totals,
        },
    };
    let served = server::serve(listener, lb, workers, server_config, shutdown).await;
    let _ = stop_tx.send(true);
    reloader.abort();
    tracing::info!("load balancer stopped");
    served
}

/// Applies a new list; `false` if it had a bad entry and was ignored.
fn apply_reload(
    registry: &Registry,
    client: &HttpClient,
    health: &HealthConfig,
    list: &[String],
    stop: &watch::Receiver<bool>,
) -> bool {
    let parsed: Result<Vec<_>, _> = list.iter().map(|b| config::parse_authority(b)).collect();
    match parsed {
        Ok(authorities) => {
            for added in registry.replace(authorities, health) {
                checker::spawn(&added, client.clone(), health.clone(), stop.clone());
            }
            true
        }
        Err(err) => {
            tracing::error!(%err, "reload ignored; keeping the current webservers");
            false
        }
    }
}

/// The balancer's request handler: its own endpoints, or forward. Each worker thread
/// has its own copy.
#[derive(Clone)]
struct Lb {
    proxy: Proxy,
}

impl Lb {
    async fn handle(&self, req: Request<Incoming>, conn: &proxy::ClientConn) -> Response<LbBody> {
        let proxy = &self.proxy;
        proxy.totals.requests.inc();
        match Route::parse(req.method(), req.uri().path()) {
            Route::Forward => {}
            route => {
                return admin::respond(route, &proxy.registry, &proxy.totals).map(LbBody::Own);
            }
        }
        let method = req.method().clone();
        let uri = req.uri().clone();
        match proxy.forward(req, conn).await {
            Ok(resp) => resp,
            Err(err) => {
                proxy.totals.record_error(&err);
                tracing::info!(
                    %method, %uri, peer = %conn.peer, error = %err, status = err.status().as_u16(),
                    "request not forwarded"
                );
                err.into_response().map(LbBody::Own)
            }
        }
    }
}
