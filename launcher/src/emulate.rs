//! Emulated hosts (`pastebin up --emulate-hosts`): every component on a host of its
//! own, that is its own network namespace with its own address on a bridge, and
//! optionally its own CPU budget (a cgroup), so that one machine behaves like a small
//! cluster whose parts talk over addresses, never over loopback.
//!
//! Each run claims an id `000`..`1ff`, which is also its subnet: run n owns
//! 198.18.0.0/15's n-th /24 (the range RFC 2544 reserves for benchmark networks). The
//! bridge (`pastebin-<id>-br`, .1) lives in this namespace, so the balancer's address
//! is reachable from the machine itself. Hosts: lb .2, sqlsvc .3, nosqlsvc .4,
//! webserver i .(10 + i); namespaces `pastebin-<id>-<host>`, veths `pastebin-<id>-<octet>`,
//! cgroups `pastebin-<id>/<host>`.
//!
//! The claim is a file `/run/pastebin-emulate/<id>.json` naming the launcher (pid and
//! start time). Every start first removes the objects of runs whose launcher is gone
//! (a `kill -9`), found by that file or, for anything left without one, by name.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::Kind;
use crate::cgroup::{self, Flavor, HostGroup, RunGroup, UsageSource};
use crate::config::{CpuList, HostCpu};
use crate::netns;

/// Where runs record themselves (a tmpfs: namespaces do not outlive a reboot either).
pub const STATE_DIR: &str = "/run/pastebin-emulate";
/// The file in the data directory that describes the hosts of a running launcher.
pub const HOSTS_FILE: &str = "emulated-hosts.json";
/// Run ids, one /24 of 198.18.0.0/15 each.
const RUNS: u32 = 512;
/// 198.18.0.0
const BASE: u32 = (198 << 24) | (18 << 16);
/// How long leftover processes of a dead launcher get to exit after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

/// Whether this process runs as root (needed for namespaces and cgroups).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// One emulated host.
#[derive(Debug, Clone)]
pub struct Host {
    /// `lb`, `sqlsvc`, `nosqlsvc`, `web0`, `web1`...
    pub name: String,
    pub kind: Kind,
    pub addr: Ipv4Addr,
    pub netns: String,
    pub cpu_budget: Option<f64>,
    pub group: Option<HostGroup>,
    /// The CPUs it runs on, if the run splits the machine's cores (a webserver's
    /// host: its share of the webservers' cores, chosen by the launcher).
    pub cpus: Option<CpuList>,
}

/// Which of the machine's cores the emulated hosts run on: the webservers' hosts and
/// the balancer's on `web`, the stores' (and a load generator, which reads them from
/// the hosts file) on `other`, so the webservers do not share cores and caches with
/// what they call or what loads them. The balancer sits with the webservers because
/// every request crosses between them twice, and a wake-up across cores is where a
/// VM can charge a host far more CPU than a network hop costs a real one: on the
/// 2-vCPU machine of BENCHMARKS.md (halt polling off), waking a task that sleeps on
/// the other core cost about 28 µs of CPU, split between waker and wakee, against
/// about 1.5 µs on the same core. Its CPU use is its own host's, as before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSplit {
    pub web: Vec<usize>,
    pub other: Vec<usize>,
}

impl CpuSplit {
    /// The upper half of `allowed` for the webservers and the balancer, the lower
    /// half for the stores (2 cores: 1 and 0); None with fewer than 2 CPUs.
    pub fn of(allowed: &[usize]) -> Option<CpuSplit> {
        if allowed.len() < 2 {
            return None;
        }
        let (other, web) = allowed.split_at(allowed.len() / 2);
        Some(CpuSplit {
            web: web.to_vec(),
            other: other.to_vec(),
        })
    }
}

/// A CPU list as Linux writes it (`0,1,3`), in [`CpuList`]'s one spelling.
fn cpu_list(cpus: &[usize]) -> String {
    CpuList::new(cpus.to_vec()).map_or_else(String::new, |list| list.to_string())
}

impl Host {
    /// The address to listen on: this host's, with the port configured.
    pub fn listen(&self, configured: &str) -> String {
        let port = configured.rsplit_once(':').map_or("0", |(_, port)| port);
        format!("{}:{port}", self.addr)
    }

    /// The command that runs `exe` on this host.
    pub fn command(&self, exe: &Path) -> tokio::process::Command {
        netns::exec_in(&self.netns, exe)
    }

