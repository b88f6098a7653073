//! Test support for the balancer: a balancer on port 0 with short test settings, a
//! steady load, and status-page polling. Fake webservers, the client and its answers
//! come from `testkit`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use testkit::client::{Answer, BoxError, body};
pub use testkit::fake::{Behaviour, FakeBackend};
pub use testkit::net::Refusing;

/// Settings for tests: short intervals and timeouts.
pub fn test_config(backends: &[&FakeBackend]) -> lb::Config {
    let mut config = lb::Config::new(backends.iter().map(|b| b.authority()).collect());
    config.connect_timeout = Duration::from_millis(300);
    config.response_timeout = Duration::from_millis(500);
    // Well above the response timeout, so a test can tell which one fired.
    config.request_body_idle_timeout = Duration::from_millis(1500);
    config.idle_timeout = Duration::from_secs(2);
    config.health.interval = Duration::from_millis(50);
    config.health.timeout = Duration::from_millis(200);
    config.health.fall = 2;
    config.health.rise = 2;
    config.ejection.base = Duration::from_millis(500);
    config.ejection.max = Duration::from_secs(2);
    config.retry.budget = Duration::from_secs(3);
    config.server.drain_timeout = Duration::from_secs(1);
    config
}

/// A balancer on a loopback port 0 (testkit's spawner), stopped when dropped.
pub struct TestLb {
    pub addr: SocketAddr,
    pub reload: watch::Sender<Vec<String>>,
    server: testkit::Spawned<Result<(), lb::Error>>,
}

impl TestLb {
    pub async fn start(config: lb::Config) -> TestLb {
        let (reload, reload_rx) = watch::channel(config.backends.clone());
        TestLb::start_with_reload(config, reload, reload_rx).await
    }

    /// Starts with a reload channel made (and maybe already used) by the caller.
    pub async fn start_with_reload(
        config: lb::Config,
        reload: watch::Sender<Vec<String>>,
        reload_rx: watch::Receiver<Vec<String>>,
    ) -> TestLb {
        let server = testkit::spawn::spawn(move |listener, shutdown| {
            lb::run_with_reload(listener, config, reload_rx, shutdown)
        });
        TestLb {
            addr: server.addr,
            reload,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// Shuts down gracefully and waits (bounded) for `run` to return cleanly.
    pub async fn stop(mut self) {
        self.server.stop().await.expect("stopped twice").unwrap();
    }
}

/// A pooled keep-alive client for talking to the balancer.
pub type TestClient = testkit::Client;

pub fn client() -> TestClient {
    testkit::Client::new()
}

/// Sends one request and reads the whole answer (bounded in time).
pub async fn send(
    client: &TestClient,
    req: Request<testkit::client::Body>,
) -> Result<Answer, BoxError> {
    client.request(req).await
}

pub async fn get(client: &TestClient, url: &str) -> Answer {
    client.get(url).await
}

/// The balancer's JSON status.
pub async fn status(client: &TestClient, lb: &TestLb) -> serde_json::Value {
    get(client, &lb.url("/_lb/status")).await.json()
}

/// Whether the status page says `backend` is available.
pub fn available(status: &serde_json::Value, backend: &FakeBackend) -> bool {
    status["backends"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["addr"] == backend.authority() && b["available"] == true)
}

/// One request of a steady load.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub method: Method,
    /// The status, or `None` if the request failed without an answer.
    pub status: Option<StatusCode>,
    pub at: tokio::time::Instant,
}

/// A steady load of GETs (and a POST every `post_every` requests, 0 for none) by
/// `workers` concurrent clients, until stopped.
pub struct Load {
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<Vec<Outcome>>>,
    /// Requests finished so far, per worker.
    done: Arc<Vec<AtomicUsize>>,
}

impl Load {
    pub fn start(lb: &TestLb, workers: usize, post_every: usize) -> Load {
        let (stop, stopped) = watch::channel(false);
        let done: Arc<Vec<AtomicUsize>> =
            Arc::new((0..workers).map(|_| AtomicUsize::new(0)).collect());
        let workers = (0..workers)
            .map(|w| {
                let client = client();
                let base = lb.url("");
                let stopped = stopped.clone();
                let done = done.clone();
                tokio::spawn(async move {
                    let mut outcomes = vec![];
                    let mut i = 0usize;
                    while !*stopped.borrow() {
                        i += 1;
                        let post = post_every > 0 && i.is_multiple_of(post_every);
                        let (method, req) = if post {
                            let req = Request::post(format!("{base}/pastes"))
                                .body(body(format!("{{\"text\":\"w{w} r{i}\"}}")))
                                .unwrap();
                            (Method::POST, req)
                        } else {
                            let req = Request::get(format!("{base}/pastes/w{w}r{i}"))
                                .body(body(Bytes::new()))
                                .unwrap();
                            (Method::GET, req)
                        };
                        let result = send(&client, req).await;
                        outcomes.push(Outcome {
                            method,
                            status: result.ok().map(|a| a.status),
                            at: tokio::time::Instant::now(),
                        });
                        done[w].fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    outcomes
                })
            })
            .collect();
        Load {
            stop,
            workers,
            done,
        }
    }

    /// Waits until every worker has finished `n` more requests: every request that
    /// was in flight when this was called has then ended.
    pub async fn each_finishes(&self, n: usize) {
        let from: Vec<usize> = self.done.iter().map(|d| d.load(Ordering::SeqCst)).collect();
        testkit::eventually(
            &format!("every load worker finishes {n} more requests"),
            || {
                let done = self.done.clone();
                let from = from.clone();
                async move {
                    done.iter()
                        .zip(&from)
                        .all(|(d, f)| d.load(Ordering::SeqCst) >= f + n)
                }
            },
        )
        .await;
    }

    pub async fn stop(self) -> Vec<Outcome> {
        let _ = self.stop.send(true);
        let mut all = vec![];
        for worker in self.workers {
            all.extend(worker.await.unwrap());
        }
        all
    }
}

/// The outcomes that are not a 2xx answer.
pub fn failures(outcomes: &[Outcome], method: &Method) -> Vec<Outcome> {
    outcomes
        .iter()
        .filter(|o| o.method == *method && !o.status.is_some_and(|s| s.is_success()))
        .cloned()
        .collect()
}

/// Polls the status page until `backend`'s availability is `want` (generous deadline).
pub async fn wait_available(client: &TestClient, lb: &TestLb, backend: &FakeBackend, want: bool) {
    testkit::eventually(
        &format!("{} becomes available={want}", backend.name),
        || async { available(&status(client, lb).await, backend) == want },
    )
    .await;
}

/// The addresses in the balancer's current list, in order.
pub fn listed(status: &serde_json::Value) -> Vec<String> {
    status["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["addr"].as_str().unwrap().to_owned())
        .collect()
}
