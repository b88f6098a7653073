//! The live progress line on stderr: each virtual client sends what it saw in the
//! last second over a channel (no shared counters on the hot path); one task adds
//! them up and prints requests/s, errors and p99 so far.

use std::io::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One client's last second.
pub struct Tick {
    pub requests: u64,
    pub errors: u64,
    /// Latencies in microseconds, 2 significant digits (it is only displayed).
    pub latency: Histogram<u64>,
}

/// A client's side: its current second, sent when its clock passes the boundary.
pub struct Reporter {
    tx: mpsc::UnboundedSender<Tick>,
    current: Tick,
    next: Instant,
}

impl Reporter {
    pub fn new(
        tx: mpsc::UnboundedSender<Tick>,
        start: Instant,
        template: &Histogram<u64>,
    ) -> Reporter {
        Reporter {
            tx,
            current: Tick {
                requests: 0,
                errors: 0,
                latency: Histogram::new_from(template),
            },
            next: start + Duration::from_secs(1),
        }
    }

    pub fn answer(&mut self, latency_us: u64, now: Instant) {
        self.current.requests += 1;
        self.current.latency.saturating_record(latency_us);
        self.flush(now);
    }

    pub fn error(&mut self, now: Instant) {
        self.current.errors += 1;
        self.flush(now);
    }

    fn flush(&mut self, now: Instant) {
        if now < self.next {
            return;
        }
        while self.next <= now {
            self.next += Duration::from_secs(1);
        }
        let fresh = Tick {
            requests: 0,
            errors: 0,
            latency: Histogram::new_from(&self.current.latency),
        };
        // The printer may be gone at the end of a run; nothing to do then.
        let _ = self.tx.send(std::mem::replace(&mut self.current, fresh));
    }
}

/// A histogram template for progress ticks.
pub fn tick_template(high_us: u64) -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, high_us.max(1_000), 2).ok()
}

/// Prints one line per second until `rx` closes or `until` passes.
pub async fn print(
    mut rx: mpsc::UnboundedReceiver<Tick>,
    start: Instant,
    measure_start: Instant,
    until: Instant,
) {
    let mut second = 0u64;
    let mut errors_total = 0u64;
    let mut next = start + Duration::from_millis(1100);
    let mut stderr = std::io::stderr();
    while next < until + Duration::from_secs(1) {
        tokio::time::sleep_until(next).await;
        next += Duration::from_secs(1);
        second += 1;
        let mut requests = 0;
        let mut errors = 0;
        let mut latency: Option<Histogram<u64>> = None;
        loop {
            match rx.try_recv() {
                Ok(tick) => {
                    requests += tick.requests;
                    errors += tick.errors;
                    match latency.as_mut() {
                        Some(h) => {
                            let _ = h.add(&tick.latency);
                        }
                        None => latency = Some(tick.latency),
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    let _ = writeln!(stderr);
                    return;
                }
            }
        }
        errors_total += errors;
        let p99 = latency.map_or(0.0, |h| h.value_at_quantile(0.99) as f64 / 1000.0);
        // This line covers the second that ended at start + `second` s.
        let phase = if start + Duration::from_secs(second) <= measure_start {
            "warm-up"
        } else {
            "run"
        };
        let _ = write!(
            stderr,
            "\r\x1b[2K[{second:>4}s {phase:>7}] {requests:>8} req/s  errors {errors_total}  p99 {p99:.2} ms"
        );
        let _ = stderr.flush();
    }
    let _ = writeln!(stderr);
}
