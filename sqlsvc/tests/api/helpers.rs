//! Test helpers: start sqlsvc on port 0 over a temporary database (testkit's
//! spawner), a pooled client, and raw HTTP/1.1 exchanges (testkit's) that expose
//! status and headers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use sqlsvc::api::Meta;
use tempfile::TempDir;
use testkit::spawn::Spawned;

/// Every network step of a test is bounded by this.
pub const STEP: Duration = Duration::from_secs(30);

/// A running sqlsvc.
pub struct TestApp {
    pub addr: SocketAddr,
    dir: Option<TempDir>,
    pub db_path: PathBuf,
    pub client: httpkit::JsonClient,
    server: Spawned<Result<(), sqlsvc::Error>>,
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
    let config = sqlsvc::Config {
        db_path: db_path.clone(),
        readers: sqlsvc::default_readers(),
        server: httpkit::ServerConfig {
            drain_timeout: Duration::from_secs(2),
            ..httpkit::ServerConfig::default()
        },
        sweeper: None,
    };
    let server =
        testkit::spawn::spawn(move |listener, shutdown| sqlsvc::run(listener, config, shutdown));
    let addr = server.addr;
    let client = httpkit::JsonClient::new(httpkit::ClientConfig {
        request_timeout: STEP,
        ..httpkit::ClientConfig::default()
    });
    let app = TestApp {
        addr,
        dir: Some(dir),
        db_path,
        client,
        server,
    };
    // `run` opens the database before serving; wait until it answers.
    testkit::eventually("sqlsvc answers /healthz", || async {
        app.get("/healthz").await.0 == 200
    })
    .await;
    app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server, asserts that `run` ended cleanly, and hands back the directory.
    pub async fn stop(mut self) -> TempDir {
        let result = self.server.stop().await.expect("stopped twice");
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

/// Sends one HTTP/1.1 request with `Connection: close` and parses the answer:
/// status, headers (lowercase names) and the JSON body (Null if empty).
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> (u16, Vec<(String, String)>, Value) {
    let request = testkit::raw::request(
        method,
        path,
        &[
            ("Content-Type", "application/json"),
            (
                "Content-Length",
                &body.unwrap_or_default().len().to_string(),
            ),
        ],
        body.unwrap_or_default(),
    );
    let answer = testkit::raw::exchange_within(addr, &request, STEP).await;
    let head = answer.head();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if answer.body().is_empty() {
        Value::Null
    } else {
        answer.json()
    };
    (answer.status(), headers, body)
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
