//! The plain GET mode against the trivial server, and failures counted by kind:
//! connection refused, timeouts.

use std::time::Duration;

use loadtest::{ErrorKind, Kind, Workload};

use crate::fakes::{self, Silent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_get_counts_answers_and_bytes() {
    let server = fakes::start(HelloHandler).await;
    let plan = fakes::plan(Workload::Get, 4, Duration::from_millis(500));
    let result = fakes::run(&server.url, &plan).await;
    let read = result.stats.kind(Kind::Read).unwrap();
    assert!(read.requests > 0, "{}", read.requests);
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
    let refusing = testkit::Refusing::new();
    let plan = fakes::plan(Workload::Get, 2, Duration::from_millis(400));
    // `fakes::run` fails the test if the run does not end by itself.
    let result = fakes::run(&format!("http://{}", refusing.addr), &plan).await;
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
    // Each connection times out at most every 200 ms of the 700 ms (a timer never
    // fires early), and at least once, however slow the machine.
    assert!((1..=8).contains(&timeouts), "{timeouts}");
    assert_eq!(result.stats.total().requests, 0);
}
