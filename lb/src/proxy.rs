//! Forwarding one request: edge checks, header rewriting, the attempt loop with its
//! retry rules and passive ejection, and the streamed response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::backend::{Backend, Registry};
use crate::body::{BodySource, ForwardBody, InFlight, ResponseBody};
use crate::headers::{Origin, prepare_request, strip_hop_by_hop};
use crate::metrics::Totals;
use crate::{Config, ProxyError};

/// The one pooled keep-alive client of the process (proxying and health checks).
pub type HttpClient = Client<HttpConnector, ForwardBody>;

/// Builds the pooled client.
pub fn build_client(config: &Config) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .build(connector)
}

/// How one attempt failed.
enum Failure {
    /// The connection could not be opened: nothing was sent.
    NotSent(hyper_util::client::legacy::Error),
    /// The connection failed after the request may have been (partly) sent.
    Broken(hyper_util::client::legacy::Error),
    /// No response headers within the timeout while the webserver had the whole body
    /// (or was not reading it).
    Timeout,
}

/// What forwarding needs, shared by every request.
pub struct Proxy {
    pub client: HttpClient,
    pub registry: Arc<Registry>,
    pub config: Arc<Config>,
    pub totals: Arc<Totals>,
}

impl Proxy {
    /// Forwards `req` from `peer` to a webserver, retrying per the rules of
    /// [`crate::RetryConfig`], and streams the answer back.
    pub async fn forward(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<httpkit::Body>, ProxyError> {
        let (parts, body) = req.into_parts();
        let limit = self.config.max_body_bytes;
        if declared_length(&parts.headers).is_some_and(|len| len > limit as u64) {
            return Err(ProxyError::TooLarge);
        }
        let path_and_query = parts.uri.path_and_query().cloned();
        if parts.method == Method::CONNECT
            || path_and_query
                .as_ref()
                .is_some_and(|pq| !pq.as_str().starts_with('/'))
        {
            return Err(ProxyError::BadTarget);
        }
        let mut headers = parts.headers;
        let origin = Origin {
            client: peer.ip(),
            trusted: self.config.is_trusted(peer.ip()),
            uri_authority: parts.uri.authority().map(|a| a.as_str()),
            fallback_host: self.config.fallback_host.as_deref(),
        };
        prepare_request(&mut headers, &origin).map_err(|_| ProxyError::NoHost)?;
        let method = parts.method;
        let source = BodySource::new(body, limit, self.config.request_body_idle_timeout);
        let idempotent = method == Method::GET || method == Method::HEAD;
        let retry = &self.config.retry;
        let deadline = Instant::now() + retry.budget;

        // Webservers of the failed attempts; allocates only when a retry happens.
        let mut tried: Vec<Arc<Backend>> = Vec::new();
        let mut idempotent_retry_used = false;
        let mut last_error = ProxyError::NoBackend;
        loop {
            let retries = tried.len() as u64;
            if retries > u64::from(retry.max_retries) {
                return Err(last_error);
            }
            let Some(backend) = self.registry.pick(&tried) else {
                return Err(last_error);
            };
            let Some(body) = source.attempt() else {
                return Err(last_error);
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ProxyError::Timeout);
            }
            if retries > 0 {
                self.totals.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(backend = backend.addr(), %method, "retrying");
            }
            let can_retry_more = retries < u64::from(retry.max_retries);
            let mut upstream = Request::new(body);
            *upstream.method_mut() = method.clone();
            *upstream.uri_mut() = backend
                .uri_for(path_and_query.as_ref())
                .map_err(|_| ProxyError::BadTarget)?;
            *upstream.headers_mut() = headers.clone();

            let timeout = self.config.response_timeout.min(remaining);
            match self.send(&backend, upstream, &source, timeout).await {
                Ok((resp, in_flight)) => {
                    let status = resp.status();
                    let retry_status = status == StatusCode::BAD_GATEWAY
                        || status == StatusCode::SERVICE_UNAVAILABLE;
                    if retry_status
                        && idempotent
                        && !idempotent_retry_used
                        && can_retry_more
                        && source.replayable()
                    {
                        tried.push(backend.clone());
                        if self.registry.has_other(&tried) {
                            tracing::debug!(backend = backend.addr(), %status, "retrying idempotent request");
                            idempotent_retry_used = true;
                            last_error = ProxyError::Unreachable;
                            continue;
                        }
                    }
                    backend.record_success();
                    return Ok(self.response(resp, in_flight));
                }
                Err(Failure::NotSent(err)) => {
                    tracing::debug!(backend = backend.addr(), err = %httpkit::error_chain(&err), "connect failed");
                    backend.stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                    backend.eject(&self.config.ejection, "connect failed");
                    last_error = ProxyError::Unreachable;
                    tried.push(backend);
                }
                Err(Failure::Broken(err)) => {
                    if let Some(client_error) = source.client_failure() {
                        return Err(client_error);
                    }
                    tracing::debug!(backend = backend.addr(), err = %httpkit::error_chain(&err), "request failed");
                    backend.stats.reset_errors.fetch_add(1, Ordering::Relaxed);
                    backend.eject(&self.config.ejection, "connection broken");
                    last_error = ProxyError::Unreachable;
                    // The webserver may have acted on it: only GET/HEAD are replayed, once.
                    if !idempotent || idempotent_retry_used {
                        return Err(last_error);
                    }
                    idempotent_retry_used = true;
                    tried.push(backend);
                }
                Err(Failure::Timeout) => {
                    // The client's body idle timeout may have fired at the same moment.
                    if let Some(client_error) = source.client_failure() {
                        return Err(client_error);
                    }
                    backend.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    // A slow answer is no reason to eject: a healthy webserver waiting
                    // on a hung store is slow too. A hung webserver fails its health
                    // checks and goes down; refused and reset connections still eject.
                    return Err(ProxyError::Timeout);
                }
            }
        }
    }

    /// One attempt on `backend`, until response headers or `timeout`. The timeout
    /// does not run while the attempt waits for the client's body (see
    /// [`BodySource::headers_deadline`]); a stalled client fails the body instead.
    async fn send(
        &self,
        backend: &Arc<Backend>,
        req: Request<ForwardBody>,
        source: &BodySource,
        timeout: Duration,
    ) -> Result<(Response<Incoming>, InFlight), Failure> {
        backend.stats.requests.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight::new(backend.clone());
        let started = tokio::time::Instant::now();
        let request = self.client.request(req);
        let expiry = tokio::time::sleep(timeout);
        tokio::pin!(request, expiry);
        let result = loop {
            tokio::select! {
                result = &mut request => break result,
                () = &mut expiry => {
                    let deadline = source.headers_deadline(started, timeout);
                    if deadline <= tokio::time::Instant::now() {
                        return Err(Failure::Timeout);
                    }
                    expiry.as_mut().reset(deadline);
                }
            }
        };
        match result {
            Err(err) if err.is_connect() => Err(Failure::NotSent(err)),
            Err(err) => Err(Failure::Broken(err)),
            Ok(resp) => {
                backend.stats.latency.observe(started.elapsed());
                backend.stats.record_status(resp.status());
                Ok((resp, in_flight))
            }
        }
    }

    /// The webserver's answer, hop-by-hop headers removed, body streamed.
    fn response(&self, resp: Response<Incoming>, in_flight: InFlight) -> Response<httpkit::Body> {
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let body = ResponseBody::new(body, self.config.idle_timeout, in_flight).boxed();
        Response::from_parts(parts, body)
    }
}

/// The request's `Content-Length`, if it has a valid one.
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}
