//! Results for people and for machines: the final table on stdout and the same
//! figures as JSON (`--json FILE`), with the parameters and the machine's facts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::hosts::{self, CpuUse};
use crate::plan::{Mix, RunPlan, Workload};
use crate::run::RunResult;
use crate::stats::{ErrorKind, Kind, KindStats, Percentiles};

/// One run's results, as written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    /// Webservers behind the balancer, when this tool launched the stack.
    pub webservers: Option<usize>,
    pub params: Params,
    pub machine: Machine,
    /// Length of the measured window in seconds.
    pub duration_s: f64,
    /// Answers (any status) to requests due in the window.
    pub requests: u64,
    pub requests_per_second: f64,
    /// Bytes received per second (status lines, headers, bodies).
    pub bytes_per_second: f64,
    /// All kinds together; open loop: from the intended send times.
    pub latency_ms: Percentiles,
    /// Open loop only: from the actual send times (not corrected; for comparison).
    pub service_time_ms: Option<Percentiles>,
    pub errors: BTreeMap<&'static str, u64>,
    pub by_kind: BTreeMap<&'static str, KindReport>,
    /// Reads whose text was compared with the text written.
    pub verified_reads: u64,
    /// Open loop: requests due in the window that were never sent.
    pub missed: u64,
    pub keys_created: usize,
    pub mismatch_samples: Vec<String>,
    /// The stack ran on emulated hosts (`pastebin up --emulate-hosts`).
    pub emulated_hosts: bool,
    /// With emulated hosts: each host's CPU use over the measured window, and this
    /// generator's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts_cpu: Vec<CpuUse>,
    /// With emulated hosts that split the machine's cores: how many the hosts other
    /// than the webservers' (and this generator) have between them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_cores: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    pub requests: u64,
    pub requests_per_second: f64,
    pub bytes_per_second: f64,
    pub latency_ms: Percentiles,
    pub service_time_ms: Option<Percentiles>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// "closed" or "open".
    pub mode: &'static str,
    /// "pastebin" or "get".
    pub workload: &'static str,
    pub connections: usize,
    pub rate: Option<f64>,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub timeout_s: f64,
    pub threads: usize,
    pub seed: u64,
    pub mix: Option<Mix>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub os: &'static str,
    pub arch: &'static str,
    /// The stack runs on the same machine (it was launched by this tool, or the
    /// target is on loopback), so generator and servers share the cores.
    pub shares_cores_with_target: bool,
}

impl Machine {
    pub fn here(shares: bool) -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            shares_cores_with_target: shares,
        }
    }
}

impl Report {
    pub fn new(
        result: &RunResult,
        plan: &RunPlan,
        target: &str,
        webservers: Option<usize>,
        threads: usize,
        machine: Machine,
    ) -> Report {
        let secs = result.window.as_secs_f64().max(1e-9);
        let stats = &result.stats;
        let total = stats.total();
        let kind_report = |k: &KindStats| KindReport {
            requests: k.requests,
            requests_per_second: k.requests as f64 / secs,
            bytes_per_second: k.bytes as f64 / secs,
            latency_ms: Percentiles::of(&k.latency),
            service_time_ms: k.service.as_ref().map(Percentiles::of),
        };
        let by_kind = Kind::ALL
            .iter()
            .filter_map(|&kind| stats.kind(kind).map(|k| (kind.name(), kind_report(k))))
            .collect();
        let mut errors: BTreeMap<&'static str, u64> = ErrorKind::ALL
            .iter()
            .map(|&e| (e.name(), stats.errors.get(e)))
            .collect();
        errors.insert("total", stats.errors.total());
        let (workload, mix) = match &plan.workload {
            Workload::Get => ("get", None),
            Workload::Pastebin(mix) => ("pastebin", Some(mix.clone())),
        };
        Report {
            target: target.to_owned(),
            webservers,
            params: Params {
                mode: plan.mode(),
                workload,
                connections: plan.connections,
                rate: plan.rate,
                warmup_s: plan.warmup.as_secs_f64(),
                duration_s: plan.duration.as_secs_f64(),
                timeout_s: plan.timeout.as_secs_f64(),
                threads,
                seed: plan.seed,
                mix,
            },
            machine,
            duration_s: secs,
            requests: total.requests,
            requests_per_second: total.requests as f64 / secs,
            bytes_per_second: total.bytes as f64 / secs,
            latency_ms: Percentiles::of(&total.latency),
            service_time_ms: total.service.as_ref().map(Percentiles::of),
            errors,
            by_kind,
            verified_reads: stats.verified,
            missed: stats.missed,
            keys_created: result.keys_created,
            mismatch_samples: stats.mismatch_samples.clone(),
            emulated_hosts: false,
            hosts_cpu: Vec::new(),
            other_cores: None,
        }
    }

