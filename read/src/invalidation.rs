//! Following sqlsvc's deletion log: every `POLL_INTERVAL` a webserver asks
//! `GET /deletions?since=N` (one request per webserver, whatever the number of
//! pastes) and drops the pastes deleted since its last poll. The same polls tell
//! whether sqlsvc answers at all, so reads that need it can fail fast while it does
//! not.
//!
//! The bound this gives: a delete that sqlsvc answered at time T is in the log from
//! T on, so the first poll *sent* after T sees it; polls are sent every
//! `POLL_INTERVAL`, so a webserver that reaches sqlsvc stops serving the paste by
//! T + `POLL_INTERVAL` + one poll's round trip (a poll that takes longer than
//! `POLL_TIMEOUT` is abandoned and the next one sent). With 250 ms and 500 ms that is
//! under 1 s whenever sqlsvc answers polls within 750 ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use contract::meta::DeletionPage;
use contract::{CallError, MetaClient};

use crate::cache::PasteCache;

/// Time between two polls of the deletion log.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A poll that has not answered in this long is abandoned (and counts as failed).
pub const POLL_TIMEOUT: Duration = Duration::from_millis(500);

/// After this many polls in a row failed, sqlsvc is taken as down: reads that need it
/// answer 503 at once instead of each waiting for its own timeout.
pub const FAILURES_FOR_DOWN: u32 = 3;

/// What the polls learned about sqlsvc.
#[derive(Debug)]
pub struct SqlsvcHealth {
    failures: AtomicU32,
    /// The log position applied, or `u64::MAX` before the first poll answered.
    position: AtomicU64,
}

impl Default for SqlsvcHealth {
    fn default() -> Self {
        Self {
            failures: AtomicU32::new(0),
            position: AtomicU64::new(u64::MAX),
        }
    }
}

impl SqlsvcHealth {
    /// The deletion-log position applied so far; None before the first poll answered.
    pub fn position(&self) -> Option<u64> {
        Some(self.position.load(Ordering::Relaxed)).filter(|&p| p != u64::MAX)
    }

    /// Whether the last `FAILURES_FOR_DOWN` polls (or more) all failed.
    pub fn is_down(&self) -> bool {
        self.failures.load(Ordering::Relaxed) >= FAILURES_FOR_DOWN
    }

    fn record(&self, ok: bool) {
        if ok {
            let was = self.failures.swap(0, Ordering::Relaxed);
            if was >= FAILURES_FOR_DOWN {
                tracing::info!("sqlsvc answers the deletion log again");
            }
        } else {
            let now = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if now == FAILURES_FOR_DOWN {
                tracing::warn!(
                    "sqlsvc has not answered {now} polls in a row: serving cached pastes only"
                );
            }
        }
    }
}

/// Where the poller is in the log it follows.
#[derive(Debug, Default)]
struct Position {
    epoch: Option<u64>,
    next: Option<u64>,
}

/// Polls the deletion log forever (the caller aborts the task at shutdown).
pub async fn follow(sqlsvc: MetaClient, cache: Arc<PasteCache>, health: Arc<SqlsvcHealth>) {
    let mut position = Position::default();
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // Drain: a long backlog comes in pages, asked for back to back.
        loop {
            let more = match poll_once(&sqlsvc, &cache, &mut position).await {
                Ok(more) => {
                    health.record(true);
                    if let Some(next) = position.next {
                        health.position.store(next, Ordering::Relaxed);
                    }
                    more
                }
                Err(err) => {
                    health.record(false);
                    tracing::debug!(%err, "deletion log poll failed");
                    false
                }
            };
            if !more {
                break;
            }
        }
    }
}

/// One poll: applies what it got and says whether more is waiting.
async fn poll_once(
    sqlsvc: &MetaClient,
    cache: &PasteCache,
    position: &mut Position,
) -> Result<bool, CallError> {
    let page: DeletionPage = tokio::time::timeout(POLL_TIMEOUT, sqlsvc.deletions(position.next))
        .await
        .map_err(|_| CallError::Timeout)??;
    Ok(apply(&page, cache, position, Instant::now()))
}

/// Applies one page to the cache and the position; returns `page.more`.
fn apply(page: &DeletionPage, cache: &PasteCache, position: &mut Position, now: Instant) -> bool {
    if page.reset || position.epoch != Some(page.epoch) {
        // The first poll, a log we fell behind on, or another database: nothing
        // cached can be vouched for.
        if position.epoch.is_some() {
            tracing::warn!(
                epoch = page.epoch,
                "deletion log cannot be followed from where we were: cache cleared"
            );
        }
        cache.reset();
        position.epoch = Some(page.epoch);
    }
    if !page.ids.is_empty() {
        cache.forget(&page.ids, now);
    }
    position.next = Some(page.next);
    page.more
}

#[cfg(test)]
mod tests {
    use std::sync::Arc as StdArc;

    use contract::PasteId;
    use contract::meta::Meta;

    use super::*;
    use crate::Paste;
    use crate::cache::Lookup;

    fn cached(cache: &PasteCache, id: &str) {
        let now = Instant::now();
        let paste = StdArc::new(Paste {
            meta: Meta {
                paste_id: id.parse().unwrap(),
                paste_path: "p".parse().unwrap(),
                created_at: 0,
                expires_at: None,
                size: None,
                burn_after_reading: false,
                unlisted: false,
            },
            text: StdArc::from("t"),
        });
        assert!(cache.insert(paste, cache.ticket(now), now));
    }

    fn page(epoch: u64, reset: bool, ids: &[&str], next: u64) -> DeletionPage {
        DeletionPage {
            epoch,
            reset,
            ids: ids.iter().map(|s| s.parse::<PasteId>().unwrap()).collect(),
            next,
            more: false,
        }
    }

    fn is_cached(cache: &PasteCache, id: &str) -> bool {
        matches!(cache.lookup(&id.parse().unwrap(), 0), Lookup::Live(_))
    }

    #[test]
    fn deletions_drop_entries_and_resets_drop_everything() {
        let cache = PasteCache::new(1 << 20);
        let mut pos = Position::default();
        apply(&page(7, true, &[], 4), &cache, &mut pos, Instant::now());
        assert_eq!(pos.next, Some(4));
        cached(&cache, "AAAAAAAAAA");
        cached(&cache, "BBBBBBBBBB");
        apply(
            &page(7, false, &["AAAAAAAAAA"], 5),
            &cache,
            &mut pos,
            Instant::now(),
        );
        assert!(!is_cached(&cache, "AAAAAAAAAA"));
        assert!(is_cached(&cache, "BBBBBBBBBB"));
        assert_eq!(pos.next, Some(5));
        // Another database behind the same address: forget everything.
        apply(&page(8, false, &[], 1), &cache, &mut pos, Instant::now());
        assert!(cache.is_empty());
        cached(&cache, "BBBBBBBBBB");
        // Fell behind a pruned log: the same.
        apply(&page(8, true, &[], 900), &cache, &mut pos, Instant::now());
        assert!(cache.is_empty());
        assert_eq!(pos.next, Some(900));
    }

    #[test]
    fn health_turns_down_after_enough_failures_and_up_after_one_answer() {
        let health = SqlsvcHealth::default();
        for _ in 0..FAILURES_FOR_DOWN - 1 {
            health.record(false);
        }
        assert!(!health.is_down());
        health.record(false);
        assert!(health.is_down());
        health.record(true);
        assert!(!health.is_down());
    }
}
