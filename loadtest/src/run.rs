//! The load run: one task per virtual client, each with its own keep-alive HTTP/1.1
//! connection (`wire`: one request at a time, written and answered in the client's
//! own task, no pool, no lookups), closed loop or open loop on a fixed schedule,
//! warm-up then the measured window.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};

use crate::LoadError;
use crate::check;
use crate::keys::{Key, KeyStore};
use crate::plan::{Mix, RunPlan, Workload};
use crate::progress::{self, Reporter};
use crate::stats::{ErrorKind, Kind, Stats};
use crate::target::Target;
use crate::text::Texts;
use crate::wire::{self, Conn};

/// How early an open-loop client may wake before a request is due: the timer's
/// granularity.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// All clients' measurements, merged; only requests due in the measured window.
    pub stats: Stats,
    /// The measured window's length (the `requests/s` denominator).
    pub window: Duration,
    /// Pastes created over the whole run, warm-up included.
    pub keys_created: usize,
}

/// What every client shares, read-only but for the key store.
struct Shared {
    plan: RunPlan,
    addr: std::net::SocketAddr,
    /// The request of `--get`, encoded once.
    get_request: Vec<u8>,
    /// The list request, encoded once.
    list_request: Vec<u8>,
    /// What follows a request's target up to its last header line: the version and
    /// the `Host` line.
    after_target: Vec<u8>,
    texts: Texts,
    keys: KeyStore,
    measure_start: Instant,
    end: Instant,
}

