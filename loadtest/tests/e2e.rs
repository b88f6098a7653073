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
            panic!("loadtest did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    eprintln!("{out}\n(took {:?})", started.elapsed());
    assert!(status.success(), "{status}");
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
