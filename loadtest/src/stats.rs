//! What a run measures: per request kind (read, write, list) an HdrHistogram of
//! latencies, counts and bytes; errors by kind. Each virtual client owns one `Stats`
//! (no sharing on the hot path); they are merged once at the end.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// What a request was, for reporting reads and writes separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GET /pastes/{id}`, or the plain `--get URL`.
    Read,
    /// `POST /pastes/`.
    Write,
    /// `GET /pastes?limit=N`.
    List,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Read, Kind::Write, Kind::List];

    fn index(self) -> usize {
        match self {
            Kind::Read => 0,
            Kind::Write => 1,
            Kind::List => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::List => "list",
        }
    }
}

/// Why a request did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The TCP connection (or the HTTP handshake) could not be made.
    Connect,
    /// No complete answer within `--timeout`.
    Timeout,
    /// The connection broke while sending or receiving.
    Io,
    /// A 4xx answer.
    Status4xx,
    /// A 5xx answer.
    Status5xx,
    /// Any other status that is not the one expected (e.g. 200 to a create).
    StatusOther,
    /// A well-statused answer whose body is wrong: malformed create answer, a read
    /// whose text differs from what was written, a list that is not a JSON array.
    Mismatch,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Io,
        ErrorKind::Status4xx,
        ErrorKind::Status5xx,
        ErrorKind::StatusOther,
        ErrorKind::Mismatch,
    ];

    fn index(self) -> usize {
        match self {
            ErrorKind::Connect => 0,
            ErrorKind::Timeout => 1,
            ErrorKind::Io => 2,
            ErrorKind::Status4xx => 3,
            ErrorKind::Status5xx => 4,
            ErrorKind::StatusOther => 5,
            ErrorKind::Mismatch => 6,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Io => "io",
            ErrorKind::Status4xx => "status_4xx",
            ErrorKind::Status5xx => "status_5xx",
            ErrorKind::StatusOther => "status_other",
            ErrorKind::Mismatch => "mismatch",
        }
    }

    /// The error class of an unexpected status code.
    pub fn of_status(status: u16) -> ErrorKind {
        match status {
            400..=499 => ErrorKind::Status4xx,
            500..=599 => ErrorKind::Status5xx,
            _ => ErrorKind::StatusOther,
        }
    }
}

/// Error counts by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorCounts([u64; 7]);

