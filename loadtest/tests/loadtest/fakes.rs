//! Fake servers for the tests: a pastebin API in memory (optionally altering what it
//! reads back or answering creates wrongly), a server that stalls once, one that
//! never answers.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use loadtest::{RunPlan, Target, Workload};
use tokio::sync::watch;

/// A server running in this test, stopped when dropped.
pub struct Running {
    pub url: String,
    _server: testkit::Spawned,
}

pub async fn start<H: httpkit::Handler>(handler: H) -> Running {
    let handler = Arc::new(handler);
    let server = testkit::spawn::spawn(move |listener, shutdown| {
        httpkit::serve(
            listener,
            handler,
            httpkit::ServerConfig::default(),
            shutdown,
        )
    });
    Running {
        url: server.url(""),
        _server: server,
    }
}

/// How the fake pastebin misbehaves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lie {
    None,
    /// Every read returns the text with its last character changed.
    AlterText,
    /// Creates answer 201 with a JSON body lacking `paste_id`.
    BadCreate,
}

pub struct FakePastebin {
    texts: Mutex<HashMap<String, String>>,
    next: AtomicU64,
    lie: Lie,
}

impl FakePastebin {
    pub fn new(lie: Lie) -> FakePastebin {
        FakePastebin {
            texts: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            lie,
        }
    }
}

impl httpkit::Handler for FakePastebin {
    async fn handle(&self, req: Request<Incoming>, _peer: SocketAddr) -> Response<httpkit::Body> {
        {
            let path = req.uri().path().to_owned();
            match (req.method().clone(), path.as_str()) {
                (Method::POST, "/pastes/") => {
                    let body = httpkit::read_body(req, 1 << 20).await.unwrap();
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let text = v["text"].as_str().unwrap().to_owned();
                    let id = format!("Id{}", self.next.fetch_add(1, Ordering::Relaxed));
                    self.texts.lock().unwrap().insert(id.clone(), text);
                    let answer = match self.lie {
                        Lie::BadCreate => serde_json::json!({"id": id}),
                        Lie::None | Lie::AlterText => {
                            serde_json::json!({"paste_id": id, "url": format!("http://x/pastes/{id}")})
                        }
                    };
                    httpkit::json_response(StatusCode::CREATED, &answer)
                }
                (Method::GET, "/pastes") => {
                    httpkit::json_response(StatusCode::OK, &serde_json::json!([{"paste_id": "a"}]))
                }
                (Method::GET, p) if p.starts_with("/pastes/") => {
                    let id = &p["/pastes/".len()..];
                    let text = self.texts.lock().unwrap().get(id).cloned();
                    match text {
                        None => httpkit::error_response(StatusCode::NOT_FOUND, "no such paste"),
                        Some(mut text) => {
                            if self.lie == Lie::AlterText {
                                text.pop();
                                text.push('~');
                            }
                            httpkit::json_response(
                                StatusCode::OK,
                                &serde_json::json!({"paste_id": id, "text": text}),
                            )
                        }
                    }
                }
                _ => httpkit::error_response(StatusCode::NOT_FOUND, "no such route"),
            }
        }
    }
}

/// Answers at once, except the `stall_at`-th request, which waits `stall` first.
pub struct StallOnce {
    pub count: AtomicU64,
    pub stall_at: u64,
    pub stall: Duration,
}

impl httpkit::Handler for StallOnce {
    fn handle(
        &self,
        _req: Request<Incoming>,
        _peer: SocketAddr,
    ) -> impl Future<Output = Response<httpkit::Body>> + Send {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let stall = (n == self.stall_at).then_some(self.stall);
        async move {
            if let Some(d) = stall {
                tokio::time::sleep(d).await;
            }
            Response::new(httpkit::full("ok"))
        }
    }
}

/// Never answers.
pub struct Silent;

impl httpkit::Handler for Silent {
    fn handle(
        &self,
        _req: Request<Incoming>,
        _peer: SocketAddr,
    ) -> impl Future<Output = Response<httpkit::Body>> + Send {
        std::future::pending()
    }
}

/// A short plan: no warm-up, no progress line.
pub fn plan(workload: Workload, connections: usize, duration: Duration) -> RunPlan {
    RunPlan {
        connections,
        rate: None,
        warmup: Duration::ZERO,
        duration,
        timeout: Duration::from_secs(5),
        seed: 7,
        workload,
        progress: false,
    }
}

/// Runs `plan` against `url` with a stop signal that never fires.
pub async fn run(url: &str, plan: &RunPlan) -> loadtest::RunResult {
    let target = Target::resolve(url).await.unwrap();
    let (_tx, rx) = watch::channel(false);
    tokio::time::timeout(
        plan.latency_bound() + Duration::from_secs(10),
        loadtest::run(&target, plan, rx),
    )
    .await
    .expect("the run must end by itself")
    .unwrap()
}
