//! `pastebin up`: starts sqlsvc and nosqlsvc, then the webservers, then the load
//! balancer, each as a child process of this one; waits until each is healthy; prints
//! the balancer's URL; restarts a child that dies (on the address it had, so peers
//! keep finding it); on Ctrl-C or SIGTERM stops them front to back.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::{Duration, Instant};

use httpkit::{ClientConfig, JsonClient};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::component::{Kind, LISTENING};
use crate::config::{NosqlBackend, Settings};

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
}

pub async fn up(settings: Settings) -> Result<(), String> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|err| {
        format!(
            "cannot create data directory {}: {err}",
            settings.data_dir.display()
        )
    })?;
    let exe = std::env::current_exe().map_err(|err| format!("cannot find own binary: {err}"))?;
    let common = common_args(&settings);
    let probe = JsonClient::new(ClientConfig {
        request_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    });

    let startup = async {
        let mut tiers: Vec<Vec<Supervised>> = Vec::new();
        let stores = [
            (Kind::Sqlsvc, settings.sqlsvc.clone()),
            (Kind::Nosqlsvc, settings.nosqlsvc.clone()),
        ];
        let mut store_addrs = Vec::new();
        let mut tier = Vec::new();
        for (kind, listen) in stores {
            let spec = Spec {
                kind,
                index: 0,
                args: common.clone(),
                listen,
            };
            let (sup, addr) = start(&exe, spec, &probe).await?;
            tier.push(sup);
            store_addrs.push(addr);
        }
        tiers.push(tier);

        let mut web_args = common.clone();
        web_args.extend(["--sqlsvc".into(), store_addrs[0].clone().into()]);
        web_args.extend(["--nosqlsvc".into(), store_addrs[1].clone().into()]);
        let mut tier = Vec::new();
        let mut web_addrs = Vec::new();
        for (index, listen) in settings.webservers.iter().enumerate() {
            let spec = Spec {
                kind: Kind::Web,
                index,
                args: web_args.clone(),
                listen: listen.clone(),
            };
            let (sup, addr) = start(&exe, spec, &probe).await?;
            tier.push(sup);
            web_addrs.push(addr);
        }
        tiers.push(tier);

        let mut lb_args = common.clone();
        for addr in &web_addrs {
            lb_args.extend(["--webserver".into(), addr.clone().into()]);
        }
        let spec = Spec {
            kind: Kind::Lb,
            index: 0,
            args: lb_args,
            listen: settings.lb_listen.clone(),
        };
        let (sup, lb_addr) = start(&exe, spec, &probe).await?;
        tiers.push(vec![sup]);
        Ok::<_, (String, Vec<Vec<Supervised>>)>((tiers, lb_addr))
    };

    // Startup can fail half-way; whatever started must then be stopped.
    let mut started: Vec<Vec<Supervised>> = Vec::new();
    let outcome = tokio::select! {
        result = collect(startup, &mut started) => result,
        () = httpkit::shutdown_signal() => Err("interrupted during startup".to_owned()),
    };
    match outcome {
        Ok(lb_addr) => {
            tracing::info!(url = %format!("http://{lb_addr}"), webservers = settings.webservers.len(), "pastebin is up");
            println!("http://{lb_addr}");
            httpkit::shutdown_signal().await;
            stop_all(started).await;
            Ok(())
        }
        Err(err) => {
            stop_all(started).await;
            Err(err)
        }
    }
}

/// Runs the startup future, moving each started tier into `started` as it goes so
/// that the caller can stop them whatever happens.
async fn collect(
    startup: impl std::future::Future<
        Output = Result<(Vec<Vec<Supervised>>, String), (String, Vec<Vec<Supervised>>)>,
    >,
    started: &mut Vec<Vec<Supervised>>,
) -> Result<String, String> {
    match startup.await {
        Ok((tiers, lb_addr)) => {
            started.extend(tiers);
            Ok(lb_addr)
        }
        Err((err, tiers)) => {
            started.extend(tiers);
            Err(err)
        }
    }
}

/// The settings every child shares, passed as flags so children need not read the
/// config file again.
fn common_args(settings: &Settings) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--data-dir".into(),
        settings.data_dir.clone().into_os_string(),
        "--max-body-bytes".into(),
        settings.max_body_bytes.to_string().into(),
        "--cache-bytes".into(),
        settings.cache_bytes.to_string().into(),
    ];
    if let Some(url) = &settings.public_url {
        args.extend(["--public-url".into(), url.into()]);
    }
    match &settings.nosql_backend {
        NosqlBackend::Embedded => args.extend(["--nosql-backend".into(), "embedded".into()]),
        NosqlBackend::MongoDb {
            uri,
            database,
            collection,
        } => args.extend([
            "--nosql-backend".into(),
            "mongodb".into(),
            "--mongodb-uri".into(),
            uri.into(),
            "--mongodb-database".into(),
            database.into(),
            "--mongodb-collection".into(),
            collection.into(),
        ]),
    }
    args
}

/// Starts one child and waits until it is healthy; returns its supervision task and
/// the address it bound.
async fn start(
    exe: &std::path::Path,
    spec: Spec,
    probe: &JsonClient,
) -> Result<(Supervised, String), (String, Vec<Vec<Supervised>>)> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (addr_tx, addr_rx) = oneshot::channel();
    let label = spec.label();
    let task = tokio::spawn(supervise(exe.to_owned(), spec, stop_rx, addr_tx));
    let sup = Supervised {
        stop: stop_tx,
        task,
    };
    let addr = match tokio::time::timeout(START_TIMEOUT, addr_rx).await {
        Ok(Ok(Ok(addr))) => addr,
        Ok(Ok(Err(err))) => return Err((format!("{label}: {err}"), vec![vec![sup]])),
        Ok(Err(_)) | Err(_) => {
            return Err((
                format!("{label}: did not start within {START_TIMEOUT:?}"),
                vec![vec![sup]],
            ));
        }
    };
    if let Err(err) = wait_healthy(probe, &addr).await {
        return Err((format!("{label} on {addr}: {err}"), vec![vec![sup]]));
    }
    tracing::info!(child = %label, %addr, "healthy");
    Ok((sup, addr))
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
    let mut cmd = Command::new(exe);
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

/// Stops tiers front to back: balancer, webservers, then the stores, so no tier is
/// left calling one that is gone while it drains.
async fn stop_all(mut tiers: Vec<Vec<Supervised>>) {
    while let Some(tier) = tiers.pop() {
        for sup in &tier {
            let _ = sup.stop.send(true);
        }
        for sup in tier {
            let _ = sup.task.await;
        }
    }
}
