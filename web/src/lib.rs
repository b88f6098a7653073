//! A pastebin webserver: routes the public REST API and pages, and calls the Read API
//! and Write API, which talk to sqlsvc and nosqlsvc over one pooled client (the
//! followers of sqlsvc's logs over one of their own, on their own thread).

mod error;
mod handlers;
mod inflight;
mod negotiate;
mod openapi;
mod routes;
mod time;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use httpkit::{Body, ClientConfig, Handler, JsonClient, ServerConfig};
use hyper::body::Incoming;
use read::ReadApi;
use tokio::net::TcpListener;
use write::WriteApi;

pub use error::ApiError;

/// The longest lifetime a paste may be given unless configured: ten years.
pub const DEFAULT_MAX_EXPIRES_IN: u64 = contract::defaults::MAX_EXPIRES_IN;

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
    /// Whether the cache also takes the pastes other webservers create, fetched in
    /// batches by following sqlsvc's creations (`read::prefetch`), so their first
    /// read here is a hit.
    pub cache_prefetch: bool,
    /// The time one request may spend on store calls in all; then 504. Must be
    /// clearly shorter than the balancer's wait for a webserver, so the webserver
    /// answers first and is not blamed for a slow store.
    pub store_timeout: Duration,
    /// Bytes of large answers that may be held at once for clients still reading
    /// them (see `inflight`).
    pub response_bytes_in_flight: usize,
    /// The accept loop's limits; `max_headers` is the clients' limit, and the
    /// webserver takes the balancer's forwarding headers on top.
    pub server: ServerConfig,
    /// The store client; its answer limit follows from `max_body_bytes` and its call
    /// timeout is at most `store_timeout`.
    pub client: ClientConfig,
    /// The longest `expires_in` a create may ask for, in seconds.
    pub max_expires_in: u64,
    /// The lifetime of a paste created without `expires_in`; None: it never expires.
    pub default_expires_in: Option<u64>,
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
            cache_prefetch: true,
            store_timeout: Duration::from_secs(5),
            response_bytes_in_flight: 64 * 1024 * 1024,
            server: ServerConfig::default(),
            client: ClientConfig::default(),
            max_expires_in: DEFAULT_MAX_EXPIRES_IN,
            default_expires_in: None,
        }
    }
}

/// Shared state of one webserver.
pub(crate) struct App {
    pub(crate) read: ReadApi,
    pub(crate) write: WriteApi,
    pub(crate) max_body_bytes: usize,
    pub(crate) public_url: Option<String>,
    /// This server's own address, reported by `/healthz` when asked directly.
    pub(crate) local_addr: String,
    /// A random token naming this process, reported by `/healthz` even through the
    /// balancer, so webservers can be told apart without revealing their addresses.
    pub(crate) instance: String,
    pub(crate) store_timeout: Duration,
    pub(crate) in_flight: inflight::InFlight,
    pub(crate) max_expires_in: u64,
    pub(crate) default_expires_in: Option<u64>,
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
    run_boxed(listener, config, Box::pin(shutdown)).await
}

/// [`run`]'s body, boxed by a function that is not inlined, so that it is compiled
/// here (see [`httpkit::BoxFuture`]).
#[inline(never)]
fn run_boxed(
    listener: TcpListener,
    config: Config,
    shutdown: httpkit::Shutdown<'_>,
) -> httpkit::BoxFuture<'_, std::io::Result<()>> {
    Box::pin(run_body(listener, config, shutdown))
}

