//! The sqlsvc binary: parses flags, binds, and runs the service until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// The metadata service of the pastebin (paste id -> text location) on SQLite.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = sqlsvc::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The SQLite database file (parent directories are created).
    #[arg(long, default_value = "data/sqlsvc.db")]
    db: PathBuf,
    /// Log filter when RUST_LOG is not set.
    #[arg(long, default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    httpkit::logging::init(&args.log);
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(err) => {
            eprintln!("sqlsvc: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let config = sqlsvc::Config {
        db_path: args.db,
        server: httpkit::ServerConfig::default(),
    };
    match sqlsvc::run(listener, config, httpkit::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sqlsvc: {err}");
            ExitCode::FAILURE
        }
    }
}
