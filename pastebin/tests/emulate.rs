//! `pastebin up --emulate-hosts`: every component in a network namespace of its own,
//! reached over its own address; requests through the printed URL; everything made
//! (namespaces, bridge, veths, cgroups) gone after a stop, and gone after a `kill -9`
//! of the launcher once the next one starts.
//!
//! Needs root. Without it these tests print a loud SKIPPED line, except under
//! `CI=true`, where that is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use tokio::process::Command;

use common::{Spawned, announced, curlish, spawn_pastebin};

/// False (after a loud line) when the test cannot run here; panics under CI.
fn can_run(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    let ip = StdCommand::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if root && ip {
        return true;
    }
    let why = if root {
        "iproute2's `ip` is missing"
    } else {
        "not root"
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}, and CI=true: emulated-host tests must run in CI");
    }
    eprintln!("******** SKIPPED {test}: {why} (emulated hosts need root and iproute2) ********");
    false
}

/// Whether this machine's cgroups can enforce CPU budgets (v1's `cpu` controller, or
/// v2 with `cpu` among its controllers); without, budgets are left out, loudly.
fn cpu_budgets_available() -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let available = mountinfo.lines().any(|line| {
        let Some((left, right)) = line.split_once(" - ") else {
            return false;
        };
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or_default();
        let options = right.nth(1).unwrap_or_default();
        let mount_point = left.split(' ').nth(4).unwrap_or_default();
        match fstype {
            "cgroup" => options.split(',').any(|o| o == "cpu"),
            "cgroup2" => std::fs::read_to_string(format!("{mount_point}/cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu")),
            _ => false,
        }
    });
    if !available {
        eprintln!("******** no cgroup cpu controller here: CPU budgets NOT tested ********");
    }
    available
}

fn write_config(dir: &Path, webservers: usize) -> PathBuf {
    let config = dir.join("pastebin.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[lb]\nlisten = \"127.0.0.1:0\"\n[web]\ncount = {webservers}\nbase_port = 0\n[sqlsvc]\nlisten = \"127.0.0.1:0\"\n[nosqlsvc]\nlisten = \"127.0.0.1:0\"\n",
            dir.join("data")
        ),
    )
    .unwrap();
    config
}

/// A launcher with emulated hosts, and the run id it claimed.
struct Emulated {
    child: Spawned,
    url: String,
    hosts: serde_json::Value,
}

impl Emulated {
    async fn start(dir: &Path, webservers: usize, extra: &[&str]) -> Emulated {
        let config = write_config(dir, webservers);
        let mut args: Vec<std::ffi::OsString> = vec![
            "--config".into(),
            config.into_os_string(),
            "up".into(),
            "--emulate-hosts".into(),
        ];
        args.extend(extra.iter().map(Into::into));
        let mut child = spawn_pastebin(args);
        let url = announced(&mut child, |line| line.starts_with("http://")).await;
        let hosts_file = dir.join("data").join("emulated-hosts.json");
        let hosts = serde_json::from_str(&std::fs::read_to_string(hosts_file).unwrap()).unwrap();
        Emulated { child, url, hosts }
    }

    fn id(&self) -> String {
        self.hosts["run_id"].as_str().unwrap().to_owned()
    }