    /// Puts a just-spawned process into this host's CPU group.
    pub fn enter(&self, pid: u32) -> Result<(), String> {
        match &self.group {
            Some(group) => group.enter(pid),
            None => Ok(()),
        }
    }
}

/// The description written to the data directory for tools (loadtest) and people.
#[derive(Debug, Serialize)]
struct HostsFile<'a> {
    run_id: &'a str,
    bridge: String,
    gateway: String,
    cgroups: Option<String>,
    /// The cores of the webservers' and the balancer's hosts, and of the stores',
    /// when the run splits them (a load generator belongs on `other_cpus`).
    web_cpus: Option<String>,
    other_cpus: Option<String>,
    hosts: Vec<HostEntry<'a>>,
}

#[derive(Debug, Serialize)]
struct HostEntry<'a> {
    name: &'a str,
    role: &'static str,
    addr: String,
    netns: &'a str,
    cpu_budget: Option<f64>,
    cpu_usage: Option<&'a UsageSource>,
    cpus: Option<String>,
}

/// Who made a run, so that a later start can tell whether it is still alive.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Owner {
    pid: i32,
    start_time: u64,
}

/// A run's hosts and everything made for them; removed by `teardown` (or on drop).
pub struct Emulation {
    id: String,
    subnet: u32,
    budgets: HostCpu,
    split: Option<CpuSplit>,
    flavor: Option<Flavor>,
    cgroups: Option<RunGroup>,
    hosts: Vec<Host>,
    hosts_file: PathBuf,
    done: bool,
}

impl Emulation {
    /// Removes what dead runs left, claims a run id and makes the bridge (and the
    /// run's cgroup, when the machine has one).
    pub fn start(
        data_dir: &Path,
        budgets: HostCpu,
        split: Option<CpuSplit>,
    ) -> Result<Emulation, String> {
        if !is_root() {
            return Err("--emulate-hosts needs root".into());
        }
        netns::ip(&["-V"])?;
        std::fs::create_dir_all(STATE_DIR)
            .map_err(|err| format!("cannot create {STATE_DIR}: {err}"))?;
        // Sweeping and claiming under one lock: a sweep must not take a run that is
        // claiming its id for one without an owner.
        let lock = std::fs::File::create(Path::new(STATE_DIR).join("lock"))
            .map_err(|err| format!("cannot open {STATE_DIR}/lock: {err}"))?;
        let lock = Flock::lock(lock, FlockArg::LockExclusive)
            .map_err(|(_, err)| format!("cannot lock {STATE_DIR}/lock: {err}"))?;
        for (id, outcome) in sweep_stale() {
            match outcome {
                Ok(()) => {
                    tracing::warn!(run = %id, "removed the emulated hosts a dead launcher left")
                }
                Err(err) => {
                    tracing::error!(run = %id, %err, "cannot remove a dead launcher's emulated hosts")
                }
            }
        }
        let flavor = Flavor::detect();
        if budgets.any() && !flavor.as_ref().is_some_and(Flavor::can_limit) {
            return Err(format!(
                "--host-cpu needs cgroups with a cpu controller; this machine has {}",
                flavor
                    .as_ref()
                    .map_or("no cgroup hierarchy".to_owned(), Flavor::describe)
            ));
        }
        let subnet = claim()?;
        drop(lock);
        let id = format!("{subnet:03x}");
        let mut emulation = Emulation {
            id,
            subnet,
            budgets,
            split,
            flavor: flavor.clone(),
            cgroups: None,
            hosts: Vec::new(),
            hosts_file: data_dir.join(HOSTS_FILE),
            done: false,
        };
        // From here on, a failure drops `emulation`, which removes what was made.
        netns::add_bridge(&emulation.bridge(), &format!("{}/24", emulation.addr(1)))?;
        match flavor {
            Some(flavor) => emulation.cgroups = Some(RunGroup::create(flavor, &emulation.id)?),
            None => {
                tracing::warn!("no cgroup hierarchy found: hosts' CPU use will not be reported")
            }
        }
        tracing::info!(
            run = %emulation.id,
            bridge = %emulation.bridge(),
            gateway = %emulation.addr(1),
            cgroups = %emulation.flavor.as_ref().map_or("none".to_owned(), Flavor::describe),
            "emulated hosts: network ready"
        );
        emulation.write_hosts_file()?;
        Ok(emulation)
    }

    /// How the run splits the machine's cores, if it does.
    pub fn split(&self) -> Option<&CpuSplit> {
        self.split.as_ref()
    }

