//! The command line: every knob a flag with a sensible default, turned into a
//! [`RunPlan`] and a description of where the load goes.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::dist::{KeyDist, SizeDist};
use crate::plan::{Mix, RunPlan, Workload};

/// Load generator for the pastebin stack (and, with --get, any HTTP/1.1 server).
#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Load generator for the pastebin stack: closed or open loop, HdrHistogram latencies, correctness checks, scale sweeps",
    after_help = "Examples:\n  loadtest --target http://127.0.0.1:3000 -c 64 -d 30s\n  loadtest --target http://127.0.0.1:3000 --rate 2000 -c 64\n  loadtest --get http://127.0.0.1:3000/pastes/AbCdEfGh12 -c 32\n  loadtest --spawn --webservers 1,2,4 -d 20s --json sweep.json\n\n--spawn runs `pastebin --config FILE up` (all ports 0, temporary data directory) and needs the\npastebin binary: build it first with `cargo build --release --bin pastebin` (it is looked for next\nto this binary), or pass --pastebin-bin PATH."
)]
pub struct Cli {
    /// The stack's balancer URL (ignored with --spawn).
    #[arg(long, env = "LOADTEST_TARGET", default_value = "http://127.0.0.1:3000")]
    pub target: String,

    /// Launch a stack (`pastebin up` in a temporary data directory) for the run, and
    /// stop it at the end.
    #[arg(long)]
    pub spawn: bool,

    /// With --spawn: webserver counts to run the same load against, one stack each,
    /// e.g. 1,2,4 (a sweep: also writes CSV and SVG).
    #[arg(long, value_delimiter = ',', requires = "spawn", default_value = "2")]
    pub webservers: Vec<usize>,

    /// With --spawn: run the whole sweep this many times (an odd number), the counts
    /// in turn (1, 2, 4, 1, 2, 4, ...), and report each count's median run. On a
    /// shared or virtual machine whose speed drifts, one round's ratios can be far
    /// off; the medians of alternating rounds are what BENCHMARKS.md quotes.
    #[arg(long, requires = "spawn", default_value_t = 1, value_parser = parse_rounds)]
    pub rounds: usize,

    /// With --spawn: run every component on an emulated host of its own (`pastebin up
    /// --emulate-hosts`: network namespaces, CPU budgets through cgroups; needs root).
    /// The report adds each host's CPU use.
    #[arg(long, requires = "spawn")]
    pub emulate_hosts: bool,

    /// With --emulate-hosts: CPU budget of each webserver host, in cores (the same as
    /// --host-cpu web=CORES).
    #[arg(long, requires = "emulate_hosts", value_name = "CORES")]
    pub web_cpu: Option<f64>,

    /// With --emulate-hosts: CPU budget of the hosts of a role, in cores: lb=1,
    /// web=0.25, sqlsvc=0.5, nosqlsvc=0.5. Repeat or comma-separate.
    #[arg(
        long,
        requires = "emulate_hosts",
        value_delimiter = ',',
        value_name = "ROLE=CORES"
    )]
    pub host_cpu: Vec<String>,

    /// With --spawn: the pastebin binary (default: next to this binary).
    #[arg(long, requires = "spawn", value_name = "PATH")]
    pub pastebin_bin: Option<PathBuf>,

    /// Plain mode: only GET this URL (or, with --spawn, this path), like wrk.
    #[arg(long, value_name = "URL")]
    pub get: Option<String>,

    /// Concurrent connections (virtual clients), each one keep-alive connection.
    #[arg(short = 'c', long, default_value_t = 32)]
    pub connections: usize,

    /// Open loop: send this many requests per second in total, on a fixed schedule,
    /// and measure latency from each request's intended send time. Default: closed loop.
    #[arg(short = 'R', long)]
    pub rate: Option<f64>,

    /// Measured duration (e.g. 10s, 500ms, 2m).
    #[arg(short = 'd', long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Unmeasured load before the measured window (creates the first pastes).
    #[arg(short = 'w', long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// A request without a full answer after this long counts as a timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Generator threads (default: the number of cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,

    /// Seed of every random choice (workload, sizes, keys).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Reads per write (the Primer's 10:1 read-heavy mix).
    #[arg(long, default_value_t = 10.0)]
    pub read_ratio: f64,

    /// Fraction of all requests that list pastes (`GET /pastes?limit=N`).
    #[arg(long, default_value_t = 0.0)]
    pub list_share: f64,

    /// The `limit` of list calls.
    #[arg(long, default_value_t = 20)]
    pub list_limit: usize,

    /// Which paste a read asks for: uniform, zipf or zipf:EXPONENT (skewed to the
    /// newest), popular or popular:EXPONENT (skewed to a fixed hot set: the oldest).
    #[arg(long, default_value = "uniform")]
    pub keys: KeyDist,

    /// Paste sizes in bytes: fixed:N, uniform:LO..HI or exp:MEAN.
    #[arg(long, default_value = "uniform:512..1536")]
    pub size: SizeDist,

    /// Fraction of reads (and list calls) whose body is checked against what was
    /// written (every write's answer is always checked).
    #[arg(long, default_value_t = 0.1)]
    pub verify_ratio: f64,

    /// Write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Sweep: the CSV file (default loadtest-sweep.csv when more than one count).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Sweep: the SVG chart (default loadtest-sweep.svg when more than one count).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,

    /// No progress line (it is only shown when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,

    /// Serve a trivial fixed answer on ADDR instead of generating load (the baseline
    /// for comparing generators).
    #[arg(long, hide = true, value_name = "ADDR")]
    pub serve_hello: Option<String>,
}

