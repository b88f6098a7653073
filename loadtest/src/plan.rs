//! What a run does, as plain data: loop mode, timing, connections and the request mix.
//! Built from the command line (see `cli`) or directly by tests.

use std::time::Duration;

use serde::Serialize;

use crate::dist::{KeyDist, SizeDist};

/// One load run against one target.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Virtual clients, each with its own keep-alive connection.
    pub connections: usize,
    /// `None`: closed loop (each client sends as soon as its answer came). `Some(r)`:
    /// open loop at `r` requests/s in total, latencies from the intended send times.
    pub rate: Option<f64>,
    /// Load that is sent but not measured (creates the first pastes, fills caches).
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// A request without a complete answer after this long is a timeout error.
    pub timeout: Duration,
    /// Seed of every random choice (each client derives its own generator from it).
    pub seed: u64,
    pub workload: Workload,
    /// Print a progress line on stderr each second.
    pub progress: bool,
}

/// What the requests are.
#[derive(Debug, Clone)]
pub enum Workload {
    /// Only `GET` the target's URL, like wrk.
    Get,
    /// The pastebin API: creates, reads of created pastes, optional list calls.
    Pastebin(Mix),
}

/// The pastebin request mix.
#[derive(Debug, Clone, Serialize)]
pub struct Mix {
    /// Reads per write (the Primer's 10:1 by default).
    pub read_ratio: f64,
    /// Fraction of all requests that are `GET /pastes?limit=N`.
    pub list_share: f64,
    pub list_limit: usize,
    #[serde(serialize_with = "display")]
    pub keys: KeyDist,
    #[serde(serialize_with = "display")]
    pub sizes: SizeDist,
    /// Fraction of reads (and list calls) whose body is checked.
    pub verify_ratio: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            read_ratio: 10.0,
            list_share: 0.0,
            list_limit: 20,
            keys: KeyDist::Uniform,
            sizes: SizeDist::Uniform(512, 1536),
            verify_ratio: 0.1,
        }
    }
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl RunPlan {
    /// The largest latency a histogram must hold: an open-loop request may be due at
    /// the start of the run and answered at its end plus a timeout.
    pub fn latency_bound(&self) -> Duration {
        self.warmup + self.duration + self.timeout + Duration::from_secs(1)
    }

    /// "closed" or "open".
    pub fn mode(&self) -> &'static str {
        if self.rate.is_some() {
            "open"
        } else {
            "closed"
        }
    }

    /// Checks the numbers a flag cannot check alone.
    pub fn validate(&self) -> Result<(), String> {
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err("--rate must be a positive number of requests per second".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be above 0".into());
        }
        if self.timeout.is_zero() {
            return Err("--timeout must be above 0".into());
        }
        if let Workload::Pastebin(mix) = &self.workload {
            if !(mix.read_ratio.is_finite() && mix.read_ratio >= 0.0) {
                return Err("--read-ratio must be 0 or more".into());
            }
            if !(0.0..=1.0).contains(&mix.list_share) {
                return Err("--list-share must be within 0..1".into());
            }
            if !(0.0..=1.0).contains(&mix.verify_ratio) {
                return Err("--verify-ratio must be within 0..1".into());
            }
            if !(1..=500).contains(&mix.list_limit) {
                return Err("--list-limit must be within 1..500".into());
            }
        }
        Ok(())
    }
}
