//! What the binary does with its flags: find or launch the target, run the load
//! (once, or once per web-tier size), print the results and write the files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use tokio::sync::watch;

use crate::LoadError;
use crate::cli::Cli;
use crate::hosts;
use crate::plan::RunPlan;
use crate::report::{Machine, Report};
use crate::run::run;
use crate::stack::{self, Stack};
use crate::sweep;
use crate::target::Target;

/// Runs what `cli` asks for; Ctrl-C (or SIGTERM) ends the run early, still printing
/// what was measured and stopping a launched stack.
pub async fn main(cli: Cli) -> Result<(), LoadError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        httpkit::shutdown_signal().await;
        eprintln!("\nstopping...");
        let _ = stop_tx.send(true);
    });
    let plan = cli.plan(std::io::stderr().is_terminal());
    plan.validate().map_err(LoadError::Config)?;
    let reports = if cli.spawn {
        spawned(&cli, &plan, &stop_rx).await?
    } else {
        let target = match &cli.get {
            Some(url) if url.starts_with("http://") => Target::resolve(url).await?,
            Some(path) => Target::resolve(&cli.target).await?.with_path(path)?,
            None => Target::resolve(&cli.target).await?,
        };
        let result = run(&target, &plan, stop_rx.clone()).await?;
        let machine = Machine::here(target.addr.ip().is_loopback());
        let report = Report::new(&result, &plan, &target.url, None, cli.threads(), machine);
        print!("{}", report.table());
        vec![report]
    };
    if let Some(path) = &cli.json {
        let value = match reports.as_slice() {
            [one] => serde_json::to_value(one),
            many => serde_json::to_value(serde_json::json!({ "sweep": many })),
        }
        .map_err(|err| LoadError::Output(err.to_string()))?;
        let text = serde_json::to_string_pretty(&value)
            .map_err(|err| LoadError::Output(err.to_string()))?;
        write(path, &text)?;
    }
    if *stop_rx.borrow() {
        return Err(LoadError::Interrupted);
    }
    Ok(())
}

