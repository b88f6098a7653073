//! Test helpers: start sqlsvc on port 0 over a temporary database, a pooled client,
//! and a raw HTTP/1.1 helper that exposes status and headers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use sqlsvc::api::Meta;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Every network step of a test is bounded by this.
pub const STEP: Duration = Duration::from_secs(10);

/// A running sqlsvc.
pub struct TestApp {
    pub addr: SocketAddr,
    dir: Option<TempDir>,
    pub db_path: PathBuf,
    pub client: httpkit::JsonClient,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), sqlsvc::Error>>>,
}

/// Starts sqlsvc over a fresh temporary directory (the db in a subdirectory that does
/// not exist yet, to exercise its creation).
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    spawn_app_in(dir).await
}

/// Starts sqlsvc over `dir/nested/meta.db`.
pub async fn spawn_app_in(dir: TempDir) -> TestApp {
    httpkit::logging::init_for_tests("off");
    let db_path = dir.path().join("nested").join("meta.db");
    let (listener, addr) = httpkit::server::bind_ephemeral().await.unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let config = sqlsvc::Config {
        db_path: db_path.clone(),
        readers: sqlsvc::default_readers(),
        server: httpkit::ServerConfig {
            drain_timeout: Duration::from_secs(2),
            ..httpkit::ServerConfig::default()
        },
    };
    let task = tokio::spawn(sqlsvc::run(listener, config, async {
        let _ = rx.await;
    }));
    let client = httpkit::JsonClient::new(httpkit::ClientConfig {
        request_timeout: STEP,
        ..httpkit::ClientConfig::default()
    });
    let app = TestApp {
        addr,
        dir: Some(dir),
        db_path,
        client,
        shutdown: Some(tx),
        task: Some(task),
    };
    // `run` opens the database before serving; wait until it answers.
    for _ in 0..200 {
        if app.get("/healthz").await.0 == 200 {
            return app;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("sqlsvc did not become healthy");
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server, asserts that `run` ended cleanly, and hands back the directory.
    pub async fn stop(mut self) -> TempDir {
        let _ = self.shutdown.take().unwrap().send(());
        let result = tokio::time::timeout(STEP, self.task.take().unwrap())
            .await
            .expect("run did not return")
            .expect("run panicked");
        result.expect("run failed");
        self.dir.take().unwrap()
    }

    /// Creates a paste through the API and returns it.
    pub async fn create(&self, path: &str) -> Meta {
        let (status, _, body) = self
            .request(
                "POST",
                "/pastes",
                Some(&format!(r#"{{"paste_path":"{path}"}}"#)),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, body) = self.request("GET", path, None).await;
        (status, body)
    }

    /// One request on a fresh connection; returns status, headers (lowercase names)
    /// and the JSON body (Null if empty).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Vec<(String, String)>, Value) {
        raw_request(self.addr, method, path, body.map(str::as_bytes)).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and parses the answer.
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> (u16, Vec<(String, String)>, Value) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        answer
    };
    let answer = tokio::time::timeout(STEP, exchange)
        .await
        .expect("request timed out");
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
    };
    (status, headers, body)
}

/// The value of header `name` (lowercase).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Inserts a row straight into the database file (for rows the API refuses, such as
/// already-expired ones), after every row the service has written.
pub fn insert_row(db_path: &std::path::Path, id: &str, expires_at: Option<i64>) {
    let conn = rusqlite::Connection::open(db_path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute(
        "INSERT INTO pastes (paste_id, paste_path, created_at, expires_at, size, seq) \
         VALUES (?1, 'direct', ?2, ?3, NULL, (SELECT COALESCE(MAX(seq), 0) + 1 FROM pastes))",
        rusqlite::params![id, now() - 10, expires_at],
    )
    .unwrap();
}
