//! `pastebin up`: starts sqlsvc and nosqlsvc, then the webservers, then the load
//! balancer, each as a child process of this one; waits until each is healthy; prints
//! the balancer's URL; restarts a child that dies (on the address it had, so peers
//! keep finding it); on Ctrl-C or SIGTERM stops them front to back.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use httpkit::{ClientConfig, JsonClient};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::{CpuList, HostCpu, MAX_CPU, MAX_WEBSERVERS, NosqlBackend, Settings};
use crate::emulate::{CpuSplit, Emulation, Host};
use crate::{Kind, LISTENING};

/// How long a child may take to bind and then to pass its health check.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a child may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// A child that ran this long before dying is restarted without back-off.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// One supervised child: what to run and where it listens.
struct Spec {
    kind: Kind,
    /// Index among the webservers, for logs.
    index: usize,
    args: Vec<OsString>,
    listen: String,
    /// The emulated host it runs on, if hosts are emulated.
    host: Option<Host>,
}

impl Spec {
    fn label(&self) -> String {
        match self.kind {
            Kind::Web => format!("web[{}]", self.index),
            other => other.name().to_owned(),
        }
    }
}

/// A running supervision task, and how to stop it.
struct Supervised {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// The child's current pid (it changes when the child is restarted).
    pid: watch::Receiver<Option<u32>>,
    /// The address the child listens on (kept across restarts).
    addr: String,
}

impl Supervised {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Run files in the data directory: the launcher's pid, the balancer's webserver list,
/// and the scale request / outcome exchanged with `pastebin scale`.
pub const PID_FILE: &str = "pastebin-up.pid";
pub const BACKENDS_FILE: &str = "lb-backends.txt";
pub const SCALE_REQUEST_FILE: &str = "scale.request";
pub const SCALE_STATUS_FILE: &str = "scale.status";

/// Everything started so far, so that whatever happens it can all be stopped.
struct Topology {
    settings: Settings,
    exe: PathBuf,
    probe: JsonClient,
    common: Vec<OsString>,
    stores: Vec<Supervised>,
    webs: Vec<Supervised>,
    lb: Option<Supervised>,
    /// The emulated hosts, with `--emulate-hosts`.
    emulation: Option<Emulation>,
}

pub async fn up(settings: Settings, emulate: Option<HostCpu>) -> Result<(), String> {
    // Before anything else: a SIGHUP must never kill the launcher.
    let mut hup =
        signal(SignalKind::hangup()).map_err(|err| format!("cannot listen for SIGHUP: {err}"))?;
    let shutdown = httpkit::shutdown_signal();
    tokio::pin!(shutdown);
    std::fs::create_dir_all(&settings.data_dir).map_err(|err| {
        format!(
            "cannot create data directory {}: {err}",
            settings.data_dir.display()
        )
    })?;
    // One launcher per data directory, checked before any child starts: a second
    // one fails at once, naming the lock and its holder, instead of its stores
    // failing on their own file locks after start-up retries.
    let _lock = lock_data_dir(&settings.data_dir)?;
    let emulation = match emulate {
        Some(budgets) => {
            let dir = settings.data_dir.clone();
            // May wait for another launcher's lock, or for a dead one's leftovers.
            let split = if settings.web_pin_cpus {
                CpuSplit::of(&allowed_cpus())
            } else {
                None
            };
            let started =
                tokio::task::spawn_blocking(move || Emulation::start(&dir, budgets, split))
                    .await
                    .map_err(|err| format!("emulated hosts: {err}"))?;
            Some(started?)
        }
        None => None,
    };
    let mut topo = Topology {
        emulation,
        exe: std::env::current_exe().map_err(|err| format!("cannot find own binary: {err}"))?,
        probe: JsonClient::new(ClientConfig {
            request_timeout: Duration::from_secs(2),
            ..ClientConfig::default()
        }),
        common: common_args(&settings),
        settings,
        stores: Vec::new(),
        webs: Vec::new(),
        lb: None,
    };

    let started = tokio::select! {
        result = topo.start() => result,
        () = &mut shutdown => Err("interrupted during startup".to_owned()),
    };
    let lb_addr = match started {
        Ok(addr) => addr,
        Err(err) => {
            topo.stop_all().await;
            return Err(err);
        }
    };
    let pid_file = topo.settings.data_dir.join(PID_FILE);
    if let Err(err) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        tracing::warn!(%err, "cannot write the pid file; `pastebin scale` will not find this launcher");
    }
    tracing::info!(url = %format!("http://{lb_addr}"), webservers = topo.webs.len(), "pastebin is up");
    println!("http://{lb_addr}");

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            received = hup.recv() => {
                if received.is_none() {
                    break;
                }
                topo.scale_on_request().await;
            }
        }
    }
    let _ = std::fs::remove_file(&pid_file);
    topo.stop_all().await;
    Ok(())
}

