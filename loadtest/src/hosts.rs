//! CPU use of each emulated host over the measured window (from the cgroup files that
//! `pastebin up --emulate-hosts` lists in its data directory), and of this generator
//! (from getrusage), so a sweep shows which host saturates.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A host at or above this share of its budget counts as saturated.
pub const SATURATED: f64 = 0.9;

/// One host, as `pastebin up` describes it in `emulated-hosts.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Host {
    pub name: String,
    pub role: String,
    pub addr: String,
    pub cpu_budget: Option<f64>,
    pub cpu_usage: Option<UsageSource>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UsageSource {
    pub path: PathBuf,
    /// `cpuacct.usage` (nanoseconds) or `cpu.stat` (`usage_usec N`).
    pub format: String,
}

#[derive(Debug, Deserialize)]
struct HostsFile {
    hosts: Vec<Host>,
    /// The cores of the hosts other than the webservers', when the launcher splits
    /// the machine's cores between them: where a load generator belongs.
    #[serde(default)]
    other_cpus: Option<String>,
}

/// Reads the hosts of a running launcher, and the cores a load generator should use
/// (none: the launcher does not split the cores).
pub fn read(path: &Path) -> Result<(Vec<Host>, Option<Vec<usize>>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let file: HostsFile = serde_json::from_str(&text)
        .map_err(|err| format!("cannot parse {}: {err}", path.display()))?;
    let cpus = match file.other_cpus {
        Some(list) => Some(
            list.split(',')
                .map(|c| c.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    format!("{}: other_cpus {list:?} is not a CPU list", path.display())
                })?,
        ),
        None => None,
    };
    Ok((file.hosts, cpus))
}

/// Pins every thread of this process (and so the threads they start later) to
/// `cpus`.
pub fn pin_process(cpus: &[usize]) -> Result<(), String> {
    let mut set = nix::sched::CpuSet::new();
    for &cpu in cpus {
        set.set(cpu).map_err(|err| format!("CPU {cpu}: {err}"))?;
    }
    let tasks = std::fs::read_dir("/proc/self/task")
        .map_err(|err| format!("cannot list this process's threads: {err}"))?;
    for task in tasks {
        let tid = task
            .ok()
            .and_then(|t| t.file_name().to_str()?.parse::<i32>().ok())
            .ok_or("cannot read this process's threads")?;
        match nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set) {
            // A thread that ended since the listing.
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(err) => return Err(format!("cannot pin thread {tid}: {err}")),
        }
    }
    Ok(())
}

/// CPU times at one instant: each host's (same order as the hosts), and this
/// process's.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    hosts: Vec<Option<Duration>>,
    generator: Option<Duration>,
}

/// Samples every host's and this process's CPU time now.
pub fn sample(hosts: &[Host]) -> Sample {
    Sample {
        at: Instant::now(),
        hosts: hosts
            .iter()
            .map(|h| h.cpu_usage.as_ref().and_then(read_usage))
            .collect(),
        generator: own_cpu(),
    }
}

/// One host's CPU use over a window, in cores.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CpuUse {
    pub name: String,
    /// lb, web, sqlsvc, nosqlsvc, or generator (this load generator).
    pub role: String,
    /// The host's budget in cores (none: unlimited).
    pub budget: Option<f64>,
    /// Cores used on average over the window.
    pub cores: f64,
}

impl CpuUse {
    /// Share of the budget used, when there is one.
    pub fn of_budget(&self) -> Option<f64> {
        self.budget.map(|b| self.cores / b)
    }

    pub fn saturated(&self) -> bool {
        self.of_budget().is_some_and(|s| s >= SATURATED)
    }
}

/// CPU use between two samples of the same hosts; hosts that could not be read
/// are left out.
pub fn between(hosts: &[Host], a: &Sample, b: &Sample) -> Vec<CpuUse> {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let cores = |x: Option<Duration>, y: Option<Duration>| match (x, y) {
        (Some(x), Some(y)) => Some(y.saturating_sub(x).as_secs_f64() / secs),
        _ => None,
    };
    let mut uses: Vec<CpuUse> = hosts
        .iter()
        .zip(a.hosts.iter().zip(&b.hosts))
        .filter_map(|(h, (x, y))| {
            Some(CpuUse {
                name: h.name.clone(),
                role: h.role.clone(),
                budget: h.cpu_budget,
                cores: cores(*x, *y)?,
            })
        })
        .collect();
    if let Some(cores) = cores(a.generator, b.generator) {
        uses.push(CpuUse {
            name: "loadtest".into(),
            role: "generator".into(),
            budget: None,
            cores,
        });
    }
    uses
}

