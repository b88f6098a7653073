//! The `loadtest` binary: parses flags, builds the runtime, runs [`loadtest::app`].

use std::process::ExitCode;

use clap::Parser;
use loadtest::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    httpkit::logging::init("warn");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("loadtest: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        if let Some(addr) = &cli.serve_hello {
            return serve_hello(addr).await;
        }
        loadtest::app::main(cli).await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("loadtest: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

async fn serve_hello(addr: &str) -> Result<(), loadtest::LoadError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| loadtest::LoadError::Config(format!("--serve-hello {addr}: {err}")))?;
    if let Ok(local) = listener.local_addr() {
        println!("http://{local}");
    }
    loadtest::hello::serve(listener, httpkit::shutdown_signal()).await;
    Ok(())
}
