//! The plain GET mode against the trivial server, and failures counted by kind:
//! connection refused, timeouts.

use std::time::{Duration, Instant};

use loadtest::{ErrorKind, Kind, Workload};

use crate::fakes::{self, Silent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_get_counts_answers_and_bytes() {
    let server = fakes::start(HelloHandler).await;
    let plan = fakes::plan(Workload::Get, 4, Duration::from_millis(500));
    let result = fakes::run(&server.url, &plan).await;
    let read = result.stats.kind(Kind::Read).unwrap();
    assert!(read.requests > 50, "{}", read.requests);
    assert_eq!(result.stats.errors.total(), 0);
    assert!(result.stats.kind(Kind::Write).is_none());
    // Every answer: status line, date/content-type/content-length headers, 13 bytes.
    let per = read.bytes / read.requests;
    assert!((80..200).contains(&per), "{per} bytes per answer");
    assert!(read.latency.len() == read.requests);
}

struct HelloHandler;
impl httpkit::Handler for HelloHandler {
    fn handle(
        &self,
        _req: http::Request<hyper::body::Incoming>,
        _peer: std::net::SocketAddr,
    ) -> impl std::future::Future<Output = http::Response<httpkit::Body>> + Send {
        std::future::ready(http::Response::new(httpkit::full(loadtest::hello::BODY)))
    }
}

#[tokio::test]
async fn a_closed_port_gives_connect_errors_and_the_run_still_ends_on_time() {
    let (listener, addr) = httpkit::server::bind_ephemeral().await.unwrap();
    drop(listener);
    let plan = fakes::plan(Workload::Get, 2, Duration::from_millis(400));
    let started = Instant::now();
    let result = fakes::run(&format!("http://{addr}"), &plan).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(result.stats.errors.get(ErrorKind::Connect) > 0);
    assert_eq!(result.stats.total().requests, 0);
}

#[tokio::test]
async fn a_silent_server_gives_timeouts() {
    let server = fakes::start(Silent).await;
    let mut plan = fakes::plan(Workload::Get, 2, Duration::from_millis(700));
    plan.timeout = Duration::from_millis(200);
    let result = fakes::run(&server.url, &plan).await;
    let timeouts = result.stats.errors.get(ErrorKind::Timeout);
    assert!((2..=10).contains(&timeouts), "{timeouts}");
    assert_eq!(result.stats.total().requests, 0);
}
