//! Compares the paste cache (quick_cache underneath) with the FIFO text cache it
//! replaced (a `Mutex<HashMap>` with oldest-first eviction, reproduced below) on the
//! read path's workload: reads of pastes picked by a Zipf law, a miss inserting the
//! paste. Prints the hit ratio and the lookups per second, from `--threads` threads.
//!
//! `cargo run --release -p read --example cache_bench -- [threads] [ops per thread]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use contract::PasteId;
use contract::meta::Meta;
use read::{Lookup, Paste, PasteCache};

const PASTES: usize = 100_000;
const TEXT: usize = 1024;

/// The entries, their insertion order, and the bytes they take.
type FifoState = (HashMap<PasteId, Arc<Paste>>, VecDeque<PasteId>, usize);

/// The cache this crate had before: FIFO by insertion, one lock.
struct Fifo {
    capacity: usize,
    inner: Mutex<FifoState>,
}

impl Fifo {
    fn get(&self, id: &PasteId) -> Option<Arc<Paste>> {
        self.inner.lock().unwrap().0.get(id).cloned()
    }

    fn insert(&self, paste: Arc<Paste>) {
        let cost = read::cache::entry_bytes(&paste);
        let mut inner = self.inner.lock().unwrap();
        let (map, order, bytes) = &mut *inner;
        if map.contains_key(&paste.meta.paste_id) {
            return;
        }
        while *bytes + cost > self.capacity {
            let Some(old) = order.pop_front() else { break };
            if let Some(p) = map.remove(&old) {
                *bytes -= read::cache::entry_bytes(&p);
            }
        }
        order.push_back(paste.meta.paste_id.clone());
        map.insert(paste.meta.paste_id.clone(), paste);
        *bytes += cost;
    }
}

trait Bench: Sync {
    fn read(&self, paste: &Arc<Paste>) -> bool;
}

impl Bench for Fifo {
    fn read(&self, paste: &Arc<Paste>) -> bool {
        if self.get(&paste.meta.paste_id).is_some() {
            return true;
        }
        self.insert(paste.clone());
        false
    }
}

impl Bench for PasteCache {
    fn read(&self, paste: &Arc<Paste>) -> bool {
        match self.lookup(&paste.meta.paste_id, 0) {
            Lookup::Live(_) => true,
            _ => {
                let now = Instant::now();
                self.insert(paste.clone(), self.ticket(now), now);
                false
            }
        }
    }
}

/// Cumulative Zipf(s) weights over ranks 1..=n, for inverse-CDF sampling.
fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let mut acc = 0.0;
    let mut cdf: Vec<f64> = (1..=n)
        .map(|k| {
            acc += 1.0 / (k as f64).powf(s);
            acc
        })
        .collect();
    for c in &mut cdf {
        *c /= acc;
    }
    cdf
}

fn run(
    name: &str,
    cache: &dyn Bench,
    pastes: &[Arc<Paste>],
    cdf: &[f64],
    threads: usize,
    ops: usize,
) {
    let hits = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let hits = &hits;
            scope.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(t as u64 + 1);
                let mut local = 0;
                for _ in 0..ops {
                    let u = rng.f64();
                    let i = cdf.partition_point(|&c| c < u).min(pastes.len() - 1);
                    if cache.read(&pastes[i]) {
                        local += 1;
                    }
                }
                hits.fetch_add(local, Ordering::Relaxed);
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let total = (threads * ops) as f64;
    println!(
        "{name:<34} hit ratio {:>6.2} %   {:>6.2} M reads/s",
        100.0 * hits.load(Ordering::Relaxed) as f64 / total,
        total / secs / 1e6
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().map_or(2, |a| a.parse().unwrap());
    let ops: usize = args.next().map_or(2_000_000, |a| a.parse().unwrap());
    let text: Arc<str> = Arc::from("x".repeat(TEXT));
    let pastes: Vec<Arc<Paste>> = (0..PASTES)
        .map(|i| {
            Arc::new(Paste {
                meta: Meta {
                    paste_id: format!("{i:010}").parse().unwrap(),
                    paste_path: format!("path{i:012}").parse().unwrap(),
                    created_at: 0,
                    expires_at: None,
                    size: Some(TEXT as u64),
                    burn_after_reading: false,
                    unlisted: false,
                },
                text: text.clone(),
            })
        })
        .collect();
    let all_bytes: usize = pastes.iter().map(|p| read::cache::entry_bytes(p)).sum();
    println!("{PASTES} pastes of {TEXT} B text, {threads} threads x {ops} reads");
    for (share, s) in [(10, 0.8), (10, 1.0), (100, 1.0)] {
        let capacity = all_bytes * share / 100;
        let cdf = zipf_cdf(PASTES, s);
        println!("-- capacity {share} % of the pastes' bytes, Zipf s = {s}");
        let fifo = Fifo {
            capacity,
            inner: Mutex::default(),
        };
        run(
            "FIFO + Mutex<HashMap> (before)",
            &fifo,
            &pastes,
            &cdf,
            threads,
            ops,
        );
        let cache = PasteCache::new(capacity);
        run(
            "PasteCache (quick_cache)",
            &cache,
            &pastes,
            &cdf,
            threads,
            ops,
        );
    }
}
