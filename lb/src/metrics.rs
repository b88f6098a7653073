//! Counters and latency histograms (lock-free atomics), and their rendering in the
//! Prometheus text format. The counters every forwarded request touches are split
//! into one cache line per worker thread ([`set_shard`]), so the workers never write
//! to the same line; a reader sums the shards.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Shards of each hot counter; worker `i` writes to shard `i % SHARDS`.
const SHARDS: usize = 8;

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Makes this thread (worker `index`) write to its own shard of every hot counter.
pub fn set_shard(index: usize) {
    SHARD.set(index % SHARDS);
}

fn shard() -> usize {
    SHARD.get()
}

/// A counter written by every worker: one cache line per shard.
#[derive(Debug, Default)]
pub struct Counter {
    shards: [Line; SHARDS],
}

/// One shard, alone on its (pair of) cache line(s).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Line(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.shards[shard()].0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts; the last slot is `+Inf`.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Adds this histogram's counts and sum into `counts` and `sum_micros`.
    fn add_to(&self, counts: &mut [u64; BUCKETS.len() + 1], sum_micros: &mut u64) {
        for (total, count) in counts.iter_mut().zip(&self.counts) {
            *total = total.wrapping_add(count.load(Ordering::Relaxed));
        }
        *sum_micros = sum_micros.wrapping_add(self.sum_micros.load(Ordering::Relaxed));
    }

    /// Appends `name_bucket`, `name_sum` and `name_count` lines with `labels`.
    #[cfg(test)]
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let (mut counts, mut sum) = ([0; BUCKETS.len() + 1], 0);
        self.add_to(&mut counts, &mut sum);
        render_histogram(out, name, labels, &counts, sum);
    }
}

fn render_histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    counts: &[u64; BUCKETS.len() + 1],
    sum_micros: u64,
) {
    let mut cumulative = 0;
    for (slot, count) in counts.iter().enumerate() {
        cumulative += count;
        let le = BUCKETS
            .get(slot)
            .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let sum = sum_micros as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
}

/// One worker's share of what every request to a webserver updates.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Hot {
    requests: AtomicU64,
    /// Answers by status class: 1xx..5xx.
    responses: [AtomicU64; 5],
    /// Started minus finished on this shard (a response may finish on another
    /// thread than it started on, so one shard alone may be negative).
    in_flight: AtomicI64,
    latency: Histogram,
}

/// What happened to requests sent to one webserver.
#[derive(Debug, Default)]
pub struct BackendStats {
    hot: [Hot; SHARDS],
    pub connect_errors: AtomicU64,
    pub reset_errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub ejections: AtomicU64,
    pub health_checks_failed: AtomicU64,
}

impl BackendStats {
    fn mine(&self) -> &Hot {
        &self.hot[shard()]
    }