impl ErrorCounts {
    pub fn add(&mut self, kind: ErrorKind) {
        self.0[kind.index()] += 1;
    }
    pub fn get(&self, kind: ErrorKind) -> u64 {
        self.0[kind.index()]
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    pub fn merge(&mut self, other: &ErrorCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// From a histogram of microseconds (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// One request kind's measurements.
#[derive(Debug, Clone)]
pub struct KindStats {
    /// Latency in microseconds, from the intended send time (closed loop: the actual
    /// send time; open loop: the schedule's, which corrects coordinated omission).
    pub latency: Histogram<u64>,
    /// Open loop only: from the actual send time (what an uncorrected tool reports).
    pub service: Option<Histogram<u64>>,
    /// Answers received (any status).
    pub requests: u64,
    /// Bytes received: status line, headers and body.
    pub bytes: u64,
}

/// Everything one virtual client (or a whole run, once merged) measured.
#[derive(Debug, Clone)]
pub struct Stats {
    template: Histogram<u64>,
    open_loop: bool,
    kinds: [Option<KindStats>; 3],
    pub errors: ErrorCounts,
    /// Reads whose text was compared with the text written.
    pub verified: u64,
    /// Open loop: requests due in the window that were never sent (the generator, or
    /// the server, fell so far behind that the window ended first).
    pub missed: u64,
    /// The first few mismatch descriptions, for the report.
    pub mismatch_samples: Vec<String>,
}

/// How many mismatch descriptions are kept.
const SAMPLES: usize = 5;

impl Stats {
    /// Empty stats whose histograms hold values up to `high` (larger ones saturate).
    pub fn new(high: Duration, open_loop: bool) -> Result<Stats, String> {
        let high_us = u64::try_from(high.as_micros())
            .unwrap_or(u64::MAX)
            .max(1_000);
        let template = Histogram::new_with_bounds(1, high_us, 3)
            .map_err(|err| format!("cannot make a histogram up to {high_us} us: {err}"))?;
        Ok(Stats {
            template,
            open_loop,
            kinds: [None, None, None],
            errors: ErrorCounts::default(),
            verified: 0,
            missed: 0,
            mismatch_samples: Vec::new(),
        })
    }

    fn empty_kind(&self) -> KindStats {
        KindStats {
            latency: Histogram::new_from(&self.template),
            service: self.open_loop.then(|| Histogram::new_from(&self.template)),
            requests: 0,
            bytes: 0,
        }
    }

    /// One answer: `latency` from the intended send time, `service` from the actual.
    pub fn record(&mut self, kind: Kind, latency: Duration, service: Duration, bytes: u64) {
        let i = kind.index();
        if self.kinds[i].is_none() {
            self.kinds[i] = Some(self.empty_kind());
        }
        if let Some(k) = self.kinds[i].as_mut() {
            k.latency.saturating_record(micros(latency));
            if let Some(s) = k.service.as_mut() {
                s.saturating_record(micros(service));
            }
            k.requests += 1;
            k.bytes += bytes;
        }
    }

    pub fn error(&mut self, kind: ErrorKind) {
        self.errors.add(kind);
    }

    pub fn mismatch(&mut self, what: &str) {
        self.errors.add(ErrorKind::Mismatch);
        if self.mismatch_samples.len() < SAMPLES {
            self.mismatch_samples.push(what.to_owned());
        }
    }

    pub fn kind(&self, kind: Kind) -> Option<&KindStats> {
        self.kinds[kind.index()].as_ref()
    }

    pub fn is_open_loop(&self) -> bool {
        self.open_loop
    }

    /// All kinds together.
    pub fn total(&self) -> KindStats {
        let mut all = self.empty_kind();
        for k in self.kinds.iter().flatten() {
            add_kind(&mut all, k);
        }
        all
    }

    /// Adds `other` (same bounds) into `self`.
    pub fn merge(&mut self, other: &Stats) {
        for (i, theirs) in other.kinds.iter().enumerate() {
            let Some(theirs) = theirs else { continue };
            if self.kinds[i].is_none() {
                self.kinds[i] = Some(self.empty_kind());
            }
            if let Some(ours) = self.kinds[i].as_mut() {
                add_kind(ours, theirs);
            }
        }
        self.errors.merge(&other.errors);
        self.verified += other.verified;
        self.missed += other.missed;
        for s in &other.mismatch_samples {
            if self.mismatch_samples.len() < SAMPLES {
                self.mismatch_samples.push(s.clone());
            }
        }
    }
}

fn add_kind(into: &mut KindStats, from: &KindStats) {
    // Same bounds on both sides (one template), so `add` cannot fail; a histogram
    // that would not fit is impossible by construction, hence the ignored result.
    let _ = into.latency.add(&from.latency);
    if let (Some(a), Some(b)) = (into.service.as_mut(), from.service.as_ref()) {
        let _ = a.add(b);
    }
    into.requests += from.requests;
    into.bytes += from.bytes;
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn percentiles_of_one_to_ten_thousand() {
        let mut s = Stats::new(Duration::from_secs(60), false).unwrap();
        for v in 1..=10_000 {
            s.record(Kind::Read, us(v), us(v), 10);
        }
        let p = Percentiles::of(&s.kind(Kind::Read).unwrap().latency);
        // HdrHistogram with 3 significant digits: within 0.1% of the exact value.
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(near(p.p50, 5.0), "{p:?}");
        assert!(near(p.p90, 9.0), "{p:?}");
        assert!(near(p.p99, 9.9), "{p:?}");
        assert!(near(p.p999, 9.99), "{p:?}");
        assert!(near(p.max, 10.0), "{p:?}");
        assert!(near(p.mean, 5.0005), "{p:?}");
        assert_eq!(s.kind(Kind::Read).unwrap().bytes, 100_000);
    }

    #[test]
    fn a_few_slow_requests_show_in_the_tail_only() {
        let mut s = Stats::new(Duration::from_secs(60), false).unwrap();
        for _ in 0..990 {
            s.record(Kind::Write, us(1_000), us(1_000), 0);
        }
        for _ in 0..10 {
            s.record(Kind::Write, us(500_000), us(500_000), 0);
        }
        let p = Percentiles::of(&s.kind(Kind::Write).unwrap().latency);
        assert!(
            (p.p50 - 1.0).abs() < 0.01 && (p.p90 - 1.0).abs() < 0.01,
            "{p:?}"
        );
        assert!(
            (p.p99 - 1.0).abs() < 0.01,
            "exactly 1% are slow: p99 is still fast {p:?}"
        );
        assert!((p.p999 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.max - 500.0).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn merging_adds_counts_histograms_and_errors() {
        let mut a = Stats::new(Duration::from_secs(10), true).unwrap();
        let mut b = Stats::new(Duration::from_secs(10), true).unwrap();
        a.record(Kind::Read, us(100), us(50), 5);
        b.record(Kind::Read, us(300), us(60), 5);
        b.record(Kind::List, us(900), us(70), 1);
        b.error(ErrorKind::Timeout);
        b.mismatch("wrong text");
        b.verified = 2;
        a.merge(&b);
        let read = a.kind(Kind::Read).unwrap();
        assert_eq!((read.requests, read.bytes, read.latency.len()), (2, 10, 2));
        assert_eq!(read.service.as_ref().unwrap().max(), 60);
        assert_eq!(a.total().requests, 3);
        assert_eq!(a.total().latency.max(), 900);
        assert_eq!(a.errors.get(ErrorKind::Timeout), 1);
        assert_eq!(a.errors.get(ErrorKind::Mismatch), 1);
        assert_eq!(a.errors.total(), 2);
        assert_eq!(a.mismatch_samples, ["wrong text"]);
        assert_eq!(a.verified, 2);
        assert!(a.kind(Kind::Write).is_none());
    }

    #[test]
    fn values_beyond_the_bound_saturate() {
        let mut s = Stats::new(Duration::from_secs(1), false).unwrap();
        s.record(Kind::Read, Duration::from_secs(100), us(1), 0);
        let k = s.kind(Kind::Read).unwrap();
        assert_eq!(k.requests, 1);
        assert!(k.latency.max() >= 1_000_000);
    }

    #[test]
    fn statuses_map_to_error_classes() {
        assert_eq!(ErrorKind::of_status(404), ErrorKind::Status4xx);
        assert_eq!(ErrorKind::of_status(503), ErrorKind::Status5xx);
        assert_eq!(ErrorKind::of_status(200), ErrorKind::StatusOther);
    }
}