    /// Records where a host runs (for the hosts file).
    pub fn set_cpus(&mut self, name: &str, cpus: Option<CpuList>) -> Result<(), String> {
        if let Some(host) = self.hosts.iter_mut().find(|h| h.name == name) {
            host.cpus = cpus;
        }
        self.write_hosts_file()
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn bridge(&self) -> String {
        format!("{}-br", prefix(&self.id))
    }

    fn addr(&self, octet: u32) -> Ipv4Addr {
        Ipv4Addr::from(BASE + self.subnet * 256 + octet)
    }

    /// The host of component `kind` (webserver number `index`), made on first use.
    pub fn host(&mut self, kind: Kind, index: usize) -> Result<Host, String> {
        let (name, octet) = match kind {
            Kind::Lb => ("lb".to_owned(), 2),
            Kind::Sqlsvc => ("sqlsvc".to_owned(), 3),
            Kind::Nosqlsvc => ("nosqlsvc".to_owned(), 4),
            Kind::Web => (
                format!("web{index}"),
                10 + u32::try_from(index).map_err(|_| "too many webservers")?,
            ),
        };
        if let Some(host) = self.hosts.iter().find(|h| h.name == name) {
            return Ok(host.clone());
        }
        if octet > 250 {
            return Err(format!("no address left for emulated host {name}"));
        }
        let netns = format!("{}-{name}", prefix(&self.id));
        let veth = format!("{}-{octet:02}", prefix(&self.id));
        let addr = self.addr(octet);
        netns::add_host(&netns, &veth, &self.bridge(), &format!("{addr}/24"))?;
        let cpu_budget = self.budgets.of(kind);
        let group = match &self.cgroups {
            Some(run) => Some(run.host(&name, cpu_budget)?),
            None => None,
        };
        let cpus = match (&self.split, kind) {
            (Some(split), Kind::Lb) => CpuList::new(split.web.clone()),
            (Some(split), Kind::Sqlsvc | Kind::Nosqlsvc) => CpuList::new(split.other.clone()),
            _ => None,
        };
        let host = Host {
            name,
            kind,
            addr,
            netns,
            cpu_budget,
            group,
            cpus,
        };
        tracing::info!(host = %host.name, addr = %host.addr, netns = %host.netns, cpu = ?host.cpu_budget, "emulated host ready");
        self.hosts.push(host.clone());
        self.write_hosts_file()?;
        Ok(host)
    }

    fn write_hosts_file(&self) -> Result<(), String> {
        let file = HostsFile {
            run_id: &self.id,
            bridge: self.bridge(),
            gateway: self.addr(1).to_string(),
            cgroups: self.flavor.as_ref().map(Flavor::describe),
            web_cpus: self.split.as_ref().map(|s| cpu_list(&s.web)),
            other_cpus: self.split.as_ref().map(|s| cpu_list(&s.other)),
            hosts: self
                .hosts
                .iter()
                .map(|h| HostEntry {
                    name: &h.name,
                    role: h.kind.name(),
                    addr: h.addr.to_string(),
                    netns: &h.netns,
                    cpu_budget: h.cpu_budget,
                    cpu_usage: h.group.as_ref().map(|g| &g.usage),
                    cpus: h.cpus.as_ref().map(CpuList::to_string),
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&file).map_err(|err| err.to_string())?;
        let tmp = self.hosts_file.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.hosts_file))
            .map_err(|err| format!("cannot write {}: {err}", self.hosts_file.display()))
    }

    /// Removes every namespace, link and cgroup of this run, and its claim. The
    /// components must have been stopped; any process still inside is killed.
    pub fn teardown(&mut self) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        let _ = std::fs::remove_file(&self.hosts_file);
        remove_run(&self.id, self.flavor.as_ref())
    }
}

impl Drop for Emulation {
    fn drop(&mut self) {
        if let Err(err) = self.teardown() {
            tracing::error!(run = %self.id, %err, "emulated hosts not fully removed");
        }
    }
}

/// `pastebin-<id>`: the start of every name a run gives.
fn prefix(id: &str) -> String {
    format!("pastebin-{id}")
}

fn record_path(id: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{id}.json"))
}

/// The run id in a name made by some run (`pastebin-0a3-...`, or `pastebin-0a3`).
fn id_of(name: &str) -> Option<String> {
    let rest = name.strip_prefix("pastebin-")?;
    let id = rest.get(..3)?;
    let well_formed = id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && (rest.len() == 3 || rest[3..].starts_with('-'))
        && u32::from_str_radix(id, 16).is_ok_and(|n| n < RUNS);
    well_formed.then(|| id.to_owned())
}