impl Cli {
    /// The run these flags describe.
    pub fn plan(&self, progress: bool) -> RunPlan {
        let workload = if self.get.is_some() {
            Workload::Get
        } else {
            Workload::Pastebin(Mix {
                read_ratio: self.read_ratio,
                list_share: self.list_share,
                list_limit: self.list_limit,
                keys: self.keys,
                sizes: self.size,
                verify_ratio: self.verify_ratio,
            })
        };
        RunPlan {
            connections: self.connections,
            rate: self.rate,
            warmup: self.warmup,
            duration: self.duration,
            timeout: self.timeout,
            seed: self.seed,
            workload,
            progress: progress && !self.no_progress,
        }
    }

    /// The `--host-cpu` budgets for `pastebin up`, when hosts are emulated.
    pub fn emulation(&self) -> Option<Vec<String>> {
        self.emulate_hosts.then(|| {
            let mut budgets = self.host_cpu.clone();
            if let Some(cores) = self.web_cpu {
                budgets.push(format!("web={cores}"));
            }
            budgets
        })
    }

    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

/// `--rounds`: an odd count from 1 to 99, so that each count's median is one of its
/// runs.
pub fn parse_rounds(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?}: expected an odd number of rounds, e.g. 3"))?;
    if n == 0 || n > 99 || n.is_multiple_of(2) {
        return Err(format!(
            "{s:?}: rounds must be odd and from 1 to 99 (each count's median is one of its runs)"
        ));
    }
    Ok(n)
}

/// `10s`, `500ms`, `2m`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 10s, 500ms, 2m"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{s:?}: unit must be ms, s, m or h")),
    };
    if !(secs.is_finite() && (0.0..=86_400.0).contains(&secs)) {
        return Err(format!("{s:?}: must be between 0 and 24h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("48h").is_err());
    }

    #[test]
    fn defaults_are_the_primer_mix_in_closed_loop() {
        let cli = Cli::try_parse_from(["loadtest"]).unwrap();
        let plan = cli.plan(false);
        assert_eq!(plan.mode(), "closed");
        assert_eq!(plan.connections, 32);
        let Workload::Pastebin(mix) = plan.workload else {
            panic!()
        };
        assert_eq!(mix.read_ratio, 10.0);
        assert_eq!(mix.sizes, SizeDist::Uniform(512, 1536));
        let cli = Cli::try_parse_from([
            "loadtest",
            "--spawn",
            "--webservers",
            "1,2,4",
            "--rate",
            "100",
        ])
        .unwrap();
        assert_eq!(cli.webservers, [1, 2, 4]);
        assert_eq!(cli.plan(false).mode(), "open");
        assert!(Cli::try_parse_from(["loadtest", "--webservers", "2"]).is_err());
        let rounds =
            |r: &str| Cli::try_parse_from(["loadtest", "--spawn", "--rounds", r]).map(|c| c.rounds);
        assert_eq!(rounds("3").ok(), Some(3));
        assert_eq!(
            Cli::try_parse_from(["loadtest", "--spawn"])
                .map(|c| c.rounds)
                .ok(),
            Some(1)
        );
        for bad in ["0", "2", "101", "x", "-1"] {
            assert!(rounds(bad).is_err(), "{bad}");
        }
        assert!(
            Cli::try_parse_from(["loadtest", "--rounds", "3"]).is_err(),
            "needs --spawn"
        );
        assert_eq!(cli.emulation(), None);
        let cli = Cli::try_parse_from([
            "loadtest",
            "--spawn",
            "--emulate-hosts",
            "--web-cpu",
            "0.25",
            "--host-cpu",
            "lb=1,sqlsvc=0.5",
        ])
        .unwrap();
        assert_eq!(cli.emulation().unwrap(), ["lb=1", "sqlsvc=0.5", "web=0.25"]);
        assert!(Cli::try_parse_from(["loadtest", "--spawn", "--web-cpu", "1"]).is_err());
        assert!(Cli::try_parse_from(["loadtest", "--emulate-hosts"]).is_err());
        assert!(Cli::try_parse_from(["loadtest", "--keys", "pareto"]).is_err());
    }
}
