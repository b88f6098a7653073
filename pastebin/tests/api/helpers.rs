//! Starts a whole stack in this process, every server on its own port 0 listener, and
//! a small HTTP client to drive it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One server task and the means to stop it.
pub struct Service {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Service {
    /// Signals shutdown and waits (bounded) for the server to drain and exit.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("server did not stop within 15 s")
                .expect("server task panicked");
        }
    }
}

async fn bind(addr: &str) -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn spawn_service<F>(addr: SocketAddr, run: impl FnOnce(oneshot::Receiver<()>) -> F) -> Service
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    Service {
        addr,
        stop: Some(tx),
        task: Some(tokio::spawn(run(rx))),
    }
}

async fn signal(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

pub struct Stack {
    pub dir: TempDir,
    pub sqlsvc: Service,
    pub nosqlsvc: Service,
    pub webs: Vec<Service>,
    pub lb: Service,
    pub client: TestClient,
}

pub const MAX_BODY: usize = 64 * 1024;

impl Stack {
    /// sqlsvc, nosqlsvc, two webservers and the balancer, on loopback port 0.
    pub async fn spawn() -> Stack {
        Self::spawn_with(2).await
    }

    pub async fn spawn_with(webservers: usize) -> Stack {
        Self::spawn_tuned(webservers, |_| {}).await
    }

    /// Like `spawn_with`, with each webserver's config passed through `tune` first.
    pub async fn spawn_tuned(webservers: usize, tune: impl Fn(&mut web::Config)) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let sqlsvc = start_sqlsvc(&dir, "127.0.0.1:0").await;
        let nosqlsvc = start_nosqlsvc(&dir, "127.0.0.1:0").await;
        let mut webs = Vec::new();
        for _ in 0..webservers {
            let (listener, addr) = bind("127.0.0.1:0").await;
            let mut config = web::Config::new(sqlsvc.addr.to_string(), nosqlsvc.addr.to_string());
            config.max_body_bytes = MAX_BODY;
            config.client.request_timeout = Duration::from_secs(5);
            tune(&mut config);
            webs.push(spawn_service(addr, move |rx| async move {
                web::run(listener, config, signal(rx)).await.unwrap();
            }));
        }
        let (listener, addr) = bind("127.0.0.1:0").await;
        let mut config = lb::Config::new(webs.iter().map(|w| w.addr.to_string()).collect());
        config.max_body_bytes = MAX_BODY;
        let lb = spawn_service(addr, move |rx| async move {
            lb::run(listener, config, signal(rx)).await.unwrap();
        });
        Stack {
            dir,
            sqlsvc,
            nosqlsvc,
            webs,
            lb,
            client: TestClient::new(),
        }
    }

    /// `http://lb-address` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.lb.addr, path)
    }

    pub async fn restart_sqlsvc(&mut self) {
        self.sqlsvc.stop().await;
        self.sqlsvc = start_sqlsvc(&self.dir, &self.sqlsvc.addr.to_string()).await;
    }

    pub async fn restart_nosqlsvc(&mut self) {
        self.nosqlsvc.stop().await;
        self.nosqlsvc = start_nosqlsvc(&self.dir, &self.nosqlsvc.addr.to_string()).await;
    }

    pub async fn start_sqlsvc_again(&mut self) {
        self.sqlsvc = start_sqlsvc(&self.dir, &self.sqlsvc.addr.to_string()).await;
    }

    /// POSTs a JSON paste and returns its id (asserting a 201).
    pub async fn create(&self, text: &str) -> String {
        let body = serde_json::json!({ "text": text }).to_string();
        let resp = self
            .client
            .send(
                Method::POST,
                &self.url("/pastes/"),
                Some(("application/json", body.into())),
            )
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
        resp.json()["paste_id"].as_str().unwrap().to_owned()
    }

    /// Asserts that every service behind the balancer answers its `/healthz` directly.
    pub async fn assert_all_healthy(&self) {
        let addrs = [self.sqlsvc.addr, self.nosqlsvc.addr]
            .into_iter()
            .chain(self.webs.iter().map(|w| w.addr));
        for addr in addrs {
            let resp = self.client.get(&format!("http://{addr}/healthz")).await;
            assert_eq!(resp.status, StatusCode::OK, "{addr}: {}", resp.text());
        }
    }

    pub async fn shutdown(mut self) {
        self.lb.stop().await;
        for web in &mut self.webs {
            web.stop().await;
        }
        self.sqlsvc.stop().await;
        self.nosqlsvc.stop().await;
    }
}