impl Topology {
    /// Stores, then webservers, then the balancer, each healthy before the next.
    async fn start(&mut self) -> Result<String, String> {
        // nosqlsvc first: sqlsvc's sweeper needs its address (which port 0 makes
        // known only once it listens). `stores` stays [sqlsvc, nosqlsvc].
        let (listen, host) = self.place(Kind::Nosqlsvc, 0, self.settings.nosqlsvc.clone())?;
        let spec = Spec {
            kind: Kind::Nosqlsvc,
            index: 0,
            args: self.common.clone(),
            listen,
            host,
        };
        let nosqlsvc = start(&self.exe, spec, &self.probe).await?;
        let mut args = self.common.clone();
        args.extend(["--nosqlsvc".into(), nosqlsvc.addr.clone().into()]);
        let (listen, host) = self.place(Kind::Sqlsvc, 0, self.settings.sqlsvc.clone())?;
        let spec = Spec {
            kind: Kind::Sqlsvc,
            index: 0,
            args,
            listen,
            host,
        };
        let sqlsvc = start(&self.exe, spec, &self.probe).await?;
        self.stores.push(sqlsvc);
        self.stores.push(nosqlsvc);
        let count = self.settings.webservers.len();
        for _ in 0..count {
            self.add_webserver(count).await?;
        }
        let backends = self.web_addrs();
        self.write_backends_file(&backends)?;
        let mut args = self.common.clone();
        args.extend([
            "--lb-backends-file".into(),
            self.backends_file().into_os_string(),
        ]);
        let (listen, host) = self.place(Kind::Lb, 0, self.settings.lb_listen.clone())?;
        let spec = Spec {
            kind: Kind::Lb,
            index: 0,
            args,
            listen,
            host,
        };
        let lb = start(&self.exe, spec, &self.probe).await?;
        let addr = lb.addr.clone();
        self.lb = Some(lb);
        Ok(addr)
    }