async fn run_body(
    listener: TcpListener,
    config: Config,
    shutdown: httpkit::Shutdown<'_>,
) -> std::io::Result<()> {
    let local_addr = listener.local_addr()?.to_string();
    httpkit::limits::check_body_limit(config.max_body_bytes).map_err(|msg| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("max_body_bytes {msg}"),
        )
    })?;
    if config.max_expires_in == 0
        || config
            .default_expires_in
            .is_some_and(|d| d == 0 || d > config.max_expires_in)
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "max_expires_in must be at least 1 s, and default_expires_in between 1 s and it",
        ));
    }
    let mut client_config = config.client.clone();
    // Whatever was accepted must be readable back: the answer limit follows from
    // the body limit (6x JSON escaping, a listing's batch of texts).
    client_config.max_response_bytes = httpkit::limits::store_answer_bytes(config.max_body_bytes);
    // Each store call is bounded by the store timeout, the documented setting (before,
    // it was also capped at the client's 10 s default, so a longer setting was ignored).
    client_config.request_timeout = config.store_timeout;
    let client = JsonClient::new(client_config.clone());
    let mut server = config.server.clone();
    server.max_headers = server
        .max_headers
        .saturating_add(httpkit::framing::FORWARDING_HEADERS);
    let sqlsvc = format!("http://{}", config.sqlsvc);
    let nosqlsvc = format!("http://{}", config.nosqlsvc);
    let read = ReadApi::new(
        client.clone(),
        contract::Upstreams {
            sqlsvc: sqlsvc.clone(),
            nosqlsvc: nosqlsvc.clone(),
        },
        config.cache_bytes,
    );
    // Drop cached pastes that were deleted, and cache the pastes other webservers
    // create before they are read here; stopped when this server stops.
    let followers = Followers::start(
        read.on_client(
            JsonClient::new(client_config),
            contract::Upstreams {
                sqlsvc: sqlsvc.clone(),
                nosqlsvc: nosqlsvc.clone(),
            },
        ),
        config.cache_prefetch && config.cache_bytes > 0,
    )?;
    // Sends the view counts to sqlsvc in batches; stopped when this server stops
    // (after one last flush below).
    let flusher = AbortOnDrop(tokio::spawn(read.flush_views()));
    let last_flush = read.clone();
    let app = App {
        read,
        write: WriteApi::new(client, contract::Upstreams { sqlsvc, nosqlsvc }),
        max_body_bytes: config.max_body_bytes,
        public_url: config
            .public_url
            .map(|u| u.trim_end_matches('/').to_owned()),
        local_addr,
        instance: instance_token(),
        store_timeout: config.store_timeout,
        in_flight: inflight::InFlight::new(config.response_bytes_in_flight, config.store_timeout),
        max_expires_in: config.max_expires_in,
        default_expires_in: config.default_expires_in,
    };
    tracing::info!(addr = %app.local_addr, "webserver listening");
    httpkit::serve(listener, Arc::new(app), server, shutdown).await;
    drop(flusher);
    // The views counted since the last flush, bounded by the store timeout.
    let _ = tokio::time::timeout(config.store_timeout, last_flush.flush_views_once()).await;
    drop(followers);
    Ok(())
}

/// The followers of sqlsvc's deletion log and creations (`read::invalidation`,
/// `read::prefetch`), on a thread and runtime of their own with a client of their
/// own. On the requests' runtime a poll's answer waits behind every request queued
/// there: on a webserver short of CPU (an emulated host with a CPU quota, throttled
/// most of the time, with hundreds of requests queued) creations polls came four
/// to five times more rarely than on its peers and misses on new pastes piled up; the
/// deletion-log polls waited in the same queue. On a thread of its own, the kernel
/// runs a poll's task as soon as its answer arrives. Stopped when dropped: the
/// thread's end of the channel then resolves, and its tasks are aborted.
struct Followers {
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Followers {
    fn start(read: ReadApi, prefetch: bool) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("web-followers".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let _deletions = AbortOnDrop(tokio::spawn(read.follow_deletions()));
                    let _creations =
                        prefetch.then(|| AbortOnDrop(tokio::spawn(read.follow_creations())));
                    // Resolves (with an error) when the server drops `_stop`.
                    let _ = stopped.await;
                });
            })?;
        Ok(Self { _stop: stop })
    }
}

/// Aborts a background task when the server that needs it stops, however it stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// 16 hex digits from the process id and the clock, hashed with a random key: unique
/// per process, and revealing neither.
fn instance_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    format!("{:016x}", hasher.finish())
}
