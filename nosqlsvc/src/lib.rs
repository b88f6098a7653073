//! nosqlsvc: the paste texts (path -> text) over HTTP/JSON, behind one storage trait
//! with an embedded (redb) and a MongoDB backend.

pub mod api;
mod config;
pub mod embedded;
mod error;
mod handler;
pub mod paths;
mod routes;

/// The MongoDB backend, a crate of its own (see its documentation).
pub use nosqlsvc_mongo as mongo;
/// The storage trait every backend implements.
pub use nosqlsvc_store as store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use config::{
    BackendConfig, Config, DEFAULT_EMBEDDED_CACHE_BYTES, DEFAULT_LISTEN_ADDR,
    DEFAULT_MAX_BODY_BYTES,
};
pub use error::Error;
use handler::App;
pub use mongo::{MongoConfig, MongoWriteConcern, WriteAck};
use store::TextStore;

/// How long to wait, after the drain, for the last connection tasks to let go of the
/// store so it can be closed cleanly (releasing the file lock).
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Opens the configured backend and serves the API on `listener` until `shutdown`
/// completes; then drains connections and closes the store.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    run_boxed(listener, config, Box::pin(shutdown)).await
}

/// [`run`]'s body, boxed by a function that is not inlined, so that it is compiled
/// here (see [`httpkit::BoxFuture`]).
#[inline(never)]
fn run_boxed(
    listener: TcpListener,
    config: Config,
    shutdown: httpkit::Shutdown<'_>,
) -> httpkit::BoxFuture<'_, Result<(), Error>> {
    Box::pin(run_body(listener, config, shutdown))
}

async fn run_body(
    listener: TcpListener,
    config: Config,
    shutdown: httpkit::Shutdown<'_>,
) -> Result<(), Error> {
    config.validate()?;
    match &config.backend {
        BackendConfig::Embedded { path, cache_bytes } => {
            let store = embedded::RedbStore::open_with_cache(
                path,
                embedded::GroupCommit::default(),
                *cache_bytes,
            )
            .await
            .map_err(|source| Error::OpenEmbedded {
                path: path.clone(),
                source,
            })?;
            tracing::info!(path = %path.display(), "embedded store open");
            serve_store(listener, store, config, shutdown).await;
        }
        BackendConfig::MongoDb(settings) => {
            let store = mongo::MongoStore::connect(settings)
                .await
                .map_err(Error::MongoSetup)?;
            tracing::info!(
                database = %settings.database,
                collection = %settings.collection,
                "MongoDB client ready (connects lazily)"
            );
            serve_store(listener, store, config, shutdown).await;
        }
    }
    Ok(())
}

/// Serves the API over an already opened `store` until `shutdown`, then closes it.
/// `config.backend` is ignored. Used by [`run`] and by tests of new backends.
pub async fn serve_store<S: TextStore>(
    listener: TcpListener,
    store: S,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "nosqlsvc listening");
    }
    let app = Arc::new(App::new(store, config.max_body_bytes));
    httpkit::serve(listener, app.clone(), config.server, shutdown).await;
    close_when_released(app).await;
}

/// Closes the store once no connection task holds the app any more, or gives up after
/// [`RELEASE_WAIT`] (the store is then dropped by whoever holds it last).
async fn close_when_released<S: TextStore>(mut app: Arc<App<S>>) {
    let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
    loop {
        match Arc::try_unwrap(app) {
            Ok(app) => {
                app.into_store().close().await;
                tracing::info!("store closed");
                return;
            }
            Err(shared) if tokio::time::Instant::now() < deadline => {
                app = shared;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => {
                tracing::warn!("connections still hold the store; not closing it cleanly");
                return;
            }
        }
    }
}
