//! The sweeper: deletes expired pastes and their texts for real, deletes the texts
//! of deleted and burnt pastes (the trash), and deletes texts orphaned by a create
//! that failed between its two steps, in bounded batches, every `interval`.
//!
//! It lives in sqlsvc because sqlsvc alone knows which texts are still wanted: a
//! row removed and its text put in the trash is one SQLite transaction, and "does a
//! row point at this text?" is one indexed query here. It drives nosqlsvc through
//! nosqlsvc's own API (`contract::TextClient`: batch delete, the list of unsettled
//! texts, settle), so it
//! works the same with the embedded store and with MongoDB, on one host or several,
//! and needs no process of its own (the launcher is not there in a multi-host
//! deployment, and N webservers would need to elect one of them).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use contract::{CallError, PastePath, TextClient};
use tokio::sync::Notify;

use crate::clock::now_unix;
use crate::db::{self, Db};

/// Default time between two sweeps.
pub const DEFAULT_SWEEP_INTERVAL: Duration = contract::defaults::SWEEP_INTERVAL;

/// Default age a text must reach, unclaimed by any row, before it counts as orphaned:
/// far longer than any create takes between its two steps.
pub const DEFAULT_ORPHAN_GRACE: Duration = contract::defaults::ORPHAN_GRACE;

/// Default rows or texts handled per batch (one transaction, one nosqlsvc call).
pub const DEFAULT_SWEEP_BATCH: u32 = 500;

/// Most batches of each kind in one sweep, so a sweep ends; the rest waits for the next.
const MAX_BATCHES: usize = 1000;

/// What the sweeper needs.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// nosqlsvc's base URL, e.g. `http://127.0.0.1:5005`.
    pub nosqlsvc: String,
    /// Time between two sweeps (a delete or a burn also wakes it at once).
    pub interval: Duration,
    /// How old an unsettled text must be before it counts as orphaned.
    pub orphan_grace: Duration,
    /// Rows or texts per batch.
    pub batch: u32,
}

impl SweepConfig {
    /// The defaults, against nosqlsvc at `nosqlsvc` (`host:port` or a base URL).
    pub fn new(nosqlsvc: &str) -> Self {
        let base = if nosqlsvc.starts_with("http://") {
            nosqlsvc.to_owned()
        } else {
            format!("http://{nosqlsvc}")
        };
        Self {
            nosqlsvc: base,
            interval: DEFAULT_SWEEP_INTERVAL,
            orphan_grace: DEFAULT_ORPHAN_GRACE,
            batch: DEFAULT_SWEEP_BATCH,
        }
    }
}

/// What the sweeper removed, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct SweepCounters {
    pub(crate) runs: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) trash_texts: AtomicU64,
    pub(crate) orphan_texts: AtomicU64,
    pub(crate) settled: AtomicU64,
    pub(crate) errors: AtomicU64,
}

/// The sweeper's state.
pub(crate) struct Sweeper {
    pub(crate) db: Arc<Db>,
    pub(crate) config: SweepConfig,
    /// nosqlsvc, through its contract's client.
    pub(crate) texts: TextClient,
    pub(crate) counters: Arc<SweepCounters>,
    pub(crate) wake: Arc<Notify>,
}

impl Sweeper {
    /// Sweeps every `interval` (and when woken) until `stop` fires.
    pub(crate) async fn run(self, mut stop: tokio::sync::oneshot::Receiver<()>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                _ = self.wake.notified() => {}
                _ = &mut stop => break,
            }
            if let Err(err) = self.sweep().await {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%err, "sweep stopped early; the next one carries on");
            }
            self.counters.runs.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One sweep: expired rows, then the trash, then orphans.
    pub(crate) async fn sweep(&self) -> Result<(), String> {
        let batch = self.config.batch.max(1);
        let now = now_unix();
        for _ in 0..MAX_BATCHES {
            let removed = self
                .db
                .writer
                .call(move |conn| db::sweep_expired(conn, now, batch))
                .await
                .map_err(|err| format!("expired rows: {err}"))?;
            self.counters
                .expired
                .fetch_add(removed as u64, Ordering::Relaxed);
            if removed > 0 {
                tracing::info!(removed, "expired pastes removed");
            }
            if removed < batch as usize {
                break;
            }
        }
        for _ in 0..MAX_BATCHES {
            let paths = self
                .db
                .read(move |conn| db::trash_batch(conn, batch))
                .await
                .map_err(|err| format!("trash: {err}"))?;
            if paths.is_empty() {
                break;
            }
            let full = paths.len() == batch as usize;
            // Only valid paths are ever stored; one that is not is dropped from the
            // trash rather than retried forever.
            let valid: Vec<PastePath> = paths.iter().filter_map(|p| p.parse().ok()).collect();
            let deleted = self.texts.delete_many(&valid).await.map_err(nosqlsvc_err)?;
            self.counters
                .trash_texts
                .fetch_add(deleted, Ordering::Relaxed);
            self.db
                .writer
                .call(move |conn| db::trash_done(conn, &paths))
                .await
                .map_err(|err| format!("trash: {err}"))?;
            if !full {
                break;
            }
        }
        let grace = i64::try_from(self.config.orphan_grace.as_secs()).unwrap_or(i64::MAX);
        let before = now.saturating_sub(grace);
        for _ in 0..MAX_BATCHES {
            let paths = self
                .texts
                .unsettled(before, batch)
                .await
                .map_err(nosqlsvc_err)?;
            if paths.is_empty() {
                break;
            }
            let full = paths.len() == batch as usize;
            let probe: Vec<String> = paths.iter().map(|p| p.as_str().to_owned()).collect();
            let wanted = self
                .db
                .read(move |conn| db::referenced(conn, &probe))
                .await
                .map_err(|err| format!("orphans: {err}"))?;
            let (keep, orphans): (Vec<_>, Vec<_>) =
                paths.into_iter().zip(wanted).partition(|(_, w)| *w);
            let keep: Vec<PastePath> = keep.into_iter().map(|(p, _)| p).collect();
            let orphans: Vec<PastePath> = orphans.into_iter().map(|(p, _)| p).collect();
            if !keep.is_empty() {
                let settled = self.texts.settle(&keep).await.map_err(nosqlsvc_err)?;
                self.counters.settled.fetch_add(settled, Ordering::Relaxed);
            }
            if !orphans.is_empty() {
                let n = orphans.len();
                let deleted = self
                    .texts
                    .delete_many(&orphans)
                    .await
                    .map_err(nosqlsvc_err)?;
                self.counters
                    .orphan_texts
                    .fetch_add(deleted, Ordering::Relaxed);
                tracing::info!(orphans = n, deleted, "orphaned texts deleted");
            }
            if !full {
                break;
            }
        }
        Ok(())
    }
}

fn nosqlsvc_err(err: CallError) -> String {
    format!("nosqlsvc: {err}")
}
