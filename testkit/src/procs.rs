//! Processes seen through `/proc` (Linux): a process's children, and whether a
//! process still runs (a zombie does not).

/// `(pid, command line)` of every process whose parent is `parent`.
pub fn children(parent: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        panic!("/proc is needed to find child processes");
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if stat(pid).is_some_and(|(_, ppid)| ppid == parent) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .split('\0')
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            out.push((pid, cmdline.trim().to_owned()));
        }
    }
    out
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// State letter and parent pid from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Sends `signal` (e.g. `"KILL"`, `"INT"`) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Sends `signal` to `pid`; a process already gone is not an error.
pub fn signal_quietly(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Sends `signal` to every process of process group `pgid` with kill(1); a group
/// already gone is not an error.
pub fn signal_group(pgid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stderr(std::process::Stdio::null())
        .status();
}

/// Kills `pid` and, first, every process group its children lead (a child started
/// in a group of its own, such as a launcher, takes its whole tree with it): for a
/// test that gives up on a process, so nothing it started outlives the test.
pub fn kill_tree(pid: u32) {
    for (child, _) in children(pid) {
        signal_group(child, "KILL");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &child.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
}

/// A Linux CPU list (`0-2,5`) as numbers, ascending.
pub fn cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',') {
        let number = |n: &str| {
            n.trim()
                .parse::<usize>()
                .unwrap_or_else(|_| panic!("{text:?} is not a CPU list"))
        };
        match part.split_once('-') {
            Some((lo, hi)) => cpus.extend(number(lo)..=number(hi)),
            None => cpus.push(number(part)),
        }
    }
    cpus.sort_unstable();
    cpus
}

/// The CPUs a process (or thread) may run on, from `/proc/PID/status`.
pub fn cpus_allowed(pid: u32) -> Vec<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|err| panic!("/proc/{pid}/status: {err}"));
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or_else(|| panic!("no Cpus_allowed_list for {pid}"));
    cpu_list(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_its_own_child_and_its_end() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id();
        // Until it has exec'd, the child's command line is its parent's or empty.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !children(std::process::id())
            .iter()
            .any(|(p, cmd)| *p == pid && cmd.starts_with("sleep"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                children(std::process::id())
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(alive(pid));
        signal(pid, "KILL");
        child.wait().unwrap();
        assert!(!alive(pid));
    }
}
