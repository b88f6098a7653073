//! Fake webservers that record what they receive and can be slowed, hung, failed,
//! marked unhealthy, stopped (as if killed) and restarted on the same port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::AbortHandle;

use crate::client::{Body as TestBody, BoxError};

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
    /// A second socket bound to the port (SO_REUSEPORT, never listening): while the
    /// server is stopped, connections are refused and no other test can take the port,
    /// so a restart on the same port never races.
    _reserve: TcpSocket,
}

fn reuseport_socket(addr: SocketAddr) -> TcpSocket {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseport(true).unwrap();
    socket.bind(addr).unwrap();
    socket
}

impl FakeBackend {
    pub async fn start(name: &str) -> FakeBackend {
        let socket = reuseport_socket("127.0.0.1:0".parse().unwrap());
        let addr = socket.local_addr().unwrap();
        let reserve = reuseport_socket(addr);
        let listener = socket.listen(1024).unwrap();
        let backend = FakeBackend {
            name: name.to_owned(),
            addr,
            shared: Arc::new(Shared::default()),
            _reserve: reserve,
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

    /// Serves again on the same port (kept reserved while stopped).
    pub async fn restart(&self) {
        let listener = reuseport_socket(self.addr).listen(1024).unwrap();
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

/// What a [`FakeService`] does with one request.
pub enum Reply {
    /// This status and JSON body.
    Json(StatusCode, serde_json::Value),
    /// This status and these bytes as the body, whatever they are.
    Raw(StatusCode, &'static str),
    /// Never answers.
    Hang,
    /// Closes the connection without answering.
    Close,
}

/// One request a [`FakeService`] received, body read whole.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub body: Bytes,
}

type Script = Arc<
    dyn Fn(Received) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>>
        + Send
        + Sync,
>;

/// A fake internal service (a store) on a port-0 loopback listener, answering each
/// request as `script` says, and recording every request.
pub struct FakeService {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeService {
    /// `script` may be async (it can call other services before answering).
    pub fn start<F, Fut>(script: F) -> FakeService
    where
        F: Fn(Received) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Reply> + Send + 'static,
    {
        let script: Script = Arc::new(move |r| Box::pin(script(r)));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = TcpListener::from_std(std_listener).unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let script = script.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let script = script.clone();
                        let log = log.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let received = Received {
                                method: parts.method,
                                path: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                body,
                            };
                            log.lock().unwrap().push(received.clone());
                            match script(received).await {
                                Reply::Json(status, value) => Ok(text(status, &value.to_string())),
                                Reply::Raw(status, body) => Ok(text(status, body)),
                                Reply::Hang => std::future::pending().await,
                                Reply::Close => Err(std::io::Error::other("closing")),
                            }
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeService {
            addr,
            received,
            task,
        }
    }

    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for FakeService {
    fn drop(&mut self) {
        self.task.abort();
    }
}
