//! The pooled JSON client services use to call each other: one per process, built
//! once and cloned, keep-alive connections reused, every call bounded in time.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Settings of the pooled client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Time allowed to open a TCP connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole call: sending, waiting, reading the answer.
    pub request_timeout: Duration,
    /// Idle pooled connections are closed after this; kept below the servers'
    /// header-read timeout so the client, not the server, closes idle connections.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per upstream.
    pub pool_max_idle_per_host: usize,
    /// Largest answer accepted, in bytes.
    pub max_response_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(20),
            pool_max_idle_per_host: 256,
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why a call to another service failed, classified by who failed.
#[derive(Debug)]
pub enum ClientError {
    /// No connection to the upstream could be made (refused, unreachable): the
    /// request was never sent, so the upstream certainly did not act on it.
    NotSent(String),
    /// The upstream dropped the connection (or it broke) after the request may have
    /// been sent: it may or may not have acted on it.
    Unavailable(String),
    /// The upstream did not answer in time.
    Timeout,
    /// The upstream answered with a non-2xx status; `message` is its `error` field.
    Status { status: StatusCode, message: String },
    /// The upstream's answer was not what the protocol says (bad JSON, too large).
    BadResponse(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotSent(msg) => write!(f, "upstream unreachable: {msg}"),
            ClientError::Unavailable(msg) => write!(f, "upstream unavailable: {msg}"),
            ClientError::Timeout => write!(f, "upstream timed out"),
            ClientError::Status { status, message } => {
                write!(f, "upstream answered {status}: {message}")
            }
            ClientError::BadResponse(msg) => write!(f, "bad upstream response: {msg}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A keep-alive HTTP/1.1 client speaking JSON. Cheap to clone; clones share the pool.
#[derive(Clone, Debug)]
pub struct JsonClient {
    inner: Client<HttpConnector, Full<Bytes>>,
    config: ClientConfig,
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");

impl JsonClient {
    /// Builds the pool. Call once per process and clone.
    pub fn new(config: ClientConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let inner = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .build(connector);
        Self { inner, config }
    }

    /// GETs `url` and decodes the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, ClientError> {
        self.call(Method::GET, url, None).await
    }

    /// POSTs `body` as JSON to `url` and decodes the JSON answer.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|err| ClientError::BadResponse(format!("cannot encode request: {err}")))?;
        self.call(Method::POST, url, Some(Bytes::from(bytes))).await
    }

    /// DELETEs `url` and decodes the JSON answer.
    pub async fn delete_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, ClientError> {
        self.call(Method::DELETE, url, None).await
    }

    /// Sends one request and decodes the JSON answer, all within the request timeout.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
    ) -> Result<T, ClientError> {
        let bytes = self.call_raw(method, url, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|err| ClientError::BadResponse(format!("invalid JSON from {url}: {err}")))
    }

    /// Sends one request and returns the body of a 2xx answer.
    pub async fn call_raw(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
    ) -> Result<Bytes, ClientError> {
        let mut builder = Request::builder().method(method).uri(url);
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, JSON);
        }
        let req = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|err| ClientError::BadResponse(format!("bad request to {url}: {err}")))?;
        let limit = self.config.max_response_bytes;
        let exchange = async {
            let resp = self.inner.request(req).await.map_err(|err| {
                if err.is_connect() {
                    ClientError::NotSent(error_chain(&err))
                } else {
                    ClientError::Unavailable(error_chain(&err))
                }
            })?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map_err(|err| {
                    // An answer over the limit is a broken contract (limits follow
                    // from the body limit), not an unavailable service: 502, and the
                    // balancer does not try it on every webserver.
                    if err.is::<http_body_util::LengthLimitError>() {
                        ClientError::BadResponse(format!("answer larger than {limit} bytes"))
                    } else {
                        ClientError::Unavailable(format!("reading answer: {err}"))
                    }
                })?
                .to_bytes();
            Ok::<_, ClientError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.config.request_timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout)??;
        if status.is_success() {
            return Ok(bytes);
        }
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            error: String,
        }
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).chars().take(200).collect());
        Err(ClientError::Status { status, message })
    }
}

/// An error with its sources, for logs.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        msg.push_str(": ");
        msg.push_str(&inner.to_string());
        source = inner.source();
    }
    msg
}