/// The kernel's start time of process `pid` (clock ticks since boot), telling a
/// process from a later one that got the same pid.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start with field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` has exited but not been reaped (a zombie holds no
/// resources, and its start time still reads as before).
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|s| s == "Z" || s == "X")
        })
        .unwrap_or(false)
}

fn owner_alive(owner: &Owner) -> bool {
    start_time(owner.pid) == Some(owner.start_time) && !is_zombie(owner.pid)
}

/// Claims the first free run id (its /24 unused by any address here), atomically:
/// the record is written aside and hard-linked into place, which fails if another
/// launcher got there first.
fn claim() -> Result<u32, String> {
    let pid = i32::try_from(std::process::id()).map_err(|_| "pid out of range")?;
    let owner = Owner {
        pid,
        start_time: start_time(pid).ok_or("cannot read this process's start time")?,
    };
    let tmp = Path::new(STATE_DIR).join(format!("claim-{pid}.tmp"));
    let text = serde_json::to_string(&owner).map_err(|err| err.to_string())?;
    std::fs::write(&tmp, text).map_err(|err| format!("cannot write {}: {err}", tmp.display()))?;
    let used: BTreeSet<u32> = netns::addresses()
        .iter()
        .filter_map(|cidr| cidr.split('/').next()?.parse::<Ipv4Addr>().ok())
        .map(|a| (u32::from(a).wrapping_sub(BASE)) >> 8)
        .collect();
    let first = owner.pid.unsigned_abs() % RUNS;
    let mut claimed = None;
    for k in 0..RUNS {
        let n = (first + k) % RUNS;
        if used.contains(&n) {
            continue;
        }
        match std::fs::hard_link(&tmp, record_path(&format!("{n:03x}"))) {
            Ok(()) => {
                claimed = Some(n);
                break;
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(format!("cannot claim a run id in {STATE_DIR}: {err}"));
            }
        }
    }
    let _ = std::fs::remove_file(&tmp);
    claimed.ok_or_else(|| format!("all {RUNS} emulated networks are in use"))
}

/// Removes the runs whose launcher is gone: those with a record naming a dead
/// process, and anything named like a run that has no record at all (the caller
/// holds the lock, so no launcher is between its claim and its record).
fn sweep_stale() -> Vec<(String, Result<(), String>)> {
    let mut live = BTreeSet::new();
    let mut stale = BTreeSet::new();
    if let Ok(entries) = std::fs::read_dir(STATE_DIR) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_suffix(".json")
                .and_then(|n| id_of(&format!("pastebin-{n}")))
            else {
                continue;
            };
            let owner: Option<Owner> = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            if owner.as_ref().is_some_and(owner_alive) {
                live.insert(id);
            } else {
                stale.insert(id);
            }
        }
    }
    let flavor = Flavor::detect();
    let named = netns::namespaces()
        .into_iter()
        .chain(netns::links())
        .filter_map(|n| id_of(&n))
        .chain(flavor.as_ref().map(cgroup::run_ids).unwrap_or_default());
    for id in named {
        if !live.contains(&id) {
            stale.insert(id);
        }
    }
    stale
        .into_iter()
        .map(|id| {
            let outcome = remove_run(&id, flavor.as_ref());
            (id, outcome)
        })
        .collect()
}

