//! Single flight: concurrent reads of one uncached paste share one fetch, so a cold
//! paste that many clients ask for at once costs sqlsvc and nosqlsvc one call each.
//!
//! The fetch runs in a task of its own, so a reader that hangs up does not cancel it
//! for the others; every waiter gets a clone of its outcome, error included (when a
//! store is down, all of them learn it from one timeout instead of queueing for one
//! timeout each).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// The fetches under way, by key.
pub struct Flights<K, V> {
    running: Arc<Mutex<HashMap<K, watch::Receiver<Option<V>>>>>,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Self {
            running: Arc::default(),
        }
    }
}

impl<K, V> Flights<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The outcome of the fetch for `key` under way, or of `fetch()` started now if
    /// there is none; `gone` is the outcome if the fetch task dies without one (the
    /// runtime shutting down).
    pub async fn run<F, Fut>(&self, key: &K, fetch: F, gone: impl FnOnce() -> V) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let mut rx = {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            match running.get(key) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    running.insert(key.clone(), rx.clone());
                    let fut = fetch();
                    let running = self.running.clone();
                    let key = key.clone();
                    tokio::spawn(async move {
                        let outcome = fut.await;
                        // Out of the map first: a read arriving now starts afresh
                        // (and finds the cache filled) instead of joining a finished
                        // flight.
                        running
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(&key);
                        let _ = tx.send(Some(outcome));
                    });
                    rx
                }
            }
        };
        match rx.wait_for(Option::is_some).await {
            Ok(outcome) => match &*outcome {
                Some(v) => v.clone(),
                None => gone(),
            },
            Err(_) => gone(),
        }
    }

    /// Fetches under way now.
    pub fn len(&self) -> usize {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no fetch is under way.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Notify;

    use super::*;

    // These run on tokio's single-threaded test runtime: a task that has counted
    // itself in `arrived` has also, in the same poll and with no await in between,
    // either started the flight or joined it.

    async fn until(cond: impl Fn() -> bool) {
        while !cond() {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let flights: Arc<Flights<u32, Result<u32, String>>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let arrived = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let mut readers = Vec::new();
        for _ in 0..50 {
            let (flights, calls, release, arrived) = (
                flights.clone(),
                calls.clone(),
                release.clone(),
                arrived.clone(),
            );
            readers.push(tokio::spawn(async move {
                arrived.fetch_add(1, Ordering::SeqCst);
                flights
                    .run(
                        &7,
                        || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            release.notified().await;
                            Ok(42)
                        },
                        || Err("gone".into()),
                    )
                    .await
            }));
        }
        until(|| arrived.load(Ordering::SeqCst) == 50).await;
        assert_eq!(flights.len(), 1);
        release.notify_one();
        for r in readers {
            assert_eq!(r.await.unwrap(), Ok(42));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn an_error_is_shared_and_the_next_call_fetches_again() {
        let flights: Flights<u32, Result<u32, String>> = Flights::default();
        let failed = flights
            .run(
                &1,
                || async { Err("down".to_string()) },
                || Err("gone".into()),
            )
            .await;
        assert_eq!(failed, Err("down".into()));
        let ok = flights
            .run(&1, || async { Ok(5) }, || Err("gone".into()))
            .await;
        assert_eq!(ok, Ok(5));
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_cancel_the_fetch() {
        let flights: Arc<Flights<u32, u32>> = Arc::default();
        let release = Arc::new(Notify::new());
        let arrived = Arc::new(AtomicUsize::new(0));
        let spawn_reader = |value: u32| {
            let (flights, release, arrived) = (flights.clone(), release.clone(), arrived.clone());
            tokio::spawn(async move {
                arrived.fetch_add(1, Ordering::SeqCst);
                flights
                    .run(
                        &3,
                        || async move {
                            release.notified().await;
                            value
                        },
                        || 0,
                    )
                    .await
            })
        };
        let first = spawn_reader(9);
        until(|| arrived.load(Ordering::SeqCst) == 1).await;
        first.abort();
        let second = spawn_reader(1);
        until(|| arrived.load(Ordering::SeqCst) == 2).await;
        release.notify_one();
        // The second caller joined the first fetch, which ran to its end.
        assert_eq!(second.await.unwrap(), 9);
    }
}
