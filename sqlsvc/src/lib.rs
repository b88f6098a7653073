//! sqlsvc: the metadata service (paste id -> text location, times) on SQLite, with
//! group-committed creates. A library with a thin binary; `run` is the entry point.

pub mod api;
mod clock;
mod cursor;
mod db;
mod error;
mod migrations;
mod routes;
mod service;
mod stats;
mod sweeper;
mod writer;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

pub use db::default_readers;
pub use error::Error;
pub use sweeper::{DEFAULT_ORPHAN_GRACE, DEFAULT_SWEEP_BATCH, DEFAULT_SWEEP_INTERVAL, SweepConfig};

/// Address the binary listens on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5004";

/// Creates waiting for the writer; beyond this, requests wait to enqueue.
const QUEUE_CAPACITY: usize = 4 * writer::MAX_BATCH;

/// What `run` needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SQLite file; parent directories are created if missing.
    pub db_path: PathBuf,
    /// Reader connections (each its own thread), beside the one writer; see
    /// [`default_readers`].
    pub readers: usize,
    /// Limits of the accept loop.
    pub server: httpkit::ServerConfig,
    /// The sweeper (expired pastes, texts of removed pastes, orphaned texts), which
    /// needs nosqlsvc's address; None: no sweeper (expired pastes are still never
    /// served, and removed texts wait in the trash).
    pub sweeper: Option<SweepConfig>,
}

impl Config {
    /// A config with the default readers and server limits.
    pub fn new(db_path: impl Into<PathBuf>) -> Self {
        Self {
            db_path: db_path.into(),
            readers: default_readers(),
            server: httpkit::ServerConfig::default(),
            sweeper: None,
        }
    }
}

/// Opens and migrates the database, serves on `listener` until `shutdown` completes,
/// drains connections, commits the creates still queued, then closes the database.
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
    if let Some(dir) = config
        .db_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    // The listing cursor's key lives next to the database, so cursors outlive a
    // restart; it is created with the database.
    let mut key_path = config.db_path.clone().into_os_string();
    key_path.push(".cursor-key");
    let key_path = PathBuf::from(key_path);
    cursor::load_key(&key_path).map_err(|source| Error::CreateDir {
        path: key_path.clone(),
        source,
    })?;
    let db = Arc::new(db::Db::open(&config.db_path, config.readers).await?);
    let stats = Arc::new(stats::Stats::default());
    let (jobs_tx, jobs_rx) = mpsc::channel(QUEUE_CAPACITY);
    let (stop_tx, stop_rx) = oneshot::channel();
    let writer = tokio::spawn(writer::run(
        db.writer.clone(),
        jobs_rx,
        stop_rx,
        stats.clone(),
    ));
    let counters = Arc::new(sweeper::SweepCounters::default());
    let wake = Arc::new(tokio::sync::Notify::new());
    let (sweep_stop_tx, sweep_stop_rx) = oneshot::channel();
    let sweeper = config.sweeper.clone().map(|sweep| {
        tracing::info!(nosqlsvc = %sweep.nosqlsvc, interval = ?sweep.interval, "sweeper on");
        let sweeper = sweeper::Sweeper {
            db: db.clone(),
            texts: contract::TextClient::new(
                httpkit::JsonClient::new(httpkit::ClientConfig::default()),
                sweep.nosqlsvc.clone(),
            ),
            config: sweep,
            counters: counters.clone(),
            wake: wake.clone(),
        };
        tokio::spawn(sweeper.run(sweep_stop_rx))
    });
    let service = Arc::new(service::Service {
        db: db.clone(),
        jobs: jobs_tx,
        stats,
        sweep: counters,
        wake_sweeper: wake,
    });
    tracing::info!(
        addr = ?listener.local_addr().ok(),
        db = %config.db_path.display(),
        readers = db.readers(),
        "sqlsvc listening"
    );

    httpkit::serve(listener, service, config.server, shutdown).await;

    let _ = sweep_stop_tx.send(());
    if let Some(sweeper) = sweeper
        && let Err(err) = sweeper.await
    {
        tracing::error!(%err, "sweeper task failed");
    }

    let _ = stop_tx.send(());
    if let Err(err) = writer.await {
        tracing::error!(%err, "writer task failed");
    }
    // Connections that outlived the drain deadline may still hold the state; closing
    // ends the database threads regardless, and their late calls get errors.
    db.close().await?;
    tracing::info!("sqlsvc stopped");
    Ok(())
}
