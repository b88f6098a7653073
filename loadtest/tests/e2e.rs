//! End to end: the `loadtest` binary launches real stacks (`pastebin up`, 1 then 2
//! webservers), loads them briefly with every check on, and writes JSON, CSV and SVG.
//! In a test binary of its own: its two stacks under load must not disturb the
//! generator tests' clocks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// `target/<profile>/pastebin`, built on demand if the workspace has not built it yet.
fn pastebin_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test exe>
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let bin = profile_dir.join("pastebin");
    if bin.is_file() {
        return bin;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build", "-p", "pastebin", "--bin", "pastebin"];
    if profile_dir.ends_with("release") {
        args.push("--release");
    }
    eprintln!(
        "{} is missing; running `cargo {}`",
        bin.display(),
        args.join(" ")
    );
    let status = Command::new(cargo)
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cannot run cargo to build the pastebin binary");
    assert!(status.success(), "building the pastebin binary failed");
    assert!(
        bin.is_file(),
        "cargo built pastebin, but not at {}",
        bin.display()
    );
    bin
}

#[test]
fn a_sweep_over_spawned_stacks_passes_every_check() {
    let bin = pastebin_binary();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let csv = dir.path().join("out.csv");
    let svg = dir.path().join("out.svg");
    // Its logs (and those of the stacks it starts) are shown only if the test fails.
    let stderr_path = dir.path().join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let logs = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let started = Instant::now();
    // The stacks' temporary directories go inside this test's, so they are removed
    // with it even if loadtest has to be killed.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .env("TMPDIR", &tmp)
        .args([
            "--spawn",
            "--webservers",
            "1,2",
            "-c",
            "8",
            "-d",
            "1500ms",
            "-w",
            "500ms",
        ])
        .args([
            "--verify-ratio",
            "1",
            "--list-share",
            "0.05",
            "--keys",
            "zipf",
            "--no-progress",
        ])
        .arg("--pastebin-bin")
        .arg(&bin)
        .arg("--json")
        .arg(&json)
        .arg("--csv")
        .arg(&csv)
        .arg("--svg")
        .arg(&svg)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    // Bounded: two stacks of about 2 s of load each, plus start and stop; generous
    // for a busy machine.
    let limit = Duration::from_secs(300);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            // loadtest, and the `pastebin up` it started in a process group of its
            // own with that group's children.
            testkit::procs::kill_tree(child.id());
            let _ = child.wait();
            panic!(
                "loadtest did not finish within {limit:?}; its stderr:\n{}",
                logs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    eprintln!("{out}\n(took {:?})", started.elapsed());
    assert!(status.success(), "{status}; its stderr:\n{}", logs());
    assert!(out.contains("webservers"), "sweep table missing:\n{out}");

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let sweep = v["sweep"].as_array().unwrap();
    assert_eq!(sweep.len(), 2);
    for (run, n) in sweep.iter().zip([1, 2]) {
        assert_eq!(run["webservers"], n);
        assert_eq!(run["errors"]["total"], 0, "{run:#}");
        // A figure, not a check: only that it is reported.
        assert!(
            run["requests_per_second"].as_f64().unwrap() > 0.0,
            "{run:#}"
        );
        assert!(run["by_kind"]["write"]["requests"].as_u64().unwrap() > 0);
        assert!(run["by_kind"]["read"]["requests"].as_u64().unwrap() > 0);
        assert!(run["verified_reads"].as_u64().unwrap() > 0);
        for p in ["p50", "p90", "p99", "p999", "max"] {
            assert!(run["latency_ms"][p].as_f64().unwrap() > 0.0, "{p}");
        }
        assert!(run["machine"]["cores"].as_u64().unwrap() >= 1);
        assert_eq!(run["params"]["connections"], 8);
    }
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("1,closed,8,"));
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline") && svg.trim_end().ends_with("</svg>")
    );
}

/// False (after a loud line) when emulated hosts cannot run here; panics under CI.
fn can_emulate(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if root && ip {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{test}: emulated hosts need root and iproute2, and CI=true: this test must run in CI"
    );
    eprintln!("******** SKIPPED {test}: emulated hosts need root and iproute2 ********");
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

#[test]
fn an_emulated_sweep_reports_each_hosts_cpu() {
    if !can_emulate("an_emulated_sweep_reports_each_hosts_cpu") {
        return;
    }
    let bin = pastebin_binary();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let csv = dir.path().join("out.csv");
    let budgets = cpu_budgets_available();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadtest"));
    cmd.args(["--spawn", "--emulate-hosts"]);
    if budgets {
        cmd.args(["--web-cpu", "0.5", "--host-cpu", "lb=1"]);
    }
    let mut child = cmd
        .args(["--webservers", "1,2"])
        .args(["-c", "8", "-d", "1500ms", "-w", "500ms", "--no-progress"])
        .arg("--pastebin-bin")
        .arg(&bin)
        .arg("--json")
        .arg(&json)
        .arg("--csv")
        .arg(&csv)
        .arg("--svg")
        .arg(dir.path().join("out.svg"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("loadtest did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    eprintln!("{out}");
    assert!(status.success(), "{status}");
    assert!(out.contains("web cpu"), "no CPU columns:\n{out}");

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for (run, n) in v["sweep"].as_array().unwrap().iter().zip([1usize, 2]) {
        assert_eq!(run["errors"]["total"], 0, "{run:#}");
        assert_eq!(run["emulated_hosts"], true);
        // The URL is the lb host's address in 198.18.0.0/15, not loopback.
        let target = run["target"].as_str().unwrap();
        assert!(
            target.starts_with("http://198.18.") || target.starts_with("http://198.19."),
            "{target}"
        );
        let cpu = run["hosts_cpu"].as_array().unwrap();
        let names: Vec<&str> = cpu.iter().map(|h| h["name"].as_str().unwrap()).collect();
        for name in ["lb", "sqlsvc", "nosqlsvc", "loadtest"] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        let webs: Vec<&serde_json::Value> = cpu.iter().filter(|h| h["role"] == "web").collect();
        assert_eq!(webs.len(), n, "{cpu:?}");
        for host in cpu {
            // Every host served or generated load in the window.
            assert!(host["cores"].as_f64().unwrap() > 0.0, "{host}");
        }
        if budgets {
            assert!(webs.iter().all(|w| w["budget"] == 0.5));
            let lb = cpu.iter().find(|h| h["name"] == "lb").unwrap();
            assert_eq!(lb["budget"], 1.0);
        }
    }
    let csv = std::fs::read_to_string(&csv).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(header.len(), row.len(), "{csv}");
    let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(col("emulated_hosts"), "true");
    if budgets {
        assert_eq!(col("web_cpu_budget"), "0.5");
    }
    assert!(col("web_cpu_max").parse::<f64>().unwrap() > 0.0, "{csv}");
}