    /// Starts webserver number `self.webs.len()`, one of `count`, and waits until it
    /// is healthy.
    async fn add_webserver(&mut self, count: usize) -> Result<(), String> {
        let index = self.webs.len();
        let listen = match (
            self.settings.webservers.get(index),
            &self.settings.web_numbering,
        ) {
            (Some(addr), _) => addr.clone(),
            (None, Some(numbering)) => numbering
                .addr(index)
                .ok_or_else(|| format!("no port left for webserver {index}"))?,
            (None, None) => {
                return Err(format!(
                    "the webservers were listed explicitly ({} of them); list more to scale out",
                    self.settings.webservers.len()
                ));
            }
        };
        let mut args = self.common.clone();
        args.extend(["--sqlsvc".into(), self.stores[0].addr.clone().into()]);
        args.extend(["--nosqlsvc".into(), self.stores[1].addr.clone().into()]);
        let (listen, host) = self.place(Kind::Web, index, listen)?;
        let budget = host.as_ref().and_then(|h| h.cpu_budget);
        // Emulated hosts that split the cores: the webservers have their half.
        let split = self.emulation.as_ref().and_then(Emulation::split).cloned();
        let cores = split.as_ref().map_or_else(available_cores, |s| s.web.len());
        let threads = self
            .settings
            .web_threads
            .unwrap_or_else(|| web_threads(count, budget, cores));
        if self.settings.web_threads.is_none() {
            args.extend(["--web-threads".into(), threads.to_string().into()]);
        }
        let cpus = match &self.settings.web_cpus {
            Some(cpus) => Some(cpus.clone()),
            None if self.settings.web_pin_cpus => match &split {
                Some(split) => CpuList::new(share(index, threads, &split.web)),
                None => web_cpus(index, threads, &allowed_cpus()),
            },
            None => None,
        };
        if let Some(cpus) = &cpus {
            args.extend(["--cpus".into(), cpus.to_string().into()]);
        }
        if let (Some(emulation), Some(host)) = (&mut self.emulation, &host) {
            emulation.set_cpus(&host.name, cpus)?;
        }
        let spec = Spec {
            kind: Kind::Web,
            index,
            args,
            listen,
            host,
        };
        let sup = start(&self.exe, spec, &self.probe).await?;
        self.webs.push(sup);
        Ok(())
    }

    /// Where a component runs: on the machine at the configured address, or on its
    /// emulated host, at that host's address with the configured port.
    fn place(
        &mut self,
        kind: Kind,
        index: usize,
        configured: String,
    ) -> Result<(String, Option<Host>), String> {
        match &mut self.emulation {
            None => Ok((configured, None)),
            Some(emulation) => {
                let host = emulation.host(kind, index)?;
                Ok((host.listen(&configured), Some(host)))
            }
        }
    }

    fn web_addrs(&self) -> Vec<String> {
        self.webs.iter().map(|w| w.addr.clone()).collect()
    }

    fn backends_file(&self) -> PathBuf {
        self.settings.data_dir.join(BACKENDS_FILE)
    }

    /// Writes the balancer's list.
    fn write_backends_file(&self, addrs: &[String]) -> Result<(), String> {
        let path = self.backends_file();
        let mut text = String::from("# written by pastebin up: the webservers the balancer uses\n");
        for addr in addrs {
            text.push_str(addr);
            text.push('\n');
        }
        write_whole(&path, &text).map_err(|err| format!("cannot write {}: {err}", path.display()))
    }

    /// Handles a SIGHUP: scales to the count in the scale request file, and records
    /// the outcome for `pastebin scale`.
    async fn scale_on_request(&mut self) {
        let dir = self.settings.data_dir.clone();
        let request = std::fs::read_to_string(dir.join(SCALE_REQUEST_FILE));
        let _ = std::fs::remove_file(dir.join(SCALE_REQUEST_FILE));
        let outcome = match request.as_deref().map(str::trim).map(str::parse::<usize>) {
            Ok(Ok(n)) if (1..=MAX_WEBSERVERS).contains(&n) => self.scale(n).await,
            Ok(_) => Err(format!(
                "a scale request must be a number from 1 to {MAX_WEBSERVERS}"
            )),
            Err(_) => Err("SIGHUP without a scale request; nothing to do".to_owned()),
        };
        let status = match &outcome {
            Ok(()) => {
                tracing::info!(webservers = self.webs.len(), "scaled");
                format!("ok {}\n", self.webs.len())
            }
            Err(err) => {
                tracing::error!(%err, "scaling failed");
                format!("error {err}\n")
            }
        };
        if let Err(err) = write_whole(&dir.join(SCALE_STATUS_FILE), &status) {
            tracing::warn!(%err, "cannot record the scale outcome");
        }
    }

