//! One HTTP client for tests: pooled keep-alive, every exchange bounded in time, and
//! answers read whole into an [`Answer`] that asserts.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body: whole or streamed.
pub type Body = BoxBody<Bytes, BoxError>;

/// A whole body.
pub fn body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Longest a single exchange may take before the test fails: generous, since the
/// machine running the tests may be busy; a server that hangs still fails the test.
pub const EXCHANGE_LIMIT: Duration = Duration::from_secs(30);

/// A finished answer: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "answer {} is not JSON ({err}): {:?}",
                self.status,
                self.text()
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The paste id and delete token of a plain-text create's answer (its body is the
    /// paste's URL, the token in `X-Delete-Token`).
    pub fn created_plain(&self) -> (String, String) {
        let token = self
            .header("x-delete-token")
            .unwrap_or_else(|| panic!("no X-Delete-Token in the answer: {}", self.text()))
            .to_owned();
        let text = self.text();
        let id = text
            .trim_end()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        (id, token)
    }

    /// The name of the fake webserver that answered (its `x-backend` header), or "".
    pub fn backend(&self) -> String {
        self.header("x-backend").unwrap_or_default().to_owned()
    }

    /// Asserts the status, with the body in the failure message.
    pub fn assert_status(&self, status: StatusCode) -> &Self {
        assert_eq!(self.status, status, "body: {}", self.text());
        self
    }

    /// Asserts an error answer: exactly `status`, a JSON content type and a JSON
    /// body `{"error": "<non-empty string>"}`.
    pub fn assert_error(&self, status: StatusCode) -> &Self {
        self.assert_status(status);
        let content_type = self.header("content-type").unwrap_or("");
        assert!(
            content_type.starts_with("application/json"),
            "error answer {status} with content type {content_type:?}: {}",
            self.text()
        );
        let error = &self.json()["error"];
        assert!(
            error.as_str().is_some_and(|e| !e.is_empty()),
            "error body without an error message: {}",
            self.text()
        );
        self
    }
}

/// A pooled HTTP/1.1 client. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<HttpConnector, Body>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Self {
        Self {
            inner: hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_max_idle_per_host(64)
                .build(HttpConnector::new()),
        }
    }

    /// The underlying hyper client, for exchanges a test drives itself (streaming).
    pub fn hyper(&self) -> &hyper_util::client::legacy::Client<HttpConnector, Body> {
        &self.inner
    }

    pub async fn get(&self, url: &str) -> Answer {
        self.send(Method::GET, url, None).await
    }

    /// POSTs `json` as `application/json`.
    pub async fn post_json(&self, url: &str, json: &serde_json::Value) -> Answer {
        self.send(
            Method::POST,
            url,
            Some(("application/json", json.to_string().into())),
        )
        .await
    }

    /// `method url` with an optional `(content type, body)`; panics if no answer.
    pub async fn send(&self, method: Method, url: &str, body: Option<(&str, Bytes)>) -> Answer {
        let mut builder = Request::builder().method(method).uri(url);
        let bytes = match body {
            Some((content_type, bytes)) => {
                builder = builder.header("content-type", content_type);
                bytes
            }
            None => Bytes::new(),
        };
        self.request(builder.body(self::body(bytes)).unwrap())
            .await
            .unwrap_or_else(|err| panic!("{url}: no answer: {err}"))
    }

    /// Sends `req` and reads the whole answer, within [`EXCHANGE_LIMIT`]; an error if
    /// the exchange failed (refused, reset, truncated body) or took longer.
    pub async fn request(&self, req: Request<Body>) -> Result<Answer, BoxError> {
        self.request_within(req, EXCHANGE_LIMIT).await
    }

    pub async fn request_within(
        &self,
        req: Request<Body>,
        limit: Duration,
    ) -> Result<Answer, BoxError> {
        let exchange = async {
            let resp = self.inner.request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, BoxError>(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| BoxError::from(format!("no whole answer within {limit:?}")))?
    }
}

/// The text of paste `id` as the stores hold it, asked directly: sqlsvc at `sqlsvc`
/// for its path (`GET /pastes/{id}`), then nosqlsvc at `nosqlsvc` for the text
/// (`GET /texts/{path}`). No webserver's cache answers in between, so this proves
/// what is stored, where a read through a webserver may be a cache hit. None if
/// sqlsvc has no such paste; a row whose text nosqlsvc does not have fails the test.
/// An exchange that fails or answers neither 200 nor 404 (a store just restarted, a
/// pooled connection to the process that was killed) is retried, within
/// [`crate::wait::DEADLINE`].
pub async fn text_in_stores(
    client: &Client,
    sqlsvc: &str,
    nosqlsvc: &str,
    id: &str,
) -> Option<String> {
    let get = |url: String| async move {
        crate::wait::eventually_within(
            &format!("a 200 or 404 from {url}"),
            crate::wait::DEADLINE,
            || {
                let url = url.clone();
                async move {
                    let req = Request::get(&url).body(body("")).unwrap();
                    match client.request(req).await {
                        Ok(answer) if answer.status == StatusCode::OK => Some(Some(answer.json())),
                        Ok(answer) if answer.status == StatusCode::NOT_FOUND => Some(None),
                        _ => None,
                    }
                }
            },
        )
        .await
    };
    let meta = get(format!("http://{sqlsvc}/pastes/{id}")).await?;
    let path = meta["paste_path"]
        .as_str()
        .expect("a paste_path")
        .to_owned();
    let doc = get(format!("http://{nosqlsvc}/texts/{path}"))
        .await
        .unwrap_or_else(|| panic!("paste {id}: sqlsvc has a row, nosqlsvc no text at {path}"));
    Some(doc["text"].as_str().expect("a text").to_owned())
}