/// Runs `plan` against `target` until the window ends or `stop` turns true.
pub async fn run(
    target: &Target,
    plan: &RunPlan,
    stop: watch::Receiver<bool>,
) -> Result<RunResult, LoadError> {
    plan.validate().map_err(LoadError::Config)?;
    let empty = Stats::new(plan.latency_bound(), plan.rate.is_some()).map_err(LoadError::Config)?;
    let max_size = match &plan.workload {
        Workload::Pastebin(mix) => mix.sizes.max(),
        Workload::Get => 0,
    };
    let list_limit = match &plan.workload {
        Workload::Pastebin(mix) => mix.list_limit,
        Workload::Get => 1,
    };
    let uri = |s: String| Uri::try_from(s).map_err(|err| LoadError::Target(err.to_string()));
    let mut after_target = b" HTTP/1.1\r\nhost: ".to_vec();
    after_target.extend_from_slice(target.authority.as_bytes());
    after_target.extend_from_slice(b"\r\n");
    let encoded_get = |target: &Uri| {
        let mut out = Vec::new();
        encode_get(&mut out, target, &after_target);
        out
    };
    let start = Instant::now();
    let measure_start = start + plan.warmup;
    let end = measure_start + plan.duration;
    let shared = Arc::new(Shared {
        plan: plan.clone(),
        addr: target.addr,
        get_request: encoded_get(&uri(target.path.clone())?),
        list_request: encoded_get(&uri(format!("/pastes?limit={list_limit}"))?),
        after_target: after_target.clone(),
        texts: Texts::new(plan.seed, max_size),
        keys: KeyStore::default(),
        measure_start,
        end,
    });

    let (tick_tx, tick_rx) = mpsc::unbounded_channel();
    let template = progress::tick_template(micros(plan.latency_bound()));
    let printer = match (&template, plan.progress) {
        (Some(_), true) => Some(tokio::spawn(progress::print(
            tick_rx,
            start,
            measure_start,
            end,
        ))),
        _ => None,
    };
    let interval = plan
        .rate
        .map(|rate| Duration::from_secs_f64(plan.connections as f64 / rate));
    let mut handles = Vec::with_capacity(plan.connections);
    for id in 0..plan.connections {
        let reporter = match (&template, printer.is_some()) {
            (Some(t), true) => Some(Reporter::new(tick_tx.clone(), start, t)),
            _ => None,
        };
        // Spread the clients' schedules evenly over one interval.
        let first = match interval {
            Some(iv) => start + iv.mul_f64(id as f64 / plan.connections as f64),
            None => start,
        };
        let worker = Worker {
            shared: shared.clone(),
            rng: fastrand::Rng::with_seed(
                plan.seed
                    .wrapping_add((id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            ),
            local_keys: Vec::new(),
            stats: empty.clone(),
            interval,
            next_intended: first,
            reporter,
            stop: stop.clone(),
            timer: Box::pin(tokio::time::sleep_until(start + plan.timeout)),
            last_done: start,
        };
        handles.push(tokio::spawn(worker.run()));
    }
    drop(tick_tx);

    let mut stats = empty;
    for handle in handles {
        match handle.await {
            Ok(s) => stats.merge(&s),
            Err(err) => tracing::error!(%err, "a client task failed"),
        }
    }
    if let Some(p) = printer {
        p.abort();
        let _ = p.await;
        eprintln!();
    }
    let stopped_at = Instant::now().min(end);
    let window = stopped_at.saturating_duration_since(measure_start);
    Ok(RunResult {
        stats,
        window: if window.is_zero() {
            plan.duration
        } else {
            window
        },
        keys_created: shared.keys.len(),
    })
}

/// What a request is.
enum Op {
    Get,
    Read { key: Arc<Key>, verify: bool },
    Write { nonce: u64, size: usize },
    List { verify: bool },
}

impl Op {
    fn kind(&self) -> Kind {
        match self {
            Op::Get | Op::Read { .. } => Kind::Read,
            Op::Write { .. } => Kind::Write,
            Op::List { .. } => Kind::List,
        }
    }
    fn keeps_body(&self) -> bool {
        match self {
            Op::Get => false,
            Op::Read { verify, .. } | Op::List { verify } => *verify,
            Op::Write { .. } => true,
        }
    }
}

/// How a connection's session ended.
#[derive(PartialEq, Eq)]
enum SessionEnd {
    Finished,
    Reconnect,
}

/// One virtual client.
struct Worker {
    shared: Arc<Shared>,
    rng: fastrand::Rng,
    local_keys: Vec<Arc<Key>>,
    stats: Stats,
    /// Open loop: time between this client's sends.
    interval: Option<Duration>,
    next_intended: Instant,
    reporter: Option<Reporter>,
    stop: watch::Receiver<bool>,
    /// The request timeout timer (see `exchange`).
    timer: Pin<Box<Sleep>>,
    /// When the last answer arrived (or the connection was made): in a closed loop
    /// the next request is due then, so the clock is read once per request.
    last_done: Instant,
}

impl Worker {
    async fn run(mut self) -> Stats {
        loop {
            if self.over(Instant::now()) {
                break;
            }
            let Some(conn) = self.connect().await else {
                // Connection refused or timed out: counted; back off a little.
                let pause = Instant::now() + Duration::from_millis(50);
                tokio::time::sleep_until(pause.min(self.shared.end)).await;
                continue;
            };
            let end = self.session(conn).await;
            if end == SessionEnd::Finished {
                break;
            }
        }
        self.count_missed(Instant::now());
        self.stats
    }

    fn over(&self, now: Instant) -> bool {
        now >= self.shared.end || *self.stop.borrow()
    }

    async fn connect(&mut self) -> Option<Conn> {
        let deadline = (Instant::now() + self.shared.plan.timeout).min(self.shared.end);
        match tokio::time::timeout_at(deadline, Conn::connect(self.shared.addr)).await {
            Ok(Ok(conn)) => Some(conn),
            Ok(Err(_)) | Err(_) => {
                let now = Instant::now();
                if now >= self.shared.measure_start && now < self.shared.end {
                    self.stats.error(ErrorKind::Connect);
                    if let Some(r) = self.reporter.as_mut() {
                        r.error(now);
                    }
                }
                None
            }
        }
    }

    /// Sends requests on one connection until the run ends or the connection breaks.
    async fn session(&mut self, mut conn: Conn) -> SessionEnd {
        self.last_done = Instant::now();
        loop {
            let Some(intended) = self.next_slot().await else {
                return SessionEnd::Finished;
            };
            if !self.exchange(&mut conn, intended).await {
                return SessionEnd::Reconnect;
            }
        }
    }

    /// When the next request is due; `None` once the run is over.
    async fn next_slot(&mut self) -> Option<Instant> {
        let Some(interval) = self.interval else {
            let now = self.last_done;
            return (!self.over(now)).then_some(now);
        };
        let now = Instant::now();
        if self.over(now) {
            return None;
        }
        let due = self.next_intended;
        if due >= self.shared.end {
            return None;
        }
        self.next_intended += interval;
        // Tokio's timer wakes up to a millisecond after the deadline, which would add
        // up to 1 ms of the generator's own lateness to every corrected latency. So
        // wake up to TIMER_SLACK early and send then; `exchange` measures such a
        // request from its actual (earlier) send time.
        if due > now + TIMER_SLACK {
            let wake = due - TIMER_SLACK;
            let mut stop = self.stop.clone();
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                stopped = async { stop.wait_for(|s| *s).await.is_ok() } => {
                    if stopped {
                        return None;
                    }
                    tokio::time::sleep_until(wake).await;
                }
            }
        }
        Some(due)
    }

    /// Open loop: requests due in the window that were never sent.
    fn count_missed(&mut self, now: Instant) {
        let Some(interval) = self.interval else {
            return;
        };
        let from = self.next_intended.max(self.shared.measure_start);
        let until = now.min(self.shared.end);
        if from < until && !interval.is_zero() {
            let gap = until.duration_since(from).as_secs_f64();
            self.stats.missed += (gap / interval.as_secs_f64()).ceil() as u64;
        }
    }

    /// One request and its answer; `false` when the connection must be replaced.
    async fn exchange(&mut self, conn: &mut Conn, intended: Instant) -> bool {
        let op = self.pick();
        let keep = op.keeps_body();
        let measured = intended >= self.shared.measure_start;
        // Closed loop: the slot is the time just read by `next_slot`, so no second
        // clock read. Open loop: sent early (see TIMER_SLACK), measured from the
        // actual send.
        let sent = match self.interval {
            None => intended,
            Some(_) => Instant::now(),
        };
        let intended = intended.min(sent);
        let deadline = sent + self.shared.plan.timeout;
        encode(&self.shared, &op, conn.request_buffer());
        let exchange = conn.exchange_written(false, keep);
        tokio::pin!(exchange);
        // One long-lived timer per client instead of one per request (registering a
        // timer for every request is a measurable share of the generator's CPU). It
        // is only ever set to an earlier request's deadline, so it fires no later
        // than this one's; then it is moved to this deadline.
        let outcome = loop {
            tokio::select! {
                biased;
                answer = &mut exchange => break Some(answer),
                () = self.timer.as_mut() => {
                    if Instant::now() >= deadline {
                        break None;
                    }
                    self.timer.as_mut().reset(deadline);
                }
            }
        };
        let done = Instant::now();
        self.last_done = done;
        let answer = match outcome {
            Some(Ok(answer)) => answer,
            Some(Err(_)) | None => {
                let kind = if outcome.is_none() {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Io
                };
                if measured {
                    self.stats.error(kind);
                }
                if let Some(r) = self.reporter.as_mut() {
                    r.error(done);
                }
                return false;
            }
        };
        let latency = done.saturating_duration_since(intended);
        if measured {
            self.stats.record(
                op.kind(),
                latency,
                done.saturating_duration_since(sent),
                answer.bytes,
            );
        }
        let verdict = self.judge(op, &answer, measured);
        if let Some(r) = self.reporter.as_mut() {
            match verdict {
                Ok(()) => r.answer(micros(latency), done),
                Err(_) => r.error(done),
            }
        }
        if measured && let Err((kind, what)) = verdict {
            match kind {
                ErrorKind::Mismatch => self.stats.mismatch(&what),
                other => self.stats.error(other),
            }
        }
        !answer.close
    }

    fn pick(&mut self) -> Op {
        let mix: &Mix = match &self.shared.plan.workload {
            Workload::Get => return Op::Get,
            Workload::Pastebin(mix) => mix,
        };
        if mix.list_share > 0.0 && self.rng.f64() < mix.list_share {
            return Op::List {
                verify: self.rng.f64() < mix.verify_ratio,
            };
        }
        let write = self.rng.f64() * (1.0 + mix.read_ratio) < 1.0;
        if !write {
            self.shared.keys.sync(&mut self.local_keys);
            if !self.local_keys.is_empty() {
                let i = mix.keys.sample(&mut self.rng, self.local_keys.len());
                return Op::Read {
                    key: self.local_keys[i].clone(),
                    verify: self.rng.f64() < mix.verify_ratio,
                };
            }
        }
        Op::Write {
            nonce: self.rng.u64(..),
            size: mix.sizes.sample(&mut self.rng),
        }
    }

    /// Checks an answer; on a good create, remembers the new paste.
    fn judge(
        &mut self,
        op: Op,
        answer: &wire::Reply,
        measured: bool,
    ) -> Result<(), (ErrorKind, String)> {
        let status = answer.status;
        let body = answer.body.as_deref().unwrap_or_default();
        match op {
            Op::Get => match status {
                200..=399 => Ok(()),
                other => Err((ErrorKind::of_status(other), String::new())),
            },
            Op::Write { nonce, size } => {
                if status != 201 {
                    return Err((ErrorKind::of_status(status), String::new()));
                }
                let id =
                    check::created_id(body).map_err(|e| (ErrorKind::Mismatch, e.to_owned()))?;
                let uri = Uri::try_from(format!("/pastes/{id}")).map_err(|_| {
                    (
                        ErrorKind::Mismatch,
                        "paste_id is not usable in a path".to_owned(),
                    )
                })?;
                self.shared.keys.push(Key {
                    id,
                    uri,
                    nonce,
                    size,
                });
                Ok(())
            }
            Op::Read { key, verify } => {
                if status != 200 {
                    return Err((ErrorKind::of_status(status), String::new()));
                }
                if verify {
                    if measured {
                        self.stats.verified += 1;
                    }
                    check::paste_matches(body, &key, &self.shared.texts)
                        .map_err(|e| (ErrorKind::Mismatch, format!("{e} (paste {})", key.id)))?;
                }
                Ok(())
            }
            Op::List { verify } => {
                if status != 200 {
                    return Err((ErrorKind::of_status(status), String::new()));
                }
                if verify {
                    let limit = match &self.shared.plan.workload {
                        Workload::Pastebin(mix) => mix.list_limit,
                        Workload::Get => 1,
                    };
                    check::list_ok(body, limit).map_err(|e| (ErrorKind::Mismatch, e.to_owned()))?;
                }
                Ok(())
            }
        }
    }
}

/// Encodes the request for `op`, whole, into `out`.
fn encode(s: &Shared, op: &Op, out: &mut Vec<u8>) {
    match op {
        Op::Get => out.extend_from_slice(&s.get_request),
        Op::List { .. } => out.extend_from_slice(&s.list_request),
        Op::Read { key, .. } => encode_get(out, &key.uri, &s.after_target),
        Op::Write { nonce, size } => {
            let body = s.texts.write_body(*nonce, *size);
            out.extend_from_slice(b"POST /pastes/");
            out.extend_from_slice(&s.after_target);
            out.extend_from_slice(b"content-type: application/json\r\ncontent-length: ");
            out.extend_from_slice(body.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(&body);
        }
    }
}

/// `GET target` with the version and `Host` line of `after_target`, and no body.
fn encode_get(out: &mut Vec<u8>, target: &Uri, after_target: &[u8]) {
    out.extend_from_slice(b"GET ");
    let target = target.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(after_target);
    out.extend_from_slice(b"\r\n");
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}
