//! The launcher behind `pastebin up`: its settings ([`config`]), starting, watching
//! and stopping the components as child processes ([`supervisor`]), and emulated
//! hosts ([`emulate`]). The children are the `pastebin` binary itself, run as
//! `pastebin lb|web|sqlsvc|nosqlsvc`; the code of each server is in its own crate and
//! linked only by that binary.

mod cgroup;
pub mod config;
pub mod emulate;
mod netns;
pub mod supervisor;

/// The first line a component prints on stdout, followed by its bound address.
pub const LISTENING: &str = "LISTENING ";

/// The components of the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Lb,
    Web,
    Sqlsvc,
    Nosqlsvc,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lb => "lb",
            Kind::Web => "web",
            Kind::Sqlsvc => "sqlsvc",
            Kind::Nosqlsvc => "nosqlsvc",
        }
    }
}

/// Pins this process (and every thread it starts afterwards) to `cpus`.
pub fn pin_to(cpus: &config::CpuList) -> nix::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for &cpu in cpus.cpus() {
        set.set(cpu)?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
}