/// One stack per webserver count, the same load against each.
async fn spawned(
    cli: &Cli,
    plan: &RunPlan,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<Report>, LoadError> {
    if cli.webservers.is_empty() || cli.webservers.iter().any(|&n| !(1..=64).contains(&n)) {
        return Err(LoadError::Config(
            "--webservers must be counts within 1..64, e.g. 1,2,4".into(),
        ));
    }
    let emulate = cli.emulation();
    if emulate.is_some() && !nix::unistd::geteuid().is_root() {
        return Err(LoadError::Config(
            "--emulate-hosts needs root (pastebin up makes network namespaces and cgroups)".into(),
        ));
    }
    let bin = match &cli.pastebin_bin {
        Some(path) => path.clone(),
        None => stack::default_binary().ok_or_else(|| {
            LoadError::Spawn("cannot locate this binary's directory; pass --pastebin-bin".into())
        })?,
    };
    let mut reports = Vec::new();
    // The CPUs to give back before each stack starts: the launcher inherits this
    // process's mask, and must see the whole machine to split it.
    let all_cpus = match emulate {
        Some(_) => hosts::allowed_cpus().ok(),
        None => None,
    };
    let runs = (1..=cli.rounds).flat_map(|round| cli.webservers.iter().map(move |&n| (round, n)));
    for (round, n) in runs {
        if *stop.borrow() {
            break;
        }
        eprintln!(
            "starting a stack with {n} webserver(s){}{}...",
            if emulate.is_some() {
                " on emulated hosts"
            } else {
                ""
            },
            if cli.rounds > 1 {
                format!(" (round {round} of {})", cli.rounds)
            } else {
                String::new()
            }
        );
        if let Some(cpus) = &all_cpus
            && let Err(err) = hosts::pin_process(cpus)
        {
            eprintln!("warning: cannot give this process its CPUs back: {err}");
        }
        let stack = Stack::start(&bin, n, emulate.as_deref(), stop.clone()).await?;
        let other_cores = stack.generator_cpus.as_ref().map(Vec::len);
        // On the cores of the hosts that are not webservers', as a client machine
        // would not share the webservers' cores either.
        if let Some(cpus) = &stack.generator_cpus {
            let list = cpus
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",");
            match hosts::pin_process(cpus) {
                Ok(()) => eprintln!(
                    "the generator runs on CPU(s) {list}, with the stores; the webservers' and the balancer's hosts on the others"
                ),
                Err(err) => eprintln!("warning: cannot pin the generator to CPU(s) {list}: {err}"),
            }
        }
        let outcome = async {
            let target = Target::resolve(&stack.url).await?;
            let target = match &cli.get {
                Some(path) => target.with_path(path)?,
                None => target,
            };
            // Each host's CPU time at the end of the warm-up and at the end of the run.
            let window_start = (!stack.hosts.is_empty()).then(|| {
                let hosts = stack.hosts.clone();
                let warmup = plan.warmup;
                tokio::spawn(async move {
                    tokio::time::sleep(warmup).await;
                    hosts::sample(&hosts)
                })
            });
            let result = run(&target, plan, stop.clone()).await?;
            let cpu = match window_start {
                Some(task) => match task.await {
                    Ok(first) => hosts::between(&stack.hosts, &first, &hosts::sample(&stack.hosts)),
                    Err(_) => Vec::new(),
                },
                None => Vec::new(),
            };
            Ok::<_, LoadError>((result, target, cpu))
        }
        .await;
        let log = stack.log_path();
        if let Err(err) = stack.stop().await {
            eprintln!("warning: {err} (log: {})", log.display());
        }
        let (result, target, cpu) = outcome?;
        let mut report = Report::new(
            &result,
            plan,
            &target.url,
            Some(n),
            cli.threads(),
            Machine::here(true),
        );
        report.emulated_hosts = emulate.is_some();
        report.hosts_cpu = cpu;
        report.other_cores = other_cores;
        print!("{}", report.table());
        println!();
        reports.push(report);
    }
    // Run in rounds: the tables, CSV and SVG show each count's median run (of the
    // rounds that ran to the end), after a table of every round.
    let counts = cli.webservers.len();
    let full = reports.len() / counts.max(1);
    let medians: Vec<Report>;
    let shown: &[Report] = if cli.rounds > 1 && full > 0 {
        let rps: Vec<Vec<f64>> = reports
            .chunks(counts)
            .take(full)
            .map(|round| round.iter().map(|r| r.requests_per_second).collect())
            .collect();
        let (summary, picks) = sweep::rounds(&cli.webservers, &rps);
        if picks.is_empty() {
            &reports
        } else {
            println!(
                "{full} round(s); each count's median run is the one in the table below, the CSV and the SVG:"
            );
            print!("{summary}");
            println!();
            medians = picks
                .iter()
                .enumerate()
                .map(|(i, &round)| reports[round * counts + i].clone())
                .collect();
            &medians
        }
    } else {
        &reports
    };
    if shown.len() > 1 || cli.csv.is_some() || cli.svg.is_some() {
        let reports = shown;
        print!("{}", sweep::table(reports));
        let default =
            |ext: &str| (reports.len() > 1).then(|| PathBuf::from(format!("loadtest-sweep.{ext}")));
        if let Some(path) = cli.csv.clone().or_else(|| default("csv")) {
            write(&path, &sweep::csv(reports))?;
            eprintln!("wrote {}", path.display());
        }
        if let Some(path) = cli.svg.clone().or_else(|| default("svg")) {
            let title = format!(
                "pastebin: throughput vs webservers ({} loop, {} connections{}{})",
                plan.mode(),
                plan.connections,
                plan.rate
                    .map_or(String::new(), |r| format!(", {r} req/s offered")),
                match &emulate {
                    Some(budgets) if budgets.is_empty() => ", emulated hosts".to_owned(),
                    Some(budgets) => format!(", emulated hosts, cpu {}", budgets.join(" ")),
                    None => String::new(),
                }
            );
            write(&path, &sweep::svg(reports, &title))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(reports)
}

fn write(path: &Path, text: &str) -> Result<(), LoadError> {
    std::fs::write(path, text)
        .map_err(|err| LoadError::Output(format!("cannot write {}: {err}", path.display())))
}
