//! Benchmark helper: `lb_bench backend PORT` runs a trivial webserver (small JSON
//! answers, `/healthz`); `lb_bench lb PORT BACKEND...` runs the balancer in front of
//! them. Drive both with an HTTP load tool (wrk) and compare with nginx.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

struct Fake;

impl httpkit::Handler for Fake {
    async fn handle(&self, req: Request<Incoming>, _peer: SocketAddr) -> Response<httpkit::Body> {
        let body = serde_json::json!({"id": "abc123", "path": req.uri().path(), "text": "hello"});
        httpkit::json_response(StatusCode::OK, &body)
    }
}

/// `LB_BENCH_THREADS` sets the runtime's worker threads (default: one per core).
fn main() -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("LB_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        builder.worker_threads(n);
    }
    match builder.enable_all().build() {
        Ok(rt) => rt.block_on(run()),
        Err(err) => {
            eprintln!("cannot start the runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    httpkit::logging::init("warn");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(port)) = (args.first(), args.get(1)) else {
        eprintln!("usage: lb_bench backend PORT | lb_bench lb PORT BACKEND...");
        return ExitCode::from(2);
    };
    let listener = match tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await {
        Ok(l) => l,
        Err(err) => {
            eprintln!("cannot bind port {port}: {err}");
            return ExitCode::FAILURE;
        }
    };
    match mode.as_str() {
        "backend" => {
            httpkit::serve(
                listener,
                Arc::new(Fake),
                httpkit::ServerConfig::default(),
                httpkit::shutdown_signal(),
            )
            .await;
        }
        "lb" => {
            let config = lb::Config::new(args[2..].to_vec());
            if let Err(err) = lb::run(listener, config, httpkit::shutdown_signal()).await {
                eprintln!("{err}");
                return ExitCode::FAILURE;
            }
        }
        other => {
            eprintln!("unknown mode {other}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