/// Stops what still runs in run `id`'s hosts, removes its links, namespaces and
/// cgroups, then its record; checks that nothing is left.
fn remove_run(id: &str, flavor: Option<&Flavor>) -> Result<(), String> {
    let prefix = prefix(id);
    let ours = |name: &String| id_of(name).as_deref() == Some(id);
    let spaces: Vec<String> = netns::namespaces().into_iter().filter(ours).collect();
    let inside = || {
        let mut pids: Vec<u32> = spaces.iter().flat_map(|ns| netns::pids(ns)).collect();
        if let Some(flavor) = flavor {
            pids.extend(cgroup::leftovers(flavor, id).0);
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    };
    // Left by a launcher that was killed: they exit by themselves when its pipe
    // closes; SIGTERM, then SIGKILL after a grace period.
    let mut signal = Signal::SIGTERM;
    let deadline = Instant::now() + GRACE;
    loop {
        let pids = inside();
        if pids.is_empty() {
            break;
        }
        for pid in &pids {
            if let Ok(pid) = i32::try_from(*pid) {
                let _ = kill(Pid::from_raw(pid), signal);
            }
        }
        if Instant::now() >= deadline {
            if signal == Signal::SIGKILL {
                break;
            }
            signal = Signal::SIGKILL;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut errors = Vec::new();
    let mut links: Vec<String> = netns::links().into_iter().filter(ours).collect();
    // veths before the bridge they are enslaved to.
    links.sort_by_key(|l| l.ends_with("-br"));
    for link in &links {
        if let Err(err) = netns::ip(&["link", "del", link]) {
            errors.push(err);
        }
    }
    for ns in &spaces {
        if let Err(err) = netns::ip(&["netns", "del", ns]) {
            errors.push(err);
        }
    }
    if let Some(flavor) = flavor {
        let (_, dirs) = cgroup::leftovers(flavor, id);
        if let Err(err) = cgroup::remove_dirs(&dirs, Duration::from_secs(10)) {
            errors.push(err);
        }
    }
    let left: Vec<String> = netns::namespaces()
        .into_iter()
        .chain(netns::links())
        .filter(ours)
        .chain(
            flavor
                .map(cgroup::run_ids)
                .unwrap_or_default()
                .into_iter()
                .filter(|i| i == id)
                .map(|i| format!("cgroup {}", cgroup::run_dir_name(&i))),
        )
        .collect();
    if left.is_empty() {
        let _ = std::fs::remove_file(record_path(id));
        Ok(())
    } else {
        errors.push(format!("still there: {}", left.join(", ")));
        Err(format!("{prefix}: {}", errors.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_read_only_from_our_names() {
        assert_eq!(id_of("pastebin-0a3-br").as_deref(), Some("0a3"));
        assert_eq!(id_of("pastebin-1ff-web12").as_deref(), Some("1ff"));
        assert_eq!(id_of("pastebin-000").as_deref(), Some("000"));
        assert_eq!(id_of("pastebin-200-br"), None, "past the last run");
        assert_eq!(id_of("pastebin-0A3-br"), None);
        assert_eq!(id_of("pastebin-0a3x"), None);
        assert_eq!(id_of("pastebin-ferretdb"), None);
        assert_eq!(id_of("eth0"), None);
    }

    #[test]
    fn webservers_get_the_upper_half_of_the_cores() {
        assert_eq!(CpuSplit::of(&[0]), None);
        assert_eq!(
            CpuSplit::of(&[0, 1]),
            Some(CpuSplit {
                web: vec![1],
                other: vec![0]
            })
        );
        assert_eq!(
            CpuSplit::of(&[0, 1, 2, 4, 5]),
            Some(CpuSplit {
                web: vec![2, 4, 5],
                other: vec![0, 1]
            })
        );
        assert_eq!(cpu_list(&[0, 2, 3]), "0,2,3");
    }

    #[test]
    fn subnets_cover_198_18_0_0_slash_15() {
        let e = |subnet| Emulation {
            id: format!("{subnet:03x}"),
            subnet,
            budgets: HostCpu::default(),
            split: None,
            flavor: None,
            cgroups: None,
            hosts: Vec::new(),
            hosts_file: PathBuf::new(),
            // Never made anything: nothing to remove on drop.
            done: true,
        };
        assert_eq!(e(0).addr(1), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(e(3).addr(10), Ipv4Addr::new(198, 18, 3, 10));
        assert_eq!(e(RUNS - 1).addr(254), Ipv4Addr::new(198, 19, 255, 254));
        assert_eq!(e(0x1ff).bridge().len(), 15, "IFNAMSIZ");
    }

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        let pid = i32::try_from(std::process::id()).unwrap();
        let me = Owner {
            pid,
            start_time: start_time(pid).unwrap(),
        };
        assert!(owner_alive(&me));
        let reused = Owner {
            pid,
            start_time: me.start_time + 1,
        };
        assert!(!owner_alive(&reused));
    }

    #[test]
    fn listen_keeps_the_configured_port() {
        let host = Host {
            name: "web0".into(),
            kind: Kind::Web,
            addr: Ipv4Addr::new(198, 18, 3, 10),
            netns: "pastebin-003-web0".into(),
            cpu_budget: None,
            group: None,
            cpus: None,
        };
        assert_eq!(host.listen("127.0.0.1:4000"), "198.18.3.10:4000");
        assert_eq!(host.listen("[::1]:0"), "198.18.3.10:0");
    }
}