    /// Runs `n` webservers: new ones join the balancer once healthy; removed ones
    /// leave the balancer first and are stopped (draining) after.
    async fn scale(&mut self, n: usize) -> Result<(), String> {
        if n > self.webs.len() {
            let mut added = Ok(());
            while self.webs.len() < n && added.is_ok() {
                added = self.add_webserver(n).await;
            }
            // Those that did start get traffic even if a later one failed.
            let reloaded = self.reload_lb().await;
            added.and(reloaded)
        } else if n < self.webs.len() {
            let leaving = self.webs.split_off(n);
            if let Err(err) = self.reload_lb().await {
                // The balancer may still send them requests: keep them running.
                self.webs.extend(leaving);
                let _ = self.write_backends_file(&self.web_addrs());
                return Err(err);
            }
            stop_together(leaving).await;
            Ok(())
        } else {
            Ok(())
        }
    }

    /// Rewrites the balancer's list, sends it SIGHUP, and waits until its status page
    /// shows exactly that list, every entry taking traffic.
    async fn reload_lb(&self) -> Result<(), String> {
        let expected = self.web_addrs();
        self.write_backends_file(&expected)?;
        let Some(lb) = &self.lb else {
            return Ok(());
        };
        let pid = (*lb.pid.borrow()).ok_or("the balancer is not running")?;
        let pid = i32::try_from(pid).map_err(|_| "bad pid")?;
        kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|err| format!("SIGHUP to lb: {err}"))?;

