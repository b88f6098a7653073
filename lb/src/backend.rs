//! The webservers: one [`Backend`] per address (its health, statistics and URIs), and
//! the [`Registry`] holding the current list, which a reload swaps atomically. Requests
//! in flight keep their `Arc<Backend>`, so a removed webserver finishes what it has.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use http::Uri;
use http::uri::{Authority, Scheme};

use crate::config::{EjectionConfig, HealthConfig};
use crate::health::{HealthState, Transition};
use crate::metrics::BackendStats;
use crate::select::RoundRobin;

/// One webserver.
#[derive(Debug)]
pub struct Backend {
    addr: String,
    authority: Authority,
    health_uri: Uri,
    /// Never held across an `.await`.
    health: Mutex<HealthState>,
    /// `health.is_settled()`, kept up to date under the lock: while it holds, the
    /// per-request checks read this flag instead of taking the lock (which would
    /// bounce between the workers' cores on every request).
    settled: AtomicBool,
    pub stats: BackendStats,
}

impl Backend {
    pub fn new(authority: Authority, health_path: &str, state: HealthState) -> Self {
        let health_uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query(health_path)
            .build()
            .unwrap_or_else(|_| Uri::from_static("/"));
        Self {
            addr: authority.as_str().to_owned(),
            authority,
            health_uri,
            settled: AtomicBool::new(state.is_settled()),
            health: Mutex::new(state),
            stats: BackendStats::default(),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn health_uri(&self) -> &Uri {
        &self.health_uri
    }

    fn with_health<T>(&self, f: impl FnOnce(&mut HealthState) -> T) -> T {
        let mut guard = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let out = f(&mut guard);
        self.settled.store(guard.is_settled(), Ordering::Release);
        out
    }

    /// A copy of the health state.
    pub fn health(&self) -> HealthState {
        self.with_health(|h| h.clone())
    }

    /// `now` is asked only if the webserver's state is not settled.
    pub fn is_available(&self, now: impl FnOnce() -> Instant) -> bool {
        self.settled.load(Ordering::Acquire) || self.with_health(|h| h.is_available(now()))
    }

    pub fn record_check(&self, ok: bool, started: Instant, config: &HealthConfig) {
        if !ok {
            self.stats
                .health_checks_failed
                .fetch_add(1, Ordering::Relaxed);
        }
        match self.with_health(|h| h.record_check(ok, started, config)) {
            Transition::None => {}
            Transition::WentUp => tracing::info!(backend = %self.addr, "webserver is up"),
            Transition::WentDown => tracing::warn!(backend = %self.addr, "webserver is down"),
        }
    }

    /// Takes the webserver out of rotation after a passive failure.
    pub fn eject(&self, config: &EjectionConfig, why: &str) {
        if let Some(backoff) = self.with_health(|h| h.eject(Instant::now(), config)) {
            self.stats.ejections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(backend = %self.addr, why, ?backoff, "webserver ejected");
        }
    }

    pub fn record_success(&self) {
        if !self.settled.load(Ordering::Acquire) {
            self.with_health(HealthState::record_success);
        }
    }
}

/// The current list of webservers and the round-robin cursor over it.
#[derive(Debug)]
pub struct Registry {
    backends: RwLock<Arc<[Arc<Backend>]>>,
    /// Tells each thread's cached copy of the list (see [`Registry::current`]) from
    /// this registry's current one: unique per registry, bumped by each reload.
    generation: AtomicU64,
    rr: RoundRobin,
}

/// Gives every registry its own range of generations.
static NEXT_REGISTRY: AtomicU64 = AtomicU64::new(0);

/// A worker's own copy of a list: only that worker's requests clone and drop it.
type LocalList = Arc<[Arc<Backend>]>;

thread_local! {
    /// This thread's copy of a registry's list, with its generation (`u64::MAX`:
    /// none yet).
    static CURRENT: RefCell<(u64, LocalList)> = RefCell::new((u64::MAX, Arc::from(Vec::new())));
}

/// A webserver picked by a worker thread: a handle on the worker's own copy of the
/// list, so cloning it (a request keeps one for its attempt and its response) writes
/// to no memory another worker writes to, unlike the webserver's shared reference
/// count would.
#[derive(Clone)]
pub struct Picked {
    list: LocalList,
    index: usize,
}

impl Deref for Picked {
    type Target = Arc<Backend>;

    fn deref(&self) -> &Arc<Backend> {
        // `index` came from a pick in this very list.
        &self.list[self.index]
    }
}

impl Borrow<Arc<Backend>> for Picked {
    fn borrow(&self) -> &Arc<Backend> {
        self
    }
}

impl Registry {
    /// A registry whose webservers are trusted up until checked.
    pub fn new(authorities: Vec<Authority>, health: &HealthConfig) -> Self {
        let backends: Vec<_> = dedup(authorities)
            .into_iter()
            .map(|a| Arc::new(Backend::new(a, &health.path, HealthState::initially_up())))
            .collect();
        Self {
            backends: RwLock::new(backends.into()),
            generation: AtomicU64::new(NEXT_REGISTRY.fetch_add(1, Ordering::Relaxed) << 32),
            rr: RoundRobin::new(),
        }
    }

    /// Runs `f` on the current list without locking: each thread keeps its own copy
    /// and takes a new one only after a reload.
    fn current<T>(&self, f: impl FnOnce(&LocalList) -> T) -> T {
        let generation = self.generation.load(Ordering::Acquire);
        CURRENT.with_borrow_mut(|(cached, list)| {
            if *cached != generation {
                *list = self.snapshot().iter().cloned().collect();
                *cached = generation;
            }
            f(list)
        })
    }

    /// The current list.
    pub fn snapshot(&self) -> Arc<[Arc<Backend>]> {
        self.backends
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The next available webserver not in `exclude`.
    pub fn pick<E: Borrow<Arc<Backend>>>(&self, exclude: &[E]) -> Option<Picked> {
        // Read once, and only if a webserver's state needs it.
        let now = std::cell::OnceCell::new();
        let now = || *now.get_or_init(Instant::now);
        self.current(|list| {
            let index = self.rr.pick_index(list, |b| {
                !exclude.iter().any(|e| Arc::ptr_eq(e.borrow(), b)) && b.is_available(now)
            })?;
            Some(Picked {
                list: list.clone(),
                index,
            })
        })
    }

    /// Whether some webserver other than those in `exclude` is available now.
    pub fn has_other<E: Borrow<Arc<Backend>>>(&self, exclude: &[E]) -> bool {
        let now = std::cell::OnceCell::new();
        let now = || *now.get_or_init(Instant::now);
        self.current(|backends| {
            backends
                .iter()
                .any(|b| !exclude.iter().any(|e| Arc::ptr_eq(e.borrow(), b)) && b.is_available(now))
        })
    }

    /// Replaces the list: webservers kept keep their state, new ones join after a
    /// passing health check, removed ones get no new requests. Returns the new ones.
    pub fn replace(&self, authorities: Vec<Authority>, health: &HealthConfig) -> Vec<Arc<Backend>> {
        let mut guard = self
            .backends
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut added = Vec::new();
        let next: Vec<Arc<Backend>> = dedup(authorities)
            .into_iter()
            .map(|a| {
                guard
                    .iter()
                    .find(|b| b.authority == a)
                    .cloned()
                    .unwrap_or_else(|| {
                        let b =
                            Arc::new(Backend::new(a, &health.path, HealthState::joining(health)));
                        added.push(b.clone());
                        b
                    })
            })
            .collect();
        for gone in guard
            .iter()
            .filter(|b| !next.iter().any(|n| Arc::ptr_eq(n, b)))
        {
            tracing::info!(backend = %gone.addr, "webserver removed; finishing its requests");
        }
        for new in &added {
            tracing::info!(backend = %new.addr, "webserver added; joins after a passing check");
        }
        *guard = next.into();
        self.generation.fetch_add(1, Ordering::Release);
        added
    }
}

fn dedup(authorities: Vec<Authority>) -> Vec<Authority> {
    let mut out: Vec<Authority> = Vec::with_capacity(authorities.len());
    for a in authorities {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// Seconds left on an ejection, for the status page.
pub fn ejected_for(state: &HealthState) -> Option<Duration> {
    state.ejected_for(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(s: &str) -> Authority {
        s.parse().unwrap()
    }

    #[test]
    fn reload_keeps_state_and_adds_joining_backends() {
        let health = HealthConfig::default();
        let reg = Registry::new(vec![auth("a:1"), auth("b:2")], &health);
        let before = reg.snapshot();
        let added = reg.replace(vec![auth("b:2"), auth("c:3")], &health);
        let after = reg.snapshot();
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].addr(), "c:3");
        assert!(Arc::ptr_eq(&before[1], &after[0]));
        // c:3 is not used until a check passes.
        for _ in 0..4 {
            assert_eq!(reg.pick::<Picked>(&[]).unwrap().addr(), "b:2");
        }
        added[0].record_check(true, Instant::now(), &health);
        let picks: Vec<_> = (0..4)
            .map(|_| reg.pick::<Picked>(&[]).unwrap().addr().to_owned())
            .collect();
        assert!(picks.contains(&"c:3".to_owned()));
    }

    #[test]
    fn pick_excludes_tried_backends() {
        let health = HealthConfig::default();
        let reg = Registry::new(vec![auth("a:1"), auth("b:2")], &health);
        let first = reg.pick::<Picked>(&[]).unwrap();
        for _ in 0..4 {
            let other = reg.pick(std::slice::from_ref(&first)).unwrap();
            assert!(!Arc::ptr_eq(&first, &other));
        }
        let both = reg.snapshot().to_vec();
        assert!(reg.pick(&both).is_none());
        assert!(!reg.has_other(&both));
    }

    #[test]
    fn duplicates_are_merged() {
        let reg = Registry::new(vec![auth("a:1"), auth("a:1")], &HealthConfig::default());
        assert_eq!(reg.snapshot().len(), 1);
    }
}
