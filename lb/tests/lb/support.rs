//! Test support: in-process fake webservers that record what they receive and can be
//! slowed, hung, failed or stopped, a balancer on port 0, and a plain client.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{AbortHandle, JoinHandle};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type TestBody = BoxBody<Bytes, BoxError>;

/// How a fake webserver answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// 200 with a JSON body naming the backend.
    Normal,
    /// Like `Normal` after a delay.
    Slow(Duration),
    /// Accepts and reads requests but never answers (health checks too).
    Hang,
    /// Answers every request (not health checks) with this status.
    Status(u16),
    /// Health checks answer 503; other requests are normal.
    Unhealthy,
}

/// One request a fake webserver received (health checks are only counted).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body_len: usize,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    connections: AtomicUsize,
    health_checks: AtomicUsize,
    behaviour: Mutex<Option<Behaviour>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// A fake webserver on a loopback port.
pub struct FakeBackend {
    pub name: String,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeBackend {
    pub async fn start(name: &str) -> FakeBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backend = FakeBackend {
            name: name.to_owned(),
            addr,
            shared: Arc::new(Shared::default()),
        };
        backend.set(Behaviour::Normal);
        backend.serve(listener);
        backend
    }

    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = Some(behaviour);
    }

    /// Requests received so far (health checks excluded).
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn hits(&self) -> usize {
        self.shared.seen.lock().unwrap().len()
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    pub fn health_checks(&self) -> usize {
        self.shared.health_checks.load(Ordering::SeqCst)
    }

    /// Kills the server: the listener and every open connection are closed at once,
    /// as if the process died.
    pub fn stop(&self) {
        for task in self.shared.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Serves again on the same port.
    pub async fn restart(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(err) if tries < 50 => {
                    tries += 1;
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => panic!("cannot rebind {}: {err}", self.addr),
            }
        };
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let name = self.name.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared2 = shared.clone();
                let name = name.clone();
                let service = service_fn(move |req| {
                    let shared = shared2.clone();
                    let name = name.clone();
                    async move { Ok::<_, Infallible>(answer(req, &shared, &name).await) }
                });
                let conn = tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                shared.tasks.lock().unwrap().push(conn.abort_handle());
            }
        });
        self.shared
            .tasks
            .lock()
            .unwrap()
            .push(accept.abort_handle());
    }
}

impl Drop for FakeBackend {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn answer(req: Request<Incoming>, shared: &Shared, name: &str) -> Response<TestBody> {
    let behaviour = shared
        .behaviour
        .lock()
        .unwrap()
        .clone()
        .unwrap_or(Behaviour::Normal);
    if req.uri().path() == "/healthz" {
        shared.health_checks.fetch_add(1, Ordering::SeqCst);
        return match behaviour {
            Behaviour::Hang => std::future::pending().await,
            Behaviour::Unhealthy => text(StatusCode::SERVICE_UNAVAILABLE, "down"),
            _ => text(StatusCode::OK, "ok"),
        };
    }
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();

    // /echo streams the request body straight back.
    if parts.uri.path() == "/echo" {
        record(shared, &parts, usize::MAX);
        let mut resp = Response::new(body.map_err(BoxError::from).boxed());
        resp.headers_mut()
            .insert("x-backend", HeaderValue::from_str(name).unwrap());
        return resp;
    }
    let body_len = body
        .collect()
        .await
        .map(|c| c.to_bytes().len())
        .unwrap_or(0);
    record(shared, &parts, body_len);
    match behaviour {
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Slow(delay) => tokio::time::sleep(delay).await,
        Behaviour::Status(code) => {
            return text(StatusCode::from_u16(code).unwrap(), "{\"error\":\"fake\"}");
        }
        Behaviour::Normal | Behaviour::Unhealthy => {}
    }
    // /big?n streams n bytes in 64 KiB chunks.
    if parts.uri.path() == "/big" {
        let n: usize = parts.uri.query().and_then(|q| q.parse().ok()).unwrap_or(0);
        let chunks = (0..n.div_ceil(65536)).map(move |i| {
            let len = 65536.min(n - i * 65536);
            Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'x'; len])))
        });
        let stream = futures_util::stream::iter(chunks);
        let mut resp = Response::new(StreamBody::new(stream).boxed());
        resp.headers_mut()
            .insert("x-backend", HeaderValue::from_str(name).unwrap());
        return resp;
    }
    let mut resp = text(
        StatusCode::OK,
        &format!("{{\"backend\":\"{name}\",\"path\":\"{path}\",\"body_len\":{body_len}}}"),
    );
    let headers = resp.headers_mut();
    headers.insert("x-backend", HeaderValue::from_str(name).unwrap());
    // Hop-by-hop headers the balancer must not pass on to the client.
    headers.insert("connection", HeaderValue::from_static("x-hop-secret"));
    headers.insert("x-hop-secret", HeaderValue::from_static("1"));
    headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    headers.insert("proxy-authenticate", HeaderValue::from_static("Basic"));
    headers.insert("upgrade", HeaderValue::from_static("h2c"));
    headers.insert("x-end-to-end", HeaderValue::from_static("kept"));
    resp
}

fn record(shared: &Shared, parts: &http::request::Parts, body_len: usize) {
    shared.seen.lock().unwrap().push(Seen {
        method: parts.method.clone(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers.clone(),
        body_len,
    });
}

fn text(status: StatusCode, body: &str) -> Response<TestBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body.to_owned()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

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

/// A balancer on a loopback port 0, stopped when dropped.
pub struct TestLb {
    pub addr: SocketAddr,
    pub reload: watch::Sender<Vec<String>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), lb::Error>>,
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
        let (listener, addr) = httpkit::server::bind_ephemeral().await.unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(lb::run_with_reload(listener, config, reload_rx, async {
            let _ = rx.await;
        }));
        TestLb {
            addr,
            reload,
            shutdown: Some(tx),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Shuts down gracefully and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = &mut self.task;
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("lb did not stop in time")
            .unwrap()
            .unwrap();
    }
}

impl Drop for TestLb {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain keep-alive client for talking to the balancer.
pub type TestClient = Client<HttpConnector, TestBody>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build(HttpConnector::new())
}

pub fn body(bytes: impl Into<Bytes>) -> TestBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A finished answer: status, headers and body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "not JSON ({err}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn backend(&self) -> String {
        self.headers
            .get("x-backend")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

/// Sends one request and reads the whole answer, within 10 s.
pub async fn send(client: &TestClient, req: Request<TestBody>) -> Result<Answer, BoxError> {
    let exchange = async {
        let resp = client.request(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, BoxError>(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| BoxError::from("test request timed out"))?
}

pub async fn get(client: &TestClient, url: &str) -> Answer {
    let req = Request::get(url).body(body(Bytes::new())).unwrap();
    send(client, req).await.unwrap()
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
}

impl Load {
    pub fn start(lb: &TestLb, workers: usize, post_every: usize) -> Load {
        let (stop, stopped) = watch::channel(false);
        let workers = (0..workers)
            .map(|w| {
                let client = client();
                let base = lb.url("");
                let stopped = stopped.clone();
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
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    outcomes
                })
            })
            .collect();
        Load { stop, workers }
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

/// Polls the status page until `backend`'s availability is `want`, failing after `within`.
pub async fn wait_available(
    client: &TestClient,
    lb: &TestLb,
    backend: &FakeBackend,
    want: bool,
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let status = status(client, lb).await;
        if available(&status, backend) == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never became available={want}: {status}",
            backend.name
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A loopback address nothing listens on.
pub fn dead_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}
