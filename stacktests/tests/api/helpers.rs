//! A whole stack in this process (sqlsvc, nosqlsvc, webservers, the balancer), every
//! server on its own port-0 listener, driven through the balancer with the testkit
//! client.

use std::time::Duration;

use http::{Method, StatusCode};
use tempfile::TempDir;
use testkit::spawn::{Shutdown, Spawned, spawn};
use tokio::net::TcpListener;

pub use testkit::{Answer, Client};

pub struct Stack {
    pub dir: TempDir,
    /// The sweeper's settings sqlsvc was started with (and restarts with).
    pub sweep: sqlsvc::SweepConfig,
    pub sqlsvc: Spawned,
    pub nosqlsvc: Spawned,
    pub webs: Vec<Spawned>,
    pub lb: Spawned,
    pub client: Client,
}

pub const MAX_BODY: usize = 64 * 1024;

/// How long a webserver waits for a store in these tests: generous for a busy
/// machine, and shorter than the client's own limit so a 504 can be told apart.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(10);

impl Stack {
    /// sqlsvc, nosqlsvc, two webservers and the balancer, on loopback port 0.
    pub async fn spawn() -> Stack {
        Self::spawn_with(2).await
    }

    pub async fn spawn_with(webservers: usize) -> Stack {
        Self::spawn_configured(webservers, |_| {}).await
    }

    /// The name the cache tests use for [`Stack::spawn_configured`].
    pub async fn spawn_tuned(webservers: usize, tune: impl Fn(&mut web::Config)) -> Stack {
        Self::spawn_configured(webservers, tune).await
    }

    /// Like [`Stack::spawn_with`], with each webserver's config adjusted by `adjust`.
    pub async fn spawn_configured(webservers: usize, adjust: impl Fn(&mut web::Config)) -> Stack {
        Self::spawn_full(webservers, adjust, |_| {}).await
    }