    fn host(&self, name: &str) -> &serde_json::Value {
        self.hosts["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap_or_else(|| panic!("no host {name} in {}", self.hosts))
    }

    /// SIGTERM; the launcher must exit cleanly within 60 s.
    async fn stop(mut self) {
        let pid = self.child.id().unwrap() as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("pastebin up did not stop within 60 s")
            .unwrap();
        assert!(status.success(), "{status}");
    }
}

fn ip(args: &[&str]) -> String {
    let out = StdCommand::new("ip").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every namespace, link and cgroup directory of run `id` that exists now.
fn leftovers(id: &str) -> Vec<String> {
    let prefix = format!("pastebin-{id}");
    let mut found: Vec<String> = ip(&["netns", "list"])
        .lines()
        .chain(ip(&["-o", "link", "show"]).lines())
        .filter_map(|l| {
            l.split([' ', '@', ':'])
                .find(|w| w.starts_with(&format!("{prefix}-")))
        })
        .map(str::to_owned)
        .collect();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    for line in mounts.lines() {
        let mut words = line.split(' ');
        let (_, mount_point, fstype) = (words.next(), words.next(), words.next());
        if matches!(fstype, Some("cgroup" | "cgroup2")) {
            let dir = Path::new(mount_point.unwrap()).join(&prefix);
            if dir.exists() {
                found.push(dir.display().to_string());
            }
        }
    }
    if Path::new("/run/pastebin-emulate")
        .join(format!("{id}.json"))
        .exists()
    {
        found.push(format!("/run/pastebin-emulate/{id}.json"));
    }
    found
}

/// Polls until run `id` has left nothing behind.
async fn assert_gone(id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = leftovers(id);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "run {id} left these behind: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn in_emulated_range(addr: &str) -> bool {
    let ip: std::net::Ipv4Addr = addr.parse().unwrap();
    let [a, b, ..] = ip.octets();
    a == 198 && (b == 18 || b == 19)
}

#[tokio::test]
async fn emulated_hosts_serve_through_the_printed_url_and_leave_nothing_behind() {
    if !can_run("emulated_hosts_serve_through_the_printed_url_and_leave_nothing_behind") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let budgets = cpu_budgets_available();
    let extra: &[&str] = if budgets {
        &["--host-cpu", "web=0.5,sqlsvc=1"]
    } else {
        &[]
    };
    let up = Emulated::start(dir.path(), 2, extra).await;
    let id = up.id();

    // Five hosts, five addresses in 198.18.0.0/15, the balancer's in the URL.
    let names = ["lb", "sqlsvc", "nosqlsvc", "web0", "web1"];
    let addrs: HashSet<String> = names
        .iter()
        .map(|n| up.host(n)["addr"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(addrs.len(), names.len(), "{}", up.hosts);
    assert!(addrs.iter().all(|a| in_emulated_range(a)), "{addrs:?}");
    let lb_addr = up.host("lb")["addr"].as_str().unwrap();
    assert!(
        up.url.starts_with(&format!("http://{lb_addr}:")),
        "{} is not the lb host's",
        up.url
    );

    // Each component runs inside its own namespace, and in its host's CPU group.
    let spaces = ip(&["netns", "list"]);
    for name in names {
        let host = up.host(name);
        let ns = host["netns"].as_str().unwrap();
        assert!(ns.starts_with(&format!("pastebin-{id}-")), "{ns}");
        assert!(spaces.contains(ns), "{ns} not in {spaces}");
        let pids = ip(&["netns", "pids", ns]);
        assert_eq!(pids.lines().count(), 1, "{name}: pids {pids:?}");
        let usage = PathBuf::from(host["cpu_usage"]["path"].as_str().unwrap());
        let procs = std::fs::read_to_string(usage.parent().unwrap().join("cgroup.procs")).unwrap();
        assert_eq!(
            procs.trim(),
            pids.trim(),
            "{name}: the process in the namespace is the one in the group"
        );
    }
    if budgets {
        assert_eq!(up.host("web0")["cpu_budget"], 0.5);
        assert_eq!(up.host("sqlsvc")["cpu_budget"], 1.0);
    }
    assert!(up.host("lb")["cpu_budget"].is_null());

    // Served through the printed URL: a write, then a read.
    let (status, body) = curlish(
        "POST",
        &format!("{}/pastes/", up.url),
        Some(r#"{"text": "hello from an emulated cluster"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let paste_id = created["paste_id"].as_str().unwrap();
    let (status, body) = curlish("GET", &format!("{}/pastes/{paste_id}", up.url), None).await;
    assert_eq!(status, 200, "{body}");
    let got: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(got["text"], "hello from an emulated cluster");
    // The balancer's list holds the webservers' own addresses, and each answers
    // there (on its host's address, reached over the bridge).
    let backends = std::fs::read_to_string(dir.path().join("data/lb-backends.txt")).unwrap();
    let backends: Vec<&str> = backends
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(backends.len(), 2, "{backends:?}");
    for (web, backend) in ["web0", "web1"].iter().zip(&backends) {
        let host_addr = up.host(web)["addr"].as_str().unwrap();
        assert!(backend.starts_with(&format!("{host_addr}:")), "{backend}");
        let (status, body) = curlish("GET", &format!("http://{backend}/healthz"), None).await;
        assert_eq!(status, 200, "{body}");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["addr"], *backend, "{body}");
    }
    // Requests through the printed URL reach both.
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the balancer reached only {seen:?}"
        );
        let (status, body) = curlish("GET", &format!("{}/healthz", up.url), None).await;
        assert_eq!(status, 200, "{body}");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        seen.insert(health["instance"].to_string());
    }

    // A clean stop removes everything.
    assert!(!leftovers(&id).is_empty());
    up.stop().await;
    assert_gone(&id).await;
    assert!(!dir.path().join("data/emulated-hosts.json").exists());
}

#[tokio::test]
async fn a_killed_launchers_hosts_are_removed_by_the_next_start() {
    if !can_run("a_killed_launchers_hosts_are_removed_by_the_next_start") {
        return;
    }
    let first_dir = tempfile::tempdir().unwrap();
    let extra: &[&str] = if cpu_budgets_available() {
        &["--host-cpu", "web=1"]
    } else {
        &[]
    };
    let mut first = Emulated::start(first_dir.path(), 1, extra).await;
    let first_id = first.id();
    first.child.kill().await.unwrap(); // SIGKILL, and reaped
    assert!(
        !leftovers(&first_id).is_empty(),
        "a killed launcher cannot have removed its hosts"
    );

    let second_dir = tempfile::tempdir().unwrap();
    let second = Emulated::start(second_dir.path(), 1, &[]).await;
    let second_id = second.id();
    assert_ne!(first_id, second_id);
    // The second start swept the first run before claiming its own.
    let left = leftovers(&first_id);
    assert!(left.is_empty(), "left by the killed launcher: {left:?}");
    let (status, body) = curlish("GET", &format!("{}/pastes", second.url), None).await;
    assert_eq!(status, 200, "{body}");
    second.stop().await;
    assert_gone(&second_id).await;
}

#[tokio::test]
async fn without_root_it_refuses_at_once_with_exit_code_2() {
    if !nix::unistd::geteuid().is_root() {
        // Already unprivileged: run it as is.
        let out = StdCommand::new(env!("CARGO_BIN_EXE_pastebin"))
            .args(["up", "--emulate-hosts"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1);
    // As root: the same binary as user nobody.
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(env!("CARGO_BIN_EXE_pastebin"))
            .arg("--config")
            .arg(&config)
            .args(["up", "--emulate-hosts"])
            .uid(65534)
            .gid(65534)
            .output(),
    )
    .await
    .expect("did not exit at once")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--emulate-hosts needs root"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "it did nothing");
}