    /// The error count of one kind.
    pub fn error(&self, kind: ErrorKind) -> u64 {
        self.errors.get(kind.name()).copied().unwrap_or(0)
    }

    /// The final table, as printed.
    pub fn table(&self) -> String {
        let p = &self.params;
        let mut out = String::new();
        let loop_desc = match p.rate {
            Some(rate) => format!("open loop at {rate} req/s (latency from intended send time)"),
            None => "closed loop".to_owned(),
        };
        let _ = writeln!(
            out,
            "{} {}: {loop_desc}, {} connections, {:.1} s measured after {:.1} s warm-up{}",
            p.workload,
            self.target,
            p.connections,
            self.duration_s,
            p.warmup_s,
            self.webservers
                .map_or(String::new(), |n| format!(", {n} webserver(s)")),
        );
        if let Some(mix) = &p.mix {
            let _ = writeln!(
                out,
                "mix: {} reads per write, list share {}, keys {}, sizes {}, verify {}",
                mix.read_ratio, mix.list_share, mix.keys, mix.sizes, mix.verify_ratio
            );
        }
        let _ = writeln!(
            out,
            "{:<7} {:>10} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "", "requests", "req/s", "bytes/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        let mut row = |name: &str, requests: u64, rps: f64, bps: f64, l: &Percentiles| {
            let _ = writeln!(
                out,
                "{name:<7} {requests:>10} {rps:>11.1} {:>11} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                human_bytes(bps),
                l.p50,
                l.p90,
                l.p99,
                l.p999,
                l.max
            );
        };
        for (name, k) in &self.by_kind {
            row(
                name,
                k.requests,
                k.requests_per_second,
                k.bytes_per_second,
                &k.latency_ms,
            );
        }
        if self.by_kind.len() > 1 {
            row(
                "all",
                self.requests,
                self.requests_per_second,
                self.bytes_per_second,
                &self.latency_ms,
            );
        }
        if let Some(s) = &self.service_time_ms {
            let _ = writeln!(
                out,
                "uncorrected (from actual send): p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms",
                s.p50, s.p90, s.p99, s.p999, s.max
            );
        }
        if self.missed > 0 {
            let _ = writeln!(
                out,
                "WARNING: {} requests due in the window were never sent: the rate was not sustained",
                self.missed
            );
        }
        let errs: Vec<String> = ErrorKind::ALL
            .iter()
            .map(|&e| format!("{} {}", e.name(), self.error(e)))
            .collect();
        let total = self.errors.get("total").copied().unwrap_or(0);
        let _ = writeln!(out, "errors: {total} ({})", errs.join(", "));
        if p.mix.is_some() {
            let _ = writeln!(
                out,
                "verified reads: {} ({} mismatches); pastes created: {}",
                self.verified_reads,
                self.error(ErrorKind::Mismatch),
                self.keys_created
            );
        }
        for s in &self.mismatch_samples {
            let _ = writeln!(out, "  mismatch: {s}");
        }
        if !self.hosts_cpu.is_empty() {
            let _ = writeln!(
                out,
                "cpu (cores; used/budget, * = saturated): {}",
                hosts::summary(&self.hosts_cpu)
            );
        }
        out
    }
}

/// `1.2 MB/s`-style (decimal units, as wrk).
pub fn human_bytes(bps: f64) -> String {
    if bps >= 1e9 {
        format!("{:.2}GB", bps / 1e9)
    } else if bps >= 1e6 {
        format!("{:.2}MB", bps / 1e6)
    } else if bps >= 1e3 {
        format!("{:.2}KB", bps / 1e3)
    } else {
        format!("{bps:.0}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_humanized() {
        assert_eq!(human_bytes(12.0), "12B");
        assert_eq!(human_bytes(1_500.0), "1.50KB");
        assert_eq!(human_bytes(2_500_000.0), "2.50MB");
    }
}
