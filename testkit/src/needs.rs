//! What a test needs from the machine, checked in one place. A test that cannot run
//! without something (root for emulated hosts, a MongoDB server) is `#[ignore]`d
//! with the reason, so `cargo test` lists it as ignored, never as passed;
//! `scripts/test.sh` runs it with `--ignored` when the machine has what it needs
//! (and under `CI=true` fails when it does not). Asked to run without it, the test
//! fails, naming what is missing. A part of a test that is left out (CPU budgets
//! without the cgroup controller) says so on the real stderr, past the harness's
//! capture, and under `CI=true` fails instead.

use std::io::Write;

/// Whether this is CI (`CI=true`), where nothing may be skipped.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A line on the process's real stderr: shown even for a passing test.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// For a test of emulated hosts: panics, naming what is missing, unless this runs as
/// root with iproute2's `ip`.
pub fn emulated_hosts(test: &str) {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let ip = std::process::Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = match (root, ip) {
        (true, true) => return,
        (false, _) => "root",
        (true, false) => "iproute2's `ip`",
    };
    panic!(
        "{test} needs {missing} (emulated hosts make network namespaces and cgroups); \
         it is #[ignore]d, and scripts/test.sh runs it only where it can run"
    );
}

/// Whether this machine's cgroups can enforce CPU budgets (v1's `cpu` controller, or
/// v2 with `cpu` among its controllers). Without them the budgets are left out of a
/// test, loudly; under `CI=true` that is a failure.
pub fn cpu_budgets(test: &str) -> bool {
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
        assert!(
            !ci(),
            "{test}: no cgroup cpu controller, and CI=true: CPU budgets must be tested in CI"
        );
        say(&format!(
            "******** {test}: no cgroup cpu controller here: CPU budgets NOT tested ********"
        ));
    }
    available
}
