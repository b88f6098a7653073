//! CPU budgets and CPU accounting for emulated hosts, through cgroups: v1's `cpu`
//! controller (`cpu.cfs_quota_us` / `cpu.cfs_period_us`, usage from `cpuacct.usage`)
//! or v2's `cpu.max` (usage from `cpu.stat`), whichever the machine mounts.
//!
//! One directory per run (`pastebin-<id>`) holds one directory per host, so that a
//! run's groups are removed together and never mixed with another run's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The CFS period used for budgets (the kernel's default): 100 ms.
const PERIOD_US: u64 = 100_000;

/// Which cgroup interface the machine offers for CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    /// cgroup v1: the `cpu` hierarchy (budgets) and the `cpuacct` one (usage); they
    /// may be the same mount (`cpu,cpuacct`) or two.
    V1 { cpu: PathBuf, cpuacct: PathBuf },
    /// cgroup v2 (the unified hierarchy); `cpu_controller` says whether budgets can
    /// be set (`cpu.stat`'s usage is there either way).
    V2 { root: PathBuf, cpu_controller: bool },
}

impl Flavor {
    /// Reads `/proc/self/mountinfo`: v1's `cpu` controller if mounted, else a v2
    /// hierarchy, else none.
    pub fn detect() -> Option<Flavor> {
        let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let flavor = from_mountinfo(&text)?;
        Some(match flavor {
            Flavor::V2 { root, .. } => {
                let controllers =
                    std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
                Flavor::V2 {
                    cpu_controller: controllers.split_whitespace().any(|c| c == "cpu"),
                    root,
                }
            }
            v1 => v1,
        })
    }

    /// Whether CPU budgets can be enforced.
    pub fn can_limit(&self) -> bool {
        match self {
            Flavor::V1 { .. } => true,
            Flavor::V2 { cpu_controller, .. } => *cpu_controller,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Flavor::V1 { cpu, cpuacct } => format!(
                "cgroup v1 (cpu at {}, cpuacct at {})",
                cpu.display(),
                cpuacct.display()
            ),
            Flavor::V2 {
                root,
                cpu_controller,
            } => format!(
                "cgroup v2 at {}{}",
                root.display(),
                if *cpu_controller {
                    ""
                } else {
                    " (no cpu controller: usage only)"
                }
            ),
        }
    }

    /// The hierarchy roots a run's directory is made in (one or two).
    fn roots(&self) -> Vec<PathBuf> {
        match self {
            Flavor::V1 { cpu, cpuacct } if cpu == cpuacct => vec![cpu.clone()],
            Flavor::V1 { cpu, cpuacct } => vec![cpu.clone(), cpuacct.clone()],
            Flavor::V2 { root, .. } => vec![root.clone()],
        }
    }
}

/// The CPU flavor described by a mountinfo text (see proc(5)).
fn from_mountinfo(text: &str) -> Option<Flavor> {
    let mut cpu = None;
    let mut cpuacct = None;
    let mut v2 = None;
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split(' ').nth(4) else {
            continue;
        };
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or_default();
        let options = right.nth(1).unwrap_or_default();
        let path = PathBuf::from(mount_point);
        match fstype {
            "cgroup" => {
                for option in options.split(',') {
                    match option {
                        "cpu" => cpu = Some(path.clone()),
                        "cpuacct" => cpuacct = Some(path.clone()),
                        _ => {}
                    }
                }
            }
            "cgroup2" => v2 = v2.or(Some(path)),
            _ => {}
        }
    }
    match (cpu, cpuacct, v2) {
        (Some(cpu), Some(cpuacct), _) => Some(Flavor::V1 { cpu, cpuacct }),
        (_, _, Some(root)) => Some(Flavor::V2 {
            root,
            cpu_controller: false,
        }),
        _ => None,
    }
}

/// The directory name of run `id`'s groups.
pub fn run_dir_name(id: &str) -> String {
    format!("pastebin-{id}")
}

/// A run's cgroup directory, holding one group per host.
#[derive(Debug)]
pub struct RunGroup {
    flavor: Flavor,
    name: String,
    /// Host groups made so far.
    hosts: std::cell::Cell<u64>,
}

/// How a host's CPU usage is read, for reports.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UsageSource {
    /// The file to read.
    pub path: PathBuf,
    /// `cpuacct.usage` (one number, nanoseconds) or `cpu.stat` (`usage_usec N`).
    pub format: &'static str,
}

/// One host's group.
#[derive(Debug, Clone)]
pub struct HostGroup {
    /// Where a pid is written to put the process in the group (`cgroup.procs`, once
    /// per hierarchy).
    pub procs: Vec<PathBuf>,
    pub usage: UsageSource,
}

impl RunGroup {
    /// Makes `pastebin-<id>` in each hierarchy (v2: with the cpu controller enabled
    /// for its children, when there is one).
    pub fn create(flavor: Flavor, id: &str) -> Result<RunGroup, String> {
        let name = run_dir_name(id);
        if let Flavor::V2 {
            root,
            cpu_controller: true,
        } = &flavor
        {
            enable_cpu(root)?;
        }
        for root in flavor.roots() {
            let dir = root.join(&name);
            std::fs::create_dir(&dir)
                .map_err(|err| format!("cannot create cgroup {}: {err}", dir.display()))?;
        }
        if let Flavor::V2 {
            root,
            cpu_controller: true,
        } = &flavor
        {
            enable_cpu(&root.join(&name))?;
        }
        Ok(RunGroup {
            flavor,
            name,
            hosts: std::cell::Cell::new(0),
        })
    }