fn read_usage(source: &UsageSource) -> Option<Duration> {
    parse_usage(&source.format, &std::fs::read_to_string(&source.path).ok()?)
}

fn parse_usage(format: &str, text: &str) -> Option<Duration> {
    match format {
        "cpuacct.usage" => text.trim().parse().ok().map(Duration::from_nanos),
        "cpu.stat" => text.lines().find_map(|line| {
            let value = line.strip_prefix("usage_usec ")?;
            value.trim().parse().ok().map(Duration::from_micros)
        }),
        _ => None,
    }
}

/// User + system CPU time of this process so far.
fn own_cpu() -> Option<Duration> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let micros = |t: nix::sys::time::TimeVal| -> Option<u64> {
        Some(u64::try_from(t.tv_sec()).ok()? * 1_000_000 + u64::try_from(t.tv_usec()).ok()?)
    };
    let total = micros(usage.user_time())? + micros(usage.system_time())?;
    Some(Duration::from_micros(total))
}

/// `lb 0.81 | web0 0.25/0.25* ...`: one line for a report.
pub fn summary(uses: &[CpuUse]) -> String {
    uses.iter()
        .map(|u| match u.budget {
            Some(b) => format!(
                "{} {:.2}/{b}{}",
                u.name,
                u.cores,
                if u.saturated() { "*" } else { "" }
            ),
            None => format!("{} {:.2}", u.name, u.cores),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_file_names_the_generators_cores_when_the_launcher_split_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("emulated-hosts.json");
        let host = r#"{"name": "lb", "role": "lb", "addr": "198.18.0.2", "cpu_budget": null, "cpu_usage": null}"#;
        std::fs::write(
            &path,
            format!(r#"{{"hosts": [{host}], "other_cpus": "0,2"}}"#),
        )
        .unwrap();
        let (hosts, cpus) = read(&path).unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(cpus, Some(vec![0, 2]));
        std::fs::write(
            &path,
            format!(r#"{{"hosts": [{host}], "other_cpus": null}}"#),
        )
        .unwrap();
        assert_eq!(read(&path).unwrap().1, None);
        std::fs::write(
            &path,
            format!(r#"{{"hosts": [{host}], "other_cpus": "0-x"}}"#),
        )
        .unwrap();
        assert!(read(&path).is_err());
    }

    #[test]
    fn usage_files_parse() {
        assert_eq!(
            parse_usage("cpuacct.usage", "1500000000\n"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_usage(
                "cpu.stat",
                "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"
            ),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_usage("cpu.stat", "nr_periods 3\n"), None);
        assert_eq!(parse_usage("other", "1"), None);
    }

    #[test]
    fn use_is_cores_over_the_window_and_saturation_is_against_the_budget() {
        let hosts = vec![
            Host {
                name: "web0".into(),
                role: "web".into(),
                addr: "198.18.0.10".into(),
                cpu_budget: Some(0.25),
                cpu_usage: None,
            },
            Host {
                name: "lb".into(),
                role: "lb".into(),
                addr: "198.18.0.2".into(),
                cpu_budget: None,
                cpu_usage: None,
            },
        ];
        let t = Instant::now();
        let a = Sample {
            at: t,
            hosts: vec![Some(Duration::from_secs(1)), Some(Duration::ZERO)],
            generator: None,
        };
        let b = Sample {
            at: t + Duration::from_secs(4),
            hosts: vec![Some(Duration::from_secs(2)), None],
            generator: None,
        };
        let uses = between(&hosts, &a, &b);
        assert_eq!(uses.len(), 1, "an unreadable host is left out");
        assert_eq!(uses[0].cores, 0.25);
        assert!(uses[0].saturated());
        assert_eq!(summary(&uses), "web0 0.25/0.25*");
    }

    #[test]
    fn own_cpu_grows() {
        let a = own_cpu().unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(own_cpu().unwrap() > a);
    }
}
