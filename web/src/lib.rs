//! A pastebin webserver: routes the public REST API and pages, and calls the Read API
//! and Write API, which talk to sqlsvc and nosqlsvc over one pooled client.

mod error;
mod handlers;
mod routes;
mod time;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use httpkit::{Body, ClientConfig, Handler, JsonClient, ServerConfig};
use hyper::body::Incoming;
use read::ReadApi;
use tokio::net::TcpListener;
use write::WriteApi;

pub use error::ApiError;

/// Everything a webserver needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// sqlsvc's address, `host:port`.
    pub sqlsvc: String,
    /// nosqlsvc's address, `host:port`.
    pub nosqlsvc: String,
    /// Largest request body accepted, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// The public base URL of the service (`http://paste.example`) used in the links
    /// it hands out; when unset, taken from the request (`X-Forwarded-*` or `Host`).
    pub public_url: Option<String>,
    /// Bytes of pastes (metadata and text) kept in the in-process cache; 0: none.
    pub cache_bytes: usize,
    pub server: ServerConfig,
    pub client: ClientConfig,
}

impl Config {
    /// A config with the defaults for everything but the two stores' addresses.
    pub fn new(sqlsvc: impl Into<String>, nosqlsvc: impl Into<String>) -> Self {
        Self {
            sqlsvc: sqlsvc.into(),
            nosqlsvc: nosqlsvc.into(),
            max_body_bytes: 512 * 1024,
            public_url: None,
            cache_bytes: 64 * 1024 * 1024,
            server: ServerConfig::default(),
            client: ClientConfig::default(),
        }
    }
}

/// Shared state of one webserver.
pub(crate) struct App {
    pub(crate) read: ReadApi,
    pub(crate) write: WriteApi,
    pub(crate) max_body_bytes: usize,
    pub(crate) public_url: Option<String>,
    /// This server's own address, reported by `/healthz` so tests and operators can
    /// tell webservers apart behind the balancer.
    pub(crate) local_addr: String,
}

impl Handler for App {
    fn handle(
        &self,
        req: Request<Incoming>,
        _peer: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send {
        handlers::dispatch(self, req)
    }
}

/// Serves the public API on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let local_addr = listener.local_addr()?.to_string();
    let client = JsonClient::new(config.client.clone());
    let sqlsvc = format!("http://{}", config.sqlsvc);
    let nosqlsvc = format!("http://{}", config.nosqlsvc);
    let read = ReadApi::new(
        client.clone(),
        read::Upstreams {
            sqlsvc: sqlsvc.clone(),
            nosqlsvc: nosqlsvc.clone(),
        },
        config.cache_bytes,
    );
    // Drops cached pastes that were deleted; stopped when this server stops.
    let follower = AbortOnDrop(tokio::spawn(read.follow_deletions()));
    let app = App {
        read,
        write: WriteApi::new(client, write::Upstreams { sqlsvc, nosqlsvc }),
        max_body_bytes: config.max_body_bytes,
        public_url: config
            .public_url
            .map(|u| u.trim_end_matches('/').to_owned()),
        local_addr,
    };
    tracing::info!(addr = %app.local_addr, "webserver listening");
    httpkit::serve(listener, Arc::new(app), config.server, shutdown).await;
    drop(follower);
    Ok(())
}

/// Aborts a background task when the server that needs it stops, however it stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
