//! Counters of the group commit, served on `GET /stats` so batching can be observed.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Live counters, shared by the writer and the handler.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    commits: AtomicU64,
    failed_batches: AtomicU64,
    created: AtomicU64,
    largest_batch: AtomicU64,
}

/// What `GET /stats` answers.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatsSnapshot {
    /// Transactions committed (one fsync each).
    pub commits: u64,
    /// Batches whose transaction failed and was rolled back.
    pub failed_batches: u64,
    /// Rows created.
    pub created: u64,
    /// Most jobs committed in one transaction.
    pub largest_batch: u64,
}

impl Stats {
    pub(crate) fn record_commit(&self, batch: usize, created: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.created.fetch_add(created as u64, Ordering::Relaxed);
        self.largest_batch
            .fetch_max(batch as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_failed_batch(&self) {
        self.failed_batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            commits: self.commits.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            created: self.created.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
        }
    }
}
