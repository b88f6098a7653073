//! A pastebin stack launched for a run: `pastebin --config FILE up` with every port 0
//! and a temporary data directory; its URL read from stdout; stopped with SIGTERM
//! (then killed if it hangs) at the end.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::LoadError;

/// How long the stack may take to print its URL.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long it may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `pastebin up`.
pub struct Stack {
    child: Child,
    /// The balancer's URL, `http://127.0.0.1:PORT`.
    pub url: String,
    pub webservers: usize,
    /// The emulated hosts, with `--emulate-hosts`.
    pub hosts: Vec<crate::hosts::Host>,
    /// The cores a load generator should use beside the emulated hosts (those of
    /// the hosts other than the webservers'), when the launcher splits them.
    pub generator_cpus: Option<Vec<usize>>,
    dir: tempfile::TempDir,
    /// Keeps reading the launcher's stdout so that it never blocks or sees EPIPE.
    drain: JoinHandle<()>,
}

/// Where `pastebin` is by default: next to this binary (same cargo target dir).
pub fn default_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    // Test executables live in target/<profile>/deps.
    let dir = if dir.ends_with("deps") {
        dir.parent()?
    } else {
        dir
    };
    Some(dir.join("pastebin"))
}

impl Stack {
    /// Launches a stack with `webservers` webservers (on emulated hosts with these
    /// `--host-cpu` budgets, when `emulate` is set); gives up after a minute, or when
    /// `stop` turns true.
    pub async fn start(
        bin: &Path,
        webservers: usize,
        emulate: Option<&[String]>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Stack, LoadError> {
        if !bin.is_file() {
            return Err(LoadError::Spawn(format!(
                "no pastebin binary at {}: run `cargo build --release --bin pastebin` first, or pass --pastebin-bin PATH",
                bin.display()
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("loadtest-stack-")
            .tempdir()
            .map_err(|err| LoadError::Spawn(format!("cannot make a temporary directory: {err}")))?;
        let config = dir.path().join("pastebin.toml");
        let data_dir = dir.path().join("data");
        let toml = format!(
            "data_dir = {:?}\n[lb]\nlisten = \"127.0.0.1:0\"\n[web]\ncount = {webservers}\nbase_port = 0\n[sqlsvc]\nlisten = \"127.0.0.1:0\"\n[nosqlsvc]\nlisten = \"127.0.0.1:0\"\n",
            data_dir.display().to_string()
        );
        std::fs::write(&config, toml)
            .map_err(|err| LoadError::Spawn(format!("cannot write {}: {err}", config.display())))?;
        let log_path = dir.path().join("stack.log");
        let log = std::fs::File::create(&log_path).map_err(|err| {
            LoadError::Spawn(format!("cannot create {}: {err}", log_path.display()))
        })?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(&config).arg("up");
        if let Some(budgets) = emulate {
            cmd.arg("--emulate-hosts");
            for budget in budgets {
                cmd.args(["--host-cpu", budget]);
            }
        }
        let mut child = cmd
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            // Its own process group: a Ctrl-C in the terminal reaches only this
            // process, which then stops the stack in order.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| LoadError::Spawn(format!("cannot run {}: {err}", bin.display())))?;
        let Some(stdout) = child.stdout.take() else {
            return Err(LoadError::Spawn("no stdout from pastebin up".into()));
        };
        let mut lines = BufReader::new(stdout).lines();
        let wait_url = async {
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) if line.starts_with("http://") => return Ok(line),
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => {
                        return Err("pastebin up exited before printing its URL".to_owned());
                    }
                }
            }
        };
        let outcome = tokio::select! {
            r = tokio::time::timeout(START_TIMEOUT, wait_url) => match r {
                Ok(r) => r,
                Err(_) => Err(format!("no URL from pastebin up within {} s", START_TIMEOUT.as_secs())),
            },
            stopped = async { stop.wait_for(|s| *s).await.is_ok() } => {
                if stopped { Err("interrupted".to_owned()) } else { std::future::pending().await }
            }
        };
        let url = match outcome {
            Ok(url) => url,
            Err(msg) => {
                let tail = log_tail(&log_path);
                let _ = terminate(&mut child).await;
                return Err(LoadError::Spawn(format!(
                    "{msg}; its log ends with:\n{tail}"
                )));
            }
        };
        let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let mut stack = Stack {
            child,
            url,
            webservers,
            hosts: Vec::new(),
            generator_cpus: None,
            dir,
            drain,
        };
        if emulate.is_some() {
            match crate::hosts::read(&data_dir.join("emulated-hosts.json")) {
                Ok((hosts, cpus)) => {
                    stack.hosts = hosts;
                    stack.generator_cpus = cpus;
                }
                Err(err) => {
                    let _ = stack.stop().await;
                    return Err(LoadError::Spawn(err));
                }
            }
        }
        Ok(stack)
    }

    /// The stack's log file (stderr of the launcher and its children).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("stack.log")
    }

    /// SIGTERM, wait for a clean exit, kill if it does not come.
    pub async fn stop(mut self) -> Result<(), LoadError> {
        let result = terminate(&mut self.child).await;
        self.drain.abort();
        result
    }
}

async fn terminate(child: &mut Child) -> Result<(), LoadError> {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        // ESRCH: it already exited, which is fine.
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(LoadError::Spawn(format!(
            "pastebin up stopped with {status}"
        ))),
        Ok(Err(err)) => Err(LoadError::Spawn(format!(
            "cannot wait for pastebin up: {err}"
        ))),
        Err(_) => {
            let _ = child.kill().await;
            Err(LoadError::Spawn(format!(
                "pastebin up did not stop within {} s of SIGTERM; killed",
                STOP_TIMEOUT.as_secs()
            )))
        }
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