    /// Like [`Stack::spawn_configured`], with sqlsvc's sweeper settings adjusted too
    /// (by default: every 200 ms, orphans after an hour).
    pub async fn spawn_full(
        webservers: usize,
        adjust: impl Fn(&mut web::Config),
        sweep: impl Fn(&mut sqlsvc::SweepConfig),
    ) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let nosqlsvc = spawn(nosqlsvc_run(&dir));
        let mut sweep_config = sqlsvc::SweepConfig::new(&nosqlsvc.addr.to_string());
        sweep_config.interval = Duration::from_millis(200);
        sweep_config.orphan_grace = Duration::from_secs(3600);
        sweep(&mut sweep_config);
        let sqlsvc = spawn(sqlsvc_run(&dir, &sweep_config));
        let webs = (0..webservers)
            .map(|_| {
                let mut config = web_config(&sqlsvc, &nosqlsvc);
                adjust(&mut config);
                spawn(web_run(config))
            })
            .collect::<Vec<_>>();
        let mut config = lb::Config::new(webs.iter().map(|w| w.addr.to_string()).collect());
        config.max_body_bytes = MAX_BODY;
        let lb = spawn(move |listener, shutdown| async move {
            lb::run(listener, config, shutdown).await.unwrap();
        });
        let stack = Stack {
            dir,
            sweep: sweep_config,
            sqlsvc,
            nosqlsvc,
            webs,
            lb,
            client: Client::new(),
        };
        stack.wait_until_following().await;
        stack
    }

    /// Waits until every webserver has had its first answer from sqlsvc's deletion
    /// log. Before it, that first answer resets the webserver's cache (nothing cached
    /// earlier can be vouched for), so a paste a test reads to warm a cache could be
    /// dropped again after it, and a fetch under way is not kept.
    pub async fn wait_until_following(&self) {
        testkit::eventually(
            "every webserver has had its first deletion-log answer",
            || async {
                for web in &self.webs {
                    let resp = self.client.get(&web.url("/healthz")).await;
                    if resp.status != StatusCode::OK
                        || resp.json()["cache"]["deletion_log_position"].is_null()
                    {
                        return false;
                    }
                }
                true
            },
        )
        .await;
    }

    /// `http://lb-address` + `path`.
    pub fn url(&self, path: &str) -> String {
        self.lb.url(path)
    }

    /// `http://first-webserver-address` + `path`: past the balancer, so that what is
    /// tested is the webserver's own answer.
    pub fn web_url(&self, path: &str) -> String {
        self.webs[0].url(path)
    }

    /// Stops sqlsvc gracefully and starts it again on the same address and file.
    /// Returns once every webserver is ready again: a webserver that saw sqlsvc go
    /// away fails reads that need it fast until its next deletion-log poll answers
    /// (a quarter of a second later, or more on a busy machine), and says so on
    /// `/readyz`.
    pub async fn restart_sqlsvc(&mut self) {
        let run = sqlsvc_run(&self.dir, &self.sweep);
        self.sqlsvc.respawn(run).await;
        testkit::eventually(
            "every webserver is ready after sqlsvc's restart",
            || async {
                for web in &self.webs {
                    if self.client.get(&web.url("/readyz")).await.status != StatusCode::OK {
                        return false;
                    }
                }
                true
            },
        )
        .await;
    }

    /// Stops nosqlsvc gracefully and starts it again on the same address and data.
    pub async fn restart_nosqlsvc(&mut self) {
        let run = nosqlsvc_run(&self.dir);
        self.nosqlsvc.respawn(run).await;
    }

    /// POSTs a JSON paste and returns its id (asserting a 201).
    pub async fn create(&self, text: &str) -> String {
        let resp = self
            .client
            .post_json(&self.url("/pastes/"), &serde_json::json!({ "text": text }))
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
        resp.json()["paste_id"].as_str().unwrap().to_owned()
    }

    /// Writes a paste straight to the two stores, as a webserver's create does, so
    /// that no webserver holds it in its cache (a webserver keeps what it creates).
    /// Only in a stack without prefetching (`cache_prefetch = false`): otherwise every
    /// webserver caches it from sqlsvc's creations within a poll (250 ms).
    pub async fn create_in_stores(&self, text: &str) -> String {
        let resp = self
            .client
            .post_json(
                &format!("http://{}/texts", self.nosqlsvc.addr),
                &serde_json::json!({ "text": text }),
            )
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
        let path = resp.json()["paste_path"].as_str().unwrap().to_owned();
        let resp = self
            .client
            .post_json(
                &format!("http://{}/pastes", self.sqlsvc.addr),
                &serde_json::json!({ "paste_path": path, "size": text.len() }),
            )
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
        resp.json()["paste_id"].as_str().unwrap().to_owned()
    }

    /// `GET /pastes/{id}` through the balancer.
    pub async fn read(&self, id: &str) -> Answer {
        self.client.get(&self.url(&format!("/pastes/{id}"))).await
    }

    /// The ids listed by `GET /pastes?limit=500`.
    pub async fn listed(&self) -> Vec<String> {
        let listed = self.client.get(&self.url("/pastes?limit=500")).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.text());
        listed
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["paste_id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `method path` with an optional `(content type, body)`, through the balancer.
    pub async fn send(&self, method: Method, path: &str, body: Option<(&str, &str)>) -> Answer {
        self.client
            .send(
                method,
                &self.url(path),
                body.map(|(ct, b)| (ct, bytes::Bytes::from(b.to_owned()))),
            )
            .await
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

/// A webserver config for the stack's stores, with the test limits.
pub fn web_config(sqlsvc: &Spawned, nosqlsvc: &Spawned) -> web::Config {
    let mut config = web::Config::new(sqlsvc.addr.to_string(), nosqlsvc.addr.to_string());
    config.max_body_bytes = MAX_BODY;
    config.client.request_timeout = STORE_TIMEOUT;
    config
}

pub fn web_run(
    config: web::Config,
) -> impl FnOnce(TcpListener, Shutdown) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    move |listener, shutdown| {
        Box::pin(async move {
            web::run(listener, config, shutdown).await.unwrap();
        })
    }
}

fn sqlsvc_run(
    dir: &TempDir,
    sweep: &sqlsvc::SweepConfig,
) -> impl FnOnce(TcpListener, Shutdown) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    let config = sqlsvc::Config {
        db_path: dir.path().join("meta.sqlite3"),
        readers: sqlsvc::default_readers(),
        server: httpkit::ServerConfig::default(),
        sweeper: Some(sweep.clone()),
    };
    move |listener, shutdown| {
        Box::pin(async move {
            sqlsvc::run(listener, config, shutdown).await.unwrap();
        })
    }
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

fn nosqlsvc_run(
    dir: &TempDir,
) -> impl FnOnce(TcpListener, Shutdown) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    let config = nosqlsvc::Config {
        backend: text_backend(dir),
        max_body_bytes: MAX_BODY * 6 + 1024,
        server: httpkit::ServerConfig::default(),
    };
    move |listener, shutdown| {
        Box::pin(async move {
            nosqlsvc::run(listener, config, shutdown).await.unwrap();
        })
    }
}