    /// Makes the group of host `host`, with a budget of `cores` when given.
    pub fn host(&self, host: &str, cores: Option<f64>) -> Result<HostGroup, String> {
        let mut procs = Vec::new();
        for root in self.flavor.roots() {
            let dir = root.join(&self.name).join(host);
            std::fs::create_dir(&dir)
                .map_err(|err| format!("cannot create cgroup {}: {err}", dir.display()))?;
            procs.push(dir.join("cgroup.procs"));
        }
        // The run's group competes with the machine's other processes as one: give
        // it one process's weight per host, so that a host is not worth a fraction
        // of a process just for being grouped (the kernel's defaults: 1024 shares
        // on v1, weight 100 on v2).
        self.hosts.set(self.hosts.get() + 1);
        let n = self.hosts.get();
        match &self.flavor {
            Flavor::V1 { cpu, .. } => write(
                &cpu.join(&self.name).join("cpu.shares"),
                &(1024 * n).min(262_144).to_string(),
            )?,
            Flavor::V2 {
                root,
                cpu_controller: true,
            } => write(
                &root.join(&self.name).join("cpu.weight"),
                &(100 * n).min(10_000).to_string(),
            )?,
            Flavor::V2 { .. } => {}
        }
        let quota = cores.map(quota_us);
        let usage = match &self.flavor {
            Flavor::V1 { cpu, cpuacct } => {
                if let Some(quota) = quota {
                    let dir = cpu.join(&self.name).join(host);
                    write(&dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                    write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
                UsageSource {
                    path: cpuacct.join(&self.name).join(host).join("cpuacct.usage"),
                    format: "cpuacct.usage",
                }
            }
            Flavor::V2 {
                root,
                cpu_controller,
            } => {
                let dir = root.join(&self.name).join(host);
                if let Some(quota) = quota {
                    if !cpu_controller {
                        return Err(format!(
                            "cgroup v2 at {} has no cpu controller: CPU budgets cannot be set",
                            root.display()
                        ));
                    }
                    write(&dir.join("cpu.max"), &format!("{quota} {PERIOD_US}"))?;
                }
                UsageSource {
                    path: dir.join("cpu.stat"),
                    format: "cpu.stat",
                }
            }
        };
        Ok(HostGroup { procs, usage })
    }
}

impl HostGroup {
    /// Moves process `pid` (all its threads) into the group.
    pub fn enter(&self, pid: u32) -> Result<(), String> {
        for procs in &self.procs {
            write(procs, &pid.to_string())?;
        }
        Ok(())
    }
}

/// The CFS quota for `cores` in each period (at least the kernel's 1 ms minimum).
fn quota_us(cores: f64) -> u64 {
    ((cores * PERIOD_US as f64).round() as u64).max(1000)
}

fn enable_cpu(dir: &Path) -> Result<(), String> {
    write(&dir.join("cgroup.subtree_control"), "+cpu")
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value)
        .map_err(|err| format!("cannot write {value} to {}: {err}", path.display()))
}

/// Everything run `id` made in any hierarchy `flavor` has: the pids still inside,
/// (which the caller stops) and the directories, removed children first.
pub fn leftovers(flavor: &Flavor, id: &str) -> (Vec<u32>, Vec<PathBuf>) {
    let name = run_dir_name(id);
    let mut pids = Vec::new();
    let mut dirs = Vec::new();
    for root in flavor.roots() {
        let run = root.join(&name);
        let Ok(entries) = std::fs::read_dir(&run) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pids.extend(read_pids(&path.join("cgroup.procs")));
                dirs.push(path);
            }
        }
        pids.extend(read_pids(&run.join("cgroup.procs")));
        dirs.push(run);
    }
    pids.sort_unstable();
    pids.dedup();
    (pids, dirs)
}

fn read_pids(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The ids of runs with a directory in some hierarchy.
pub fn run_ids(flavor: &Flavor) -> Vec<String> {
    let mut ids = Vec::new();
    for root in flavor.roots() {
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("pastebin-"))
            {
                ids.push(id.to_owned());
            }
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

/// Removes `dirs` (children before parents, as `leftovers` lists them), retrying
/// while the kernel still counts exiting processes in them.
pub fn remove_dirs(dirs: &[PathBuf], within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    for dir in dirs {
        loop {
            match std::fs::remove_dir(dir) {
                Ok(()) => break,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => break,
                Err(err) if Instant::now() >= deadline => {
                    return Err(format!("cannot remove cgroup {}: {err}", dir.display()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_cpu_is_preferred_and_split_mounts_are_found() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(
            from_mountinfo(text),
            Some(Flavor::V1 {
                cpu: "/sys/fs/cgroup/cpu".into(),
                cpuacct: "/sys/fs/cgroup/cpuacct".into()
            })
        );
        let comounted =
            "25 20 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n";
        let Some(Flavor::V1 { cpu, cpuacct }) = from_mountinfo(comounted) else {
            panic!("not v1")
        };
        assert_eq!(cpu, cpuacct);
    }

    #[test]
    fn pure_v2_and_nothing() {
        let text = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            from_mountinfo(text),
            Some(Flavor::V2 {
                root: "/sys/fs/cgroup".into(),
                cpu_controller: false
            })
        );
        assert_eq!(from_mountinfo("1 2 0:1 / / rw - ext4 /dev/sda1 rw\n"), None);
    }

    #[test]
    fn quotas_are_in_microseconds_per_period() {
        assert_eq!(quota_us(0.25), 25_000);
        assert_eq!(quota_us(2.0), 200_000);
        assert_eq!(quota_us(0.001), 1000);
    }
}