        let url = format!(
            "http://{}{}/status",
            lb.addr,
            contract::defaults::LB_ADMIN_PREFIX
        );
        let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
        want.sort_unstable();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(status) = self.probe.get_json::<serde_json::Value>(&url).await {
                let backends = status["backends"].as_array().cloned().unwrap_or_default();
                let mut have: Vec<&str> =
                    backends.iter().filter_map(|b| b["addr"].as_str()).collect();
                have.sort_unstable();
                let all_available = backends.iter().all(|b| b["available"] == true);
                if have == want && all_available {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the balancer did not take the new list {expected:?} within {START_TIMEOUT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the balancer, then the webservers, then the stores, so no tier is left
    /// calling one that is gone while it drains.
    async fn stop_all(mut self) {
        if let Some(lb) = self.lb.take() {
            lb.stop().await;
        }
        stop_together(std::mem::take(&mut self.webs)).await;
        stop_together(std::mem::take(&mut self.stores)).await;
        if let Some(mut emulation) = self.emulation.take() {
            let id = emulation.id().to_owned();
            match tokio::task::spawn_blocking(move || emulation.teardown()).await {
                Ok(Ok(())) => tracing::info!(run = %id, "emulated hosts removed"),
                Ok(Err(err)) => {
                    tracing::error!(run = %id, %err, "emulated hosts not fully removed")
                }
                Err(err) => tracing::error!(run = %id, %err, "removing the emulated hosts failed"),
            }
        }
    }
}

/// Writes `text` to `path` whole (a rename), so a reader never sees half of it.
fn write_whole(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Tells all of `tier` to stop at once, then waits for each.
async fn stop_together(tier: Vec<Supervised>) {
    for sup in &tier {
        let _ = sup.stop.send(true);
    }
    for sup in tier {
        let _ = sup.task.await;
    }
}

/// The launcher's lock file in the data directory; it holds the pid of its owner.
pub const LOCK_FILE: &str = "pastebin-up.lock";

/// Takes the data directory's launcher lock (an advisory `flock`, released by the
/// kernel when this process exits, however it exits) and writes our pid into it.
/// Held by another process: an error naming the lock file and that process.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, String> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|err| format!("cannot open the lock file {}: {err}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_owned()
            } else {
                format!("pid {holder}")
            };
            return Err(format!(
                "data directory {} is in use: its lock {} is held by {who} (another `pastebin up`); stop it first or use another --data-dir",
                dir.display(),
                path.display()
            ));
        }
        Err(std::fs::TryLockError::Error(err)) => {
            return Err(format!("cannot lock {}: {err}", path.display()));
        }
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(|err| format!("cannot write the lock file {}: {err}", path.display()))?;
    Ok(file)
}

/// The machine's cores (at least 1).
fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The CPUs this process may run on (its affinity mask), ascending; empty if
/// unknown.
fn allowed_cpus() -> Vec<usize> {
    match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..=MAX_CPU)
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The CPUs webserver `index` is pinned to, when it runs `threads` threads among
/// others on the `allowed` CPUs: the next `threads` of them after those of the
/// webservers before it, round the list; None when that is every allowed CPU (one
/// webserver that has the machine: nothing to pin). Webservers that each stay on
/// their own cores keep their caches warm and are not moved between cores by the
/// scheduler's balancing (BENCHMARKS.md, issue 11, fourth round).
fn web_cpus(index: usize, threads: usize, allowed: &[usize]) -> Option<CpuList> {
    if threads >= allowed.len() {
        return None;
    }
    CpuList::new(share(index, threads, allowed))
}

/// Webserver `index`'s `threads` CPUs of `pool`: the next ones after those of the
/// webservers before it, round the pool (all of it if it is smaller).
fn share(index: usize, threads: usize, pool: &[usize]) -> Vec<usize> {
    if pool.is_empty() {
        return Vec::new();
    }
    (0..threads.min(pool.len()))
        .map(|k| pool[(index * threads + k) % pool.len()])
        .collect()
}

/// Runtime workers of sqlsvc and nosqlsvc when they share one machine with the
/// balancer and the web tier: a quarter of its cores, at least 1. Their requests take
/// tens of microseconds and their disk work runs on threads of its own (SQLite's
/// connections, redb's writer); more workers on a shared machine only add wake-ups.
/// On 2 cores, one worker each took 4 webservers from 18,345 to 21,020 req/s and left
/// one webserver where it was (BENCHMARKS.md, issue 11, fourth round).
fn store_threads(cores: usize) -> usize {
    (cores / 4).max(1)
}

/// Runtime threads for one of `count` webservers run on one machine of `cores`: a
/// host's CPU budget rounded up when it has one (an emulated host), else an equal
/// share of the cores; at least 1. More runtime threads than the CPU a process
/// gets only add wake-ups and context switches (BENCHMARKS.md, issue 11).
fn web_threads(count: usize, budget: Option<f64>, cores: usize) -> usize {
    let share = match budget {
        Some(b) if b.is_finite() && b > 0.0 => b.ceil() as usize,
        _ => cores / count.max(1),
    };
    share.clamp(1, cores.max(1))
}

/// The settings every child shares, passed as flags so children need not read the
/// config file again.
fn common_args(settings: &Settings) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        // Addresses reach children already moved; a PASTEBIN_PORT_OFFSET they inherit
        // must not move them twice.
        "--port-offset".into(),
        "0".into(),
        "--data-dir".into(),
        settings.data_dir.clone().into_os_string(),
        "--max-body-bytes".into(),
        settings.max_body_bytes.to_string().into(),
        "--cache-bytes".into(),
        settings.cache_bytes.to_string().into(),
        "--cache-prefetch".into(),
        settings.cache_prefetch.to_string().into(),
        "--sqlsvc-readers".into(),
        settings.sqlsvc_readers.to_string().into(),
        "--nosql-cache-bytes".into(),
        settings.nosql_cache_bytes.to_string().into(),
        "--web-store-timeout-ms".into(),
        settings.web_store_timeout.as_millis().to_string().into(),
        "--lb-response-timeout-ms".into(),
        settings.lb_response_timeout.as_millis().to_string().into(),
        "--lb-total-timeout-ms".into(),
        settings.lb_total_timeout.as_millis().to_string().into(),
        "--sweep-interval".into(),
        settings.sweep_interval.as_secs_f64().to_string().into(),
        "--orphan-grace".into(),
        settings.orphan_grace.as_secs_f64().to_string().into(),
        "--max-expires-in".into(),
        settings.max_expires_in.to_string().into(),
    ];
    if let Some(d) = settings.default_expires_in {
        args.extend(["--default-expires-in".into(), d.to_string().into()]);
    }
    if let Some(t) = settings.web_threads {
        args.extend(["--web-threads".into(), t.to_string().into()]);
    }
    for proxy in &settings.lb_trusted_proxies {
        args.extend(["--lb-trusted-proxy".into(), proxy.into()]);
    }
    if let Some(url) = &settings.public_url {
        args.extend(["--public-url".into(), url.into()]);
    }
    match &settings.nosql_backend {
        NosqlBackend::Embedded => args.extend(["--nosql-backend".into(), "embedded".into()]),
        NosqlBackend::MongoDb(mongo) => {
            args.extend(mongo.to_args().into_iter().map(OsString::from))
        }
    }
    args
}

