//! Defaults that a service and the launcher that configures it must agree on. They
//! live here, in a crate both depend on, so that the launcher (`launcher`) needs none
//! of the servers' crates to compile: it is built beside them rather than after them
//! (see the README, "Build time and size"). Each server re-exports its own under its
//! old name.

use std::time::Duration;

/// sqlsvc: default time between two sweeps.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// sqlsvc: default age a text must reach, unclaimed by any row, before it counts as
/// orphaned: far longer than any create takes between its two steps.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(600);

/// sqlsvc: reader connections by default: one per core (each is a thread that runs
/// queries), at least two so one slow query does not hold up the rest.
pub fn sqlsvc_readers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 16)
}

/// nosqlsvc: default bound on the embedded store's page cache and write buffer
/// together (redb's own default is 1 GiB, which lets the process grow with the data).
/// Pages it drops are read again through the operating system's file cache.
pub const EMBEDDED_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// web: the longest lifetime a paste may be given unless configured: ten years.
pub const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

/// lb: the path prefix reserved for the balancer's own routes (`/_lb/status`, ...).
pub const LB_ADMIN_PREFIX: &str = "/_lb";