    /// One attempt sent (retries included).
    pub fn count_request(&self) {
        self.mine().requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Attempts sent.
    pub fn requests(&self) -> u64 {
        self.hot
            .iter()
            .map(|h| h.requests.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    pub fn record_status(&self, status: http::StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.mine().responses[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Answers by status class, 1xx..5xx.
    pub fn responses(&self) -> [u64; 5] {
        let mut out = [0u64; 5];
        for h in &self.hot {
            for (total, count) in out.iter_mut().zip(&h.responses) {
                *total = total.wrapping_add(count.load(Ordering::Relaxed));
            }
        }
        out
    }

    /// Time to response headers.
    pub fn observe_latency(&self, elapsed: Duration) {
        self.mine().latency.observe(elapsed);
    }

    /// A response started (`1`) or finished (`-1`).
    pub fn add_in_flight(&self, delta: i64) {
        self.mine().in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// Requests whose response (headers or body) is still in progress.
    pub fn in_flight(&self) -> u64 {
        let sum: i64 = self
            .hot
            .iter()
            .map(|h| h.in_flight.load(Ordering::Relaxed))
            .fold(0, i64::wrapping_add);
        u64::try_from(sum).unwrap_or(0)
    }

    fn render_latency(&self, out: &mut String, name: &str, labels: &str) {
        let (mut counts, mut sum) = ([0; BUCKETS.len() + 1], 0);
        for h in &self.hot {
            h.latency.add_to(&mut counts, &mut sum);
        }
        render_histogram(out, name, labels, &counts, sum);
    }

    pub fn errors(&self) -> u64 {
        self.connect_errors.load(Ordering::Relaxed)
            + self.reset_errors.load(Ordering::Relaxed)
            + self.timeouts.load(Ordering::Relaxed)
    }
}

/// Balancer-wide counters.
#[derive(Debug, Default)]
pub struct Totals {
    /// Every request received (per worker: counted on each one).
    pub requests: Counter,
    /// Requests answered by the balancer itself with an error, by kind.
    pub too_large: AtomicU64,
    pub client_body: AtomicU64,
    pub client_timeout: AtomicU64,
    pub bad_target: AtomicU64,
    pub no_backend: AtomicU64,
    pub unreachable: AtomicU64,
    pub timeout: AtomicU64,
    pub retries: AtomicU64,
    pub reloads: AtomicU64,
    /// Lists with a bad entry, ignored (the current list kept).
    pub reloads_rejected: AtomicU64,
}

impl Totals {
    pub fn record_error(&self, err: &crate::ProxyError) {
        use crate::ProxyError;
        let counter = match err {
            ProxyError::TooLarge => &self.too_large,
            ProxyError::ClientBody => &self.client_body,
            ProxyError::ClientTimeout => &self.client_timeout,
            // A request without a usable host is a target that cannot be forwarded.
            ProxyError::BadTarget | ProxyError::NoHost => &self.bad_target,
            ProxyError::NoBackend => &self.no_backend,
            ProxyError::Unreachable => &self.unreachable,
            ProxyError::Timeout => &self.timeout,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One webserver as the renderer sees it.
pub struct BackendView<'a> {
    pub addr: &'a str,
    pub up: bool,
    pub ejected: bool,
    pub stats: &'a BackendStats,
}

/// The whole exposition, in the Prometheus text format (version 0.0.4).
pub fn render(totals: &Totals, backends: &[BackendView<'_>]) -> String {
    let mut out = String::with_capacity(4096 + backends.len() * 2048);
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);

    header(
        &mut out,
        "lb_requests_total",
        "counter",
        "Requests received by the balancer.",
    );
    let _ = writeln!(out, "lb_requests_total {}", totals.requests.get());
    header(
        &mut out,
        "lb_errors_total",
        "counter",
        "Requests the balancer answered with an error of its own, by kind.",
    );
    for (kind, counter) in [
        ("too_large", &totals.too_large),
        ("client_body", &totals.client_body),
        ("client_timeout", &totals.client_timeout),
        ("bad_target", &totals.bad_target),
        ("no_backend", &totals.no_backend),
        ("unreachable", &totals.unreachable),
        ("timeout", &totals.timeout),
    ] {
        let _ = writeln!(out, "lb_errors_total{{kind=\"{kind}\"}} {}", load(counter));
    }
    header(
        &mut out,
        "lb_retries_total",
        "counter",
        "Attempts retried on another webserver.",
    );
    let _ = writeln!(out, "lb_retries_total {}", load(&totals.retries));
    header(
        &mut out,
        "lb_reloads_total",
        "counter",
        "Backend list reloads applied.",
    );
    let _ = writeln!(out, "lb_reloads_total {}", load(&totals.reloads));
    header(
        &mut out,
        "lb_reloads_rejected_total",
        "counter",
        "Backend lists ignored because of a bad entry.",
    );
    let _ = writeln!(
        out,
        "lb_reloads_rejected_total {}",
        load(&totals.reloads_rejected)
    );
    header(
        &mut out,
        "lb_backends",
        "gauge",
        "Webservers in the current list.",
    );
    let _ = writeln!(out, "lb_backends {}", backends.len());

    let labels: Vec<String> = backends
        .iter()
        .map(|b| format!("backend=\"{}\"", escape(b.addr)))
        .collect();
    let per_backend = |out: &mut String,
                       name: &str,
                       kind: &str,
                       help: &str,
                       value: &dyn Fn(&BackendView<'_>) -> u64| {
        header(out, name, kind, help);
        for (b, l) in backends.iter().zip(&labels) {
            let _ = writeln!(out, "{name}{{{l}}} {}", value(b));
        }
    };
    per_backend(
        &mut out,
        "lb_backend_up",
        "gauge",
        "1 if active health checks say the webserver is up.",
        &|b| u64::from(b.up),
    );
    per_backend(
        &mut out,
        "lb_backend_ejected",
        "gauge",
        "1 if the webserver is ejected after a passive failure.",
        &|b| u64::from(b.ejected),
    );
    per_backend(
        &mut out,
        "lb_backend_requests_total",
        "counter",
        "Attempts sent to the webserver.",
        &|b| b.stats.requests(),
    );
    per_backend(
        &mut out,
        "lb_backend_in_flight",
        "gauge",
        "Responses from the webserver in progress.",
        &|b| b.stats.in_flight(),
    );
    per_backend(
        &mut out,
        "lb_backend_ejections_total",
        "counter",
        "Passive ejections of the webserver.",
        &|b| load(&b.stats.ejections),
    );
    per_backend(
        &mut out,
        "lb_backend_health_checks_failed_total",
        "counter",
        "Failed active health checks.",
        &|b| load(&b.stats.health_checks_failed),
    );

    header(
        &mut out,
        "lb_backend_responses_total",
        "counter",
        "Answers from the webserver, by status class.",
    );
    for (b, l) in backends.iter().zip(&labels) {
        for (i, count) in b.stats.responses().iter().enumerate() {
            let _ = writeln!(
                out,
                "lb_backend_responses_total{{{l},code=\"{}xx\"}} {count}",
                i + 1,
            );
        }
    }
    header(
        &mut out,
        "lb_backend_errors_total",
        "counter",
        "Failed attempts on the webserver, by kind.",
    );
    for (b, l) in backends.iter().zip(&labels) {
        for (kind, counter) in [
            ("connect", &b.stats.connect_errors),
            ("reset", &b.stats.reset_errors),
            ("timeout", &b.stats.timeouts),
        ] {
            let _ = writeln!(
                out,
                "lb_backend_errors_total{{{l},kind=\"{kind}\"}} {}",
                load(counter)
            );
        }
    }
    header(
        &mut out,
        "lb_backend_response_seconds",
        "histogram",
        "Time until the webserver's response headers.",
    );
    for (b, l) in backends.iter().zip(&labels) {
        b.stats
            .render_latency(&mut out, "lb_backend_response_seconds", l);
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let mut out = String::new();
        h.render(&mut out, "x", "b=\"1\"");
        assert!(out.contains("x_bucket{b=\"1\",le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{b=\"1\",le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{b=\"1\",le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{b=\"1\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{b=\"1\"} 3\n"), "{out}");
    }

    #[test]
    fn render_has_every_family() {
        let stats = BackendStats::default();
        stats.record_status(http::StatusCode::OK);
        let totals = Totals::default();
        let out = render(
            &totals,
            &[BackendView {
                addr: "127.0.0.1:1",
                up: true,
                ejected: false,
                stats: &stats,
            }],
        );
        for family in [
            "lb_requests_total",
            "lb_retries_total",
            "lb_backend_up{backend=\"127.0.0.1:1\"} 1",
            "lb_backend_responses_total{backend=\"127.0.0.1:1\",code=\"2xx\"} 1",
            "lb_backend_ejections_total",
            "lb_backend_response_seconds_bucket",
        ] {
            assert!(out.contains(family), "{family} missing from\n{out}");
        }
    }
}
