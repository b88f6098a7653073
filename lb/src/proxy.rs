//! Forwarding one request: edge checks, header rewriting, the attempt loop with its
//! retry rules and passive ejection, and the streamed response.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::backend::{Picked, Registry};
use crate::body::{BodySource, ForwardBody, InFlight, LbBody, ResponseBody};
use crate::headers::{Origin, prepare_forwarding, strip_hop_by_hop};
use crate::metrics::Totals;
use crate::upstream::{self, Head, SendError, UpstreamBody};
use crate::{Config, ProxyError};

/// How one attempt failed.
enum Failure {
    /// The connection could not be opened: nothing was sent. `busy`: the connect
    /// timed out (the webserver's accept backlog is full), rather than being refused.
    NotSent { err: httpkit::BoxError, busy: bool },
    /// The connection failed after the request may have been (partly) sent.
    Broken(httpkit::BoxError),
    /// No response headers within the timeout while the webserver had the whole body
    /// (or was not reading it).
    Timeout,
}

/// A timer reused by the requests of one client connection for their response
/// timeouts (they come one after another): moving a registered timer's deadline
/// later costs an atomic store, registering a new one per request a trip through
/// the timer wheel and an allocation. Taken out while a request uses it (the lock
/// is never contended: one request at a time, on one thread).
pub type TimerSlot = Mutex<Option<Pin<Box<Sleep>>>>;

/// What the requests of one client connection share: who the client is, with its
/// `X-Forwarded-For` entry formatted once, the response-timeout timer, and since
/// when the connection waits for its next request's head.
pub struct ClientConn {
    pub peer: SocketAddr,
    /// `peer`'s address as a header value (made once, cloned without copying).
    peer_value: Option<HeaderValue>,
    pub timer: TimerSlot,
    opened: tokio::time::Instant,
    /// When the connection began waiting for a request head, in nanoseconds since
    /// `opened`; [`BUSY`] while a request is being answered. Only this
    /// connection's thread writes it.
    waiting_since: AtomicU64,
}

/// [`ClientConn::waiting_since`] while a request is being answered.
const BUSY: u64 = u64::MAX;

impl ClientConn {
    pub fn new(peer: SocketAddr) -> Self {
        Self {
            peer,
            peer_value: HeaderValue::from_str(&peer.ip().to_string()).ok(),
            timer: Mutex::new(None),
            opened: tokio::time::Instant::now(),
            waiting_since: AtomicU64::new(0),
        }
    }

    /// A request's head has been read: no head is due until it has been answered.
    pub fn request_started(&self) {
        self.waiting_since.store(BUSY, Ordering::Relaxed);
    }

    /// The answer has been sent (or abandoned): the next head is due from now.
    pub fn request_ended(&self) {
        let since = u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(BUSY - 1);
        self.waiting_since.store(since, Ordering::Relaxed);
    }

    /// When the next request's head must have arrived, `timeout` after the
    /// connection began waiting for it; `None` while a request is being answered.
    pub fn head_deadline(&self, timeout: Duration) -> Option<tokio::time::Instant> {
        match self.waiting_since.load(Ordering::Relaxed) {
            BUSY => None,
            since => Some(self.opened + Duration::from_nanos(since) + timeout),
        }
    }
}

/// What forwarding needs; each worker thread has its own copy.
#[derive(Clone)]
pub struct Proxy {
    pub registry: Arc<Registry>,
    pub config: Arc<Config>,
    pub totals: Arc<Totals>,
}

impl Proxy {
    /// Forwards `req` from the client of `conn` to a webserver, retrying per the
    /// rules of [`crate::RetryConfig`], and streams the answer back.
    pub async fn forward(
        &self,
        req: Request<Incoming>,
        conn: &ClientConn,
    ) -> Result<Response<LbBody>, ProxyError> {
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
            client: conn.peer.ip(),
            client_value: conn.peer_value.as_ref(),
            trusted: self.config.is_trusted(conn.peer.ip()),
            uri_authority: parts.uri.authority().map(|a| a.as_str()),
            fallback_host: self.config.fallback_host.as_deref(),
        };
        let forwarding =
            prepare_forwarding(&mut headers, &origin).map_err(|_| ProxyError::NoHost)?;
        let method = parts.method;
        // The target as the webserver gets it: path and query only.
        let head = Head {
            method: &method,
            target: path_and_query.as_ref().map_or("/", |pq| pq.as_str()),
            headers: &headers,
            forwarding: &forwarding,
        };
        let source = BodySource::new(body, limit, self.config.request_body_idle_timeout);
        let idempotent = method == Method::GET || method == Method::HEAD;
        let retry = &self.config.retry;
        let started = Instant::now();
        let deadline = started + retry.budget;

