//! `pastebin`: `pastebin up` launches the whole topology as separate processes; `pastebin
//! lb|web|sqlsvc|nosqlsvc` runs one component alone, for deployment on its own host.

mod component;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use launcher::config::{EmulateArgs, Overrides, Settings};
use launcher::{Kind, emulate, supervisor};

#[derive(Parser, Debug)]
#[command(
    name = "pastebin",
    version,
    about = "A pastebin service: load balancer, webservers, SQL and NoSQL services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    overrides: Overrides,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole topology on this machine (lb, N webservers, sqlsvc, nosqlsvc) as
    /// separate processes; restart any that dies; stop all on Ctrl-C / SIGTERM.
    Up(EmulateArgs),
    /// Ask the running `pastebin up` (same data directory) to run N webservers: new
    /// ones join the balancer once healthy, removed ones leave it and drain.
    Scale {
        /// How many webservers to run.
        count: usize,
    },
    /// Run the load balancer alone, over the configured webservers.
    Lb(ComponentArgs),
    /// Run one webserver alone (listening on the first configured webserver address
    /// unless --listen says otherwise).
    Web(ComponentArgs),
    /// Run the SQL metadata service alone.
    Sqlsvc(ComponentArgs),
    /// Run the NoSQL text service alone.
    Nosqlsvc(ComponentArgs),
}

#[derive(Args, Debug)]
struct ComponentArgs {
    /// Address to listen on (default: this component's address in the config).
    #[arg(long)]
    listen: Option<String>,
    /// Stop when standard input closes (used by `pastebin up`, so that children never
    /// outlive their launcher).
    #[arg(long, hide = true)]
    exit_with_parent: bool,
}

/// Exit status of a bad command line or configuration.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    httpkit::logging::init("info");
    let emulate = match &cli.command {
        Command::Up(args) => match args.resolve() {
            Ok(emulate) => emulate,
            Err(err) => {
                eprintln!("pastebin: bad configuration: {err}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        _ => None,
    };
    // Before anything else, so nothing is touched without the rights to finish.
    if emulate.is_some() && !emulate::is_root() {
        eprintln!(
            "pastebin: --emulate-hosts needs root: it makes network namespaces, a bridge, veth pairs and cgroups. Run it as root (e.g. with sudo)."
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let settings = match Settings::load(&cli.overrides) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("pastebin: bad configuration: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(err) = component::check_balancer(&settings) {
        eprintln!("pastebin: bad configuration: {err}");
        return ExitCode::from(EXIT_USAGE);
    }
    // A webserver's runtime is sized to the CPU it has (`--web-threads`, which
    // `pastebin up` sets for the webservers it runs): one thread means a
    // single-threaded runtime, with no wake-ups of idle workers to steal work.
    let threads = match &cli.command {
        Command::Web(_) => settings.web_threads,
        _ => None,
    };
    // Pinned before the runtime starts, so every thread it makes inherits the mask.
    let pin = match &cli.command {
        Command::Web(_) => settings.cpus.as_ref().or(settings.web_cpus.as_ref()),
        Command::Lb(_) | Command::Sqlsvc(_) | Command::Nosqlsvc(_) => settings.cpus.as_ref(),
        _ => None,
    };
    if let Some(cpus) = pin
        && let Err(err) = launcher::pin_to(cpus)
    {
        eprintln!("pastebin: cannot run on CPUs {cpus} (--cpus, --web-cpus): {err}");
        return ExitCode::from(EXIT_USAGE);
    }
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("pastebin: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(_) => supervisor::up(settings, emulate).await,
            Command::Scale { count } => supervisor::request_scale(&settings, count).await,
            Command::Lb(args) => {
                component::run(Kind::Lb, &settings, args.listen, args.exit_with_parent).await
            }
            Command::Web(args) => {
                component::run(Kind::Web, &settings, args.listen, args.exit_with_parent).await
            }
            Command::Sqlsvc(args) => {
                component::run(Kind::Sqlsvc, &settings, args.listen, args.exit_with_parent).await
            }
            Command::Nosqlsvc(args) => {
                component::run(
                    Kind::Nosqlsvc,
                    &settings,
                    args.listen,
                    args.exit_with_parent,
                )
                .await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pastebin: {err}");
            ExitCode::FAILURE
        }
    }
}