/// Starts one child and waits until it is healthy.
async fn start(
    exe: &std::path::Path,
    spec: Spec,
    probe: &JsonClient,
) -> Result<Supervised, String> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (pid_tx, pid_rx) = watch::channel(None);
    let (addr_tx, addr_rx) = oneshot::channel();
    let label = spec.label();
    let task = tokio::spawn(supervise(exe.to_owned(), spec, stop_rx, addr_tx, pid_tx));
    let mut sup = Supervised {
        stop: stop_tx,
        task,
        pid: pid_rx,
        addr: String::new(),
    };
    let addr = match tokio::time::timeout(START_TIMEOUT, addr_rx).await {
        Ok(Ok(Ok(addr))) => addr,
        Ok(Ok(Err(err))) => {
            sup.stop().await;
            return Err(format!("{label}: {err}"));
        }
        Ok(Err(_)) | Err(_) => {
            sup.stop().await;
            return Err(format!("{label}: did not start within {START_TIMEOUT:?}"));
        }
    };
    if let Err(err) = wait_healthy(probe, &addr).await {
        sup.stop().await;
        return Err(format!("{label} on {addr}: {err}"));
    }
    tracing::info!(child = %label, %addr, "healthy");
    sup.addr = addr;
    Ok(sup)
}

async fn wait_healthy(probe: &JsonClient, addr: &str) -> Result<(), String> {
    let url = format!("http://{addr}/healthz");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match probe.get_json::<serde::de::IgnoredAny>(&url).await {
            Ok(_) => return Ok(()),
            Err(err) if Instant::now() >= deadline => {
                return Err(format!("not healthy within {START_TIMEOUT:?}: {err}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Keeps one child running until told to stop: spawns it, reports the address it
/// bound the first time, restarts it (on that address) whenever it exits.
async fn supervise(
    exe: std::path::PathBuf,
    mut spec: Spec,
    mut stop: watch::Receiver<bool>,
    addr_tx: oneshot::Sender<Result<String, String>>,
    pid_tx: watch::Sender<Option<u32>>,
) {
    let label = spec.label();
    let mut addr_tx = Some(addr_tx);
    let mut backoff = Duration::from_millis(250);
    loop {
        let started_at = Instant::now();
        let (mut child, addr) = match spawn_child(&exe, &spec).await {
            Ok(pair) => pair,
            Err(err) => {
                tracing::error!(child = %label, %err, "could not start");
                if let Some(tx) = addr_tx.take() {
                    let _ = tx.send(Err(err));
                    return;
                }
                if wait_or_stop(&mut stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        // Held until the child is done with: its closing tells the child the launcher
        // is gone. (`Child::wait` would close it if it were left in the child.)
        let _stdin = child.stdin.take();
        pid_tx.send_replace(child.id());
        // Restarts bind the same address, so the balancer and webservers keep
        // finding this child.
        spec.listen.clone_from(&addr);
        if let Some(tx) = addr_tx.take() {
            let _ = tx.send(Ok(addr));
        }
        let exited = tokio::select! {
            status = child.wait() => Some(status),
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(status) = exited else {
            terminate(&label, &mut child).await;
            return;
        };
        if *stop.borrow() {
            return;
        }
        let status = status
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string());
        tracing::error!(child = %label, %status, "exited; restarting");
        if started_at.elapsed() > STABLE_AFTER {
            backoff = Duration::from_millis(250);
        }
        if wait_or_stop(&mut stop, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Sleeps `delay`; true if a stop came first.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    let slept = tokio::select! {
        () = tokio::time::sleep(delay) => true,
        _ = stop.wait_for(|s| *s) => false,
    };
    !slept || *stop.borrow()
}

/// Spawns the child and reads the address it announces.
async fn spawn_child(exe: &std::path::Path, spec: &Spec) -> Result<(Child, String), String> {
    let mut cmd = match &spec.host {
        Some(host) => host.command(exe),
        None => Command::new(exe),
    };
    // A host with a budget of c cores runs its runtime on ceil(c) worker threads,
    // as it would on a machine with that many cores.
    if let Some(cores) = spec.host.as_ref().and_then(|h| h.cpu_budget) {
        cmd.env(
            "TOKIO_WORKER_THREADS",
            (cores.ceil() as u64).max(1).to_string(),
        );
    } else if spec.host.is_none()
        && matches!(spec.kind, Kind::Sqlsvc | Kind::Nosqlsvc)
        && std::env::var_os("TOKIO_WORKER_THREADS").is_none()
    {
        cmd.env(
            "TOKIO_WORKER_THREADS",
            store_threads(available_cores()).to_string(),
        );
    }
    // A host that does not share the webservers' cores runs on the others (a
    // webserver's own share is among its arguments, chosen by `add_webserver`).
    if let Some(cpus) = spec.host.as_ref().and_then(|h| h.cpus.as_ref())
        && spec.kind != Kind::Web
    {
        cmd.arg("--cpus").arg(cpus.to_string());
    }
    cmd.arg(spec.kind.name())
        .arg("--listen")
        .arg(&spec.listen)
        .arg("--exit-with-parent")
        .args(&spec.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own process group: a Ctrl-C reaches only the launcher, which then stops
        // the children in order.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|err| format!("cannot spawn: {err}"))?;
    // Into its host's CPU group at once: at most the first moments of `ip netns
    // exec` run outside it (a pre-exec hook would need unsafe code).
    if let (Some(host), Some(pid)) = (&spec.host, child.id())
        && let Err(err) = host.enter(pid)
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(err);
    }
    let stdout = child.stdout.take().ok_or("child has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await;
    let addr = match first {
        Ok(Ok(Some(line))) => line.strip_prefix(LISTENING).map(str::to_owned),
        _ => None,
    };
    let Some(addr) = addr else {
        let _ = child.start_kill();
        let status = child
            .wait()
            .await
            .map(|s| s.to_string())
            .unwrap_or_default();
        return Err(format!("exited before listening ({status})"));
    };
    // Anything else a child prints on stdout goes to our stderr.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
        }
    });
    Ok((child, addr))
}

/// SIGTERM, then SIGKILL if the child has not exited within `STOP_TIMEOUT`.
async fn terminate(label: &str, child: &mut Child) {
    if let Some(pid) = child.id() {
        let pid = i32::try_from(pid).unwrap_or(i32::MAX);
        if let Err(err) = kill(Pid::from_raw(pid), Signal::SIGTERM) {
            tracing::warn!(child = %label, %err, "SIGTERM failed");
        }
    }
    match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
        Ok(_) => tracing::info!(child = %label, "stopped"),
        Err(_) => {
            tracing::warn!(child = %label, "did not stop in time; killing");
            let _ = child.kill().await;
        }
    }
}

/// `pastebin scale N`: asks the `pastebin up` running on this data directory to run
/// `n` webservers, and waits for its answer.
pub async fn request_scale(settings: &Settings, n: usize) -> Result<(), String> {
    if !(1..=MAX_WEBSERVERS).contains(&n) {
        return Err(format!(
            "the webserver count must be from 1 to {MAX_WEBSERVERS}, not {n}"
        ));
    }
    let dir = &settings.data_dir;
    let pid_file = dir.join(PID_FILE);
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .ok_or_else(|| {
            format!(
                "no running `pastebin up` found for data directory {} (no {})",
                dir.display(),
                pid_file.display()
            )
        })?;
    // A stale pid file (the launcher died) may name an unrelated process now, for
    // which SIGHUP would be fatal: make sure it is a `pastebin up`.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let is_up = cmdline.split(|b| *b == 0).any(|arg| arg == b"up")
        && String::from_utf8_lossy(&cmdline).contains("pastebin");
    if !is_up {
        return Err(format!(
            "pid {pid} (from {}) is not a running `pastebin up`",
            pid_file.display()
        ));
    }
    let status_file = dir.join(SCALE_STATUS_FILE);
    let _ = std::fs::remove_file(&status_file);
    std::fs::write(dir.join(SCALE_REQUEST_FILE), format!("{n}\n"))
        .map_err(|err| format!("cannot write the scale request: {err}"))?;
    kill(Pid::from_raw(pid), Signal::SIGHUP)
        .map_err(|err| format!("cannot signal `pastebin up` (pid {pid}): {err}"))?;
    let deadline = Instant::now() + START_TIMEOUT * 2;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            let status = status.trim();
            return match status.strip_prefix("ok ") {
                Some(count) => {
                    println!("pastebin up (pid {pid}) now runs {count} webservers");
                    Ok(())
                }
                None => Err(format!(
                    "pastebin up (pid {pid}): {}",
                    status.trim_start_matches("error ")
                )),
            };
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "pastebin up (pid {pid}) did not answer within {:?}",
                START_TIMEOUT * 2
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::{store_threads, web_cpus, web_threads};

    #[test]
    fn stores_get_a_quarter_of_a_shared_machine() {
        assert_eq!(store_threads(1), 1);
        assert_eq!(store_threads(2), 1);
        assert_eq!(store_threads(8), 2);
        assert_eq!(store_threads(64), 16);
    }

    #[test]
    fn webservers_are_pinned_to_their_own_share_of_the_cores() {
        let pinned = |index, threads, allowed: &[usize]| {
            web_cpus(index, threads, allowed).map(|l| l.cpus().to_vec())
        };
        // One webserver with both cores: not pinned.
        assert_eq!(pinned(0, 2, &[0, 1]), None);
        // 4 single-threaded webservers on 2 cores: 0, 1, 0, 1.
        let four: Vec<_> = (0..4).map(|i| pinned(i, 1, &[0, 1])).collect();
        assert_eq!(
            four,
            [Some(vec![0]), Some(vec![1]), Some(vec![0]), Some(vec![1])]
        );
        // 3 webservers of 2 threads on 8 cores: disjoint pairs.
        assert_eq!(pinned(2, 2, &[0, 1, 2, 3, 4, 5, 6, 7]), Some(vec![4, 5]));
        // The allowed CPUs need not start at 0 nor be contiguous.
        assert_eq!(pinned(1, 1, &[2, 5]), Some(vec![5]));
        assert_eq!(pinned(0, 1, &[]), None);
        // A share of a pool smaller than the threads is the whole pool.
        assert_eq!(super::share(3, 2, &[1]), vec![1]);
        assert_eq!(super::share(0, 1, &[]), Vec::<usize>::new());
    }

    #[test]
    fn webservers_share_the_cores_or_get_their_budget() {
        // One machine: the cores shared out, at least one each.
        assert_eq!(web_threads(1, None, 2), 2);
        assert_eq!(web_threads(2, None, 2), 1);
        assert_eq!(web_threads(4, None, 2), 1);
        assert_eq!(web_threads(3, None, 8), 2);
        // Emulated hosts: the budget rounded up, never more than the cores.
        assert_eq!(web_threads(4, Some(0.05), 2), 1);
        assert_eq!(web_threads(1, Some(1.5), 8), 2);
        assert_eq!(web_threads(1, Some(16.0), 2), 2);
        assert_eq!(web_threads(0, Some(f64::NAN), 2), 2);
    }
}