        // Webservers of the failed attempts; allocates only when a retry happens.
        let mut tried: Vec<Picked> = Vec::new();
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
            let now = if retries == 0 {
                started
            } else {
                Instant::now()
            };
            let remaining = deadline.saturating_duration_since(now);
            if remaining.is_zero() {
                return Err(ProxyError::Timeout);
            }
            if retries > 0 {
                self.totals.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(backend = backend.addr(), %method, "retrying");
            }
            let can_retry_more = retries < u64::from(retry.max_retries);

            let timeout = self.config.response_timeout.min(remaining);
            match self
                .send(&backend, &head, body, &source, timeout, &conn.timer)
                .await
            {
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
                Err(Failure::NotSent { err, busy }) => {
                    tracing::debug!(backend = backend.addr(), err = %httpkit::error_chain(&*err), "connect failed");
                    backend.stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                    // A webserver too busy to take connections is slow, not gone: like
                    // a slow answer, no reason to eject it (with one webserver that
                    // would refuse every request); its health checks judge it.
                    if !busy {
                        backend.eject(&self.config.ejection, "connect failed");
                    }
                    last_error = ProxyError::Unreachable;
                    // Nothing was sent, so another webserver may be tried.
                    tried.push(backend);
                }
                Err(Failure::Broken(err)) => {
                    if let Some(client_error) = source.client_failure() {
                        return Err(client_error);
                    }
                    tracing::debug!(backend = backend.addr(), err = %httpkit::error_chain(&*err), "request failed");
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
        backend: &Picked,
        head: &Head<'_>,
        body: ForwardBody,
        source: &BodySource,
        timeout: Duration,
        timer: &TimerSlot,
    ) -> Result<(Response<UpstreamBody>, InFlight), Failure> {
        backend.stats.count_request();
        let in_flight = InFlight::new(backend.clone());
        let started = tokio::time::Instant::now();
        let request = upstream::send(backend.addr(), head, body, self.config.connect_timeout);
        let first_deadline = started + timeout;
        let mut expiry = match timer.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(mut sleep) => {
                sleep.as_mut().reset(first_deadline);
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(first_deadline)),
        };
        tokio::pin!(request);
        let result = loop {
            tokio::select! {
                biased;
                result = &mut request => break Ok(result),
                () = &mut expiry => {
                    let deadline = source.headers_deadline(started, timeout);
                    if deadline <= tokio::time::Instant::now() {
                        break Err(Failure::Timeout);
                    }
                    expiry.as_mut().reset(deadline);
                }
            }
        };
        *timer.lock().unwrap_or_else(PoisonError::into_inner) = Some(expiry);
        let result = result?;
        match result {
            Err(SendError::NotSent(err)) => Err(Failure::NotSent { err, busy: false }),
            Err(SendError::ConnectTimeout) => Err(Failure::NotSent {
                err: "connect timed out".into(),
                busy: true,
            }),
            Err(SendError::Broken(err)) => Err(Failure::Broken(err)),
            Ok(resp) => {
                backend.stats.observe_latency(started.elapsed());
                backend.stats.record_status(resp.status());
                Ok((resp, in_flight))
            }
        }
    }

    /// The webserver's answer, hop-by-hop headers removed, body streamed.
    /// Its connection goes back to this worker's pool once the body has been read.
    fn response(&self, resp: Response<UpstreamBody>, in_flight: InFlight) -> Response<LbBody> {
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let body = ResponseBody::new(body, self.config.idle_timeout, in_flight);
        Response::from_parts(parts, LbBody::Forwarded(body))
    }
}

/// The request's `Content-Length`, if it has a valid one.
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}