async fn start_sqlsvc(dir: &TempDir, addr: &str) -> Service {
    let (listener, addr) = bind(addr).await;
    let config = sqlsvc::Config {
        db_path: dir.path().join("meta.sqlite3"),
        readers: sqlsvc::default_readers(),
        server: httpkit::ServerConfig::default(),
    };
    spawn_service(addr, move |rx| async move {
        sqlsvc::run(listener, config, signal(rx)).await.unwrap();
    })
}

/// The text store the API tests run on: the embedded one, or with
/// `PASTEBIN_TEST_NOSQL=mongodb` the MongoDB server at `PASTEBIN_TEST_MONGODB_URI`
/// (one collection per stack, named after its temporary directory).
fn text_backend(dir: &TempDir) -> nosqlsvc::BackendConfig {
    match std::env::var("PASTEBIN_TEST_NOSQL").as_deref() {
        Ok("mongodb") => {
            let uri = std::env::var("PASTEBIN_TEST_MONGODB_URI")
                .expect("PASTEBIN_TEST_NOSQL=mongodb needs PASTEBIN_TEST_MONGODB_URI");
            let mut config = nosqlsvc::MongoConfig::new(uri);
            config.database = "pastebin_api_tests".into();
            let name = dir.path().file_name().unwrap().to_string_lossy();
            config.collection = format!(
                "texts_{}",
                name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            );
            nosqlsvc::BackendConfig::MongoDb(config)
        }
        Ok("embedded") | Err(_) => nosqlsvc::BackendConfig::Embedded {
            path: dir.path().join("texts.redb"),
            cache_bytes: nosqlsvc::DEFAULT_EMBEDDED_CACHE_BYTES,
        },
        Ok(other) => panic!("PASTEBIN_TEST_NOSQL must be embedded or mongodb, not {other:?}"),
    }
}

async fn start_nosqlsvc(dir: &TempDir, addr: &str) -> Service {
    let (listener, addr) = bind(addr).await;
    let config = nosqlsvc::Config {
        backend: text_backend(dir),
        max_body_bytes: MAX_BODY * 6 + 1024,
        server: httpkit::ServerConfig::default(),
    };
    spawn_service(addr, move |rx| async move {
        nosqlsvc::run(listener, config, signal(rx)).await.unwrap();
    })
}

/// A response, read whole.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an error answer: `status`, a JSON body with an `error` string.
    pub fn assert_error(&self, status: StatusCode) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert!(
            self.json()["error"].is_string(),
            "error body without an error field: {}",
            self.text()
        );
    }
}

#[derive(Clone)]
pub struct TestClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl TestClient {
    pub fn new() -> Self {
        Self {
            inner: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    pub async fn get(&self, url: &str) -> Resp {
        self.send(Method::GET, url, None).await
    }

    pub async fn send(&self, method: Method, url: &str, body: Option<(&str, Bytes)>) -> Resp {
        let mut builder = Request::builder().method(method).uri(url);
        let body = match body {
            Some((content_type, bytes)) => {
                builder = builder.header("content-type", content_type);
                bytes
            }
            None => Bytes::new(),
        };
        self.request(builder.body(Full::new(body)).unwrap()).await
    }

    pub async fn request(&self, req: Request<Full<Bytes>>) -> Resp {
        let fut = async {
            let resp = self.inner.request(req).await.expect("request failed");
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.expect("body").to_bytes();
            Resp {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        };
        tokio::time::timeout(Duration::from_secs(20), fut)
            .await
            .expect("request took more than 20 s")
    }
}
