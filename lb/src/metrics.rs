//! Counters and latency histograms (lock-free atomics), and their rendering in the
//! Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

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

    /// Appends `name_bucket`, `name_sum` and `name_count` lines with `labels`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (slot, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = BUCKETS
                .get(slot)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// What happened to requests sent to one webserver.
#[derive(Debug, Default)]
pub struct BackendStats {
    /// Attempts sent (retries included).
    pub requests: AtomicU64,
    /// Answers by status class: 1xx..5xx.
    pub responses: [AtomicU64; 5],
    pub connect_errors: AtomicU64,
    pub reset_errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub ejections: AtomicU64,
    pub health_checks_failed: AtomicU64,
    /// Requests whose response (headers or body) is still in progress.
    pub in_flight: AtomicU64,
    /// Time to response headers.
    pub latency: Histogram,
}

impl BackendStats {
    pub fn record_status(&self, status: http::StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
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
    pub requests: AtomicU64,
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
    let _ = writeln!(out, "lb_requests_total {}", load(&totals.requests));
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
        &|b| load(&b.stats.requests),
    );
    per_backend(
        &mut out,
        "lb_backend_in_flight",
        "gauge",
        "Responses from the webserver in progress.",
        &|b| load(&b.stats.in_flight),
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
        for (i, counter) in b.stats.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "lb_backend_responses_total{{{l},code=\"{}xx\"}} {}",
                i + 1,
                load(counter)
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
            .latency
            .render(&mut out, "lb_backend_response_seconds", l);
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
