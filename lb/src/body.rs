//! Streamed bodies across the proxy. The request body is held in a shared slot until
//! an attempt first polls it, so a request whose connection failed before sending
//! can be retried with the same, untouched body; the size limit and an idle timeout
//! on the client are enforced while it streams, and the slot records whether the
//! client is the slow side. The response body is bounded by an idle timeout between
//! chunks.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{LengthLimitError, Limited};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::ProxyError;
use crate::backend::{Backend, Picked};
use crate::upstream::{self, UpstreamBody};
use httpkit::BoxError;

/// The client's body, waiting to be sent by one attempt, and how sending it goes.
pub struct Slot {
    body: Mutex<Option<Limited<Incoming>>>,
    /// Longest wait for the client's next chunk while forwarding.
    idle: Duration,
    too_large: AtomicBool,
    client_failed: AtomicBool,
    /// The client paused longer than `idle` in the middle of its body.
    client_stalled: AtomicBool,
    /// The attempt is waiting for the client's next chunk: the client is the slow side.
    waiting_on_client: AtomicBool,
    /// When the client last delivered a chunk (or the end of its body).
    last_progress: Mutex<Option<Instant>>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Limited<Incoming>>> {
        self.body.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn progressed(&self) {
        self.waiting_on_client.store(false, Ordering::Relaxed);
        *self
            .last_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }
}

/// Where each attempt gets its request body from.
pub struct BodySource {
    /// `None` for a request without a body: every attempt sends an empty one.
    slot: Option<Arc<Slot>>,
}

impl BodySource {
    /// `limit` bounds the body's size, `idle` the wait for each of its chunks.
    pub fn new(body: Incoming, limit: usize, idle: Duration) -> Self {
        if body.is_end_stream() {
            return Self { slot: None };
        }
        Self {
            slot: Some(Arc::new(Slot {
                body: Mutex::new(Some(Limited::new(body, limit))),
                idle,
                too_large: AtomicBool::new(false),
                client_failed: AtomicBool::new(false),
                client_stalled: AtomicBool::new(false),
                waiting_on_client: AtomicBool::new(false),
                last_progress: Mutex::new(None),
            })),
        }
    }

    /// A body for the next attempt, or `None` if an earlier attempt already started
    /// sending it (the request can no longer be replayed).
    pub fn attempt(&self) -> Option<ForwardBody> {
        match &self.slot {
            None => Some(ForwardBody::Empty),
            Some(slot) if slot.lock().is_some() => Some(ForwardBody::Pending(slot.clone())),
            Some(_) => None,
        }
    }

    /// Whether the next attempt can still send the whole body.
    pub fn replayable(&self) -> bool {
        self.slot.as_ref().is_none_or(|slot| slot.lock().is_some())
    }

    /// The client-side failure seen while streaming the body, if any.
    pub fn client_failure(&self) -> Option<ProxyError> {
        let slot = self.slot.as_ref()?;
        if slot.too_large.load(Ordering::Relaxed) {
            Some(ProxyError::TooLarge)
        } else if slot.client_stalled.load(Ordering::Relaxed) {
            Some(ProxyError::ClientTimeout)
        } else if slot.client_failed.load(Ordering::Relaxed) {
            Some(ProxyError::ClientBody)
        } else {
            None
        }
    }

    /// When an attempt started at `started` runs out of its `timeout` for response
    /// headers, as things stand now. The webserver's clock only runs while it is not
    /// waiting for the client: while the client is the slow side the deadline moves
    /// on (the body's own idle timeout bounds the client), and once the client has
    /// sent its last chunk the full `timeout` counts from that chunk.
    pub fn headers_deadline(&self, started: Instant, timeout: Duration) -> Instant {
        let Some(slot) = &self.slot else {
            return started + timeout;
        };
        if slot.waiting_on_client.load(Ordering::Relaxed) {
            return Instant::now() + timeout;
        }
        let last = *slot
            .last_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.map_or(started, |last| last.max(started)) + timeout
    }
}

/// The request body of one attempt.
pub enum ForwardBody {
    Empty,
    /// Not polled yet; the body is still in the shared slot.
    Pending(Arc<Slot>),
    /// Taken from the slot by this attempt.
    Streaming {
        body: Limited<Incoming>,
        slot: Arc<Slot>,
        /// Armed while waiting for the client's next chunk.
        idle: IdleTimer,
    },
}

/// A timer that runs only while armed; its `Sleep` is allocated on first use.
#[derive(Default)]
pub struct IdleTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl IdleTimer {
    /// Starts the timer for `idle` unless it already runs; ready once it expires.
    fn poll_expired(&mut self, idle: Duration, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = Instant::now() + idle;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            sleep.as_mut().reset(deadline);
            self.armed = true;
        }
        sleep.as_mut().poll(cx)
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl ForwardBody {
    /// An empty body (health checks).
    pub fn empty() -> Self {
        ForwardBody::Empty
    }
}

impl Body for ForwardBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match this {
                ForwardBody::Empty => return Poll::Ready(None),
                ForwardBody::Pending(slot) => {
                    let Some(body) = slot.lock().take() else {
                        return Poll::Ready(Some(Err("request body already sent".into())));
                    };
                    *this = ForwardBody::Streaming {
                        body,
                        slot: slot.clone(),
                        idle: IdleTimer::default(),
                    };
                }
                ForwardBody::Streaming { body, slot, idle } => {
                    let polled = Pin::new(body).poll_frame(cx);
                    if polled.is_pending() {
                        slot.waiting_on_client.store(true, Ordering::Relaxed);
                        return match idle.poll_expired(slot.idle, cx) {
                            Poll::Ready(()) => {
                                slot.client_stalled.store(true, Ordering::Relaxed);
                                slot.waiting_on_client.store(false, Ordering::Relaxed);
                                Poll::Ready(Some(Err(ClientIdleTimeout.into())))
                            }
                            Poll::Pending => Poll::Pending,
                        };
                    }
                    idle.disarm();
                    slot.progressed();
                    if let Poll::Ready(Some(Err(err))) = &polled {
                        let flag = if err.is::<LengthLimitError>() {
                            &slot.too_large
                        } else {
                            &slot.client_failed
                        };
                        flag.store(true, Ordering::Relaxed);
                    }
                    return polled;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ForwardBody::Empty => true,
            ForwardBody::Pending(slot) => slot.lock().as_ref().is_none_or(Body::is_end_stream),
            ForwardBody::Streaming { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ForwardBody::Empty => SizeHint::with_exact(0),
            ForwardBody::Pending(slot) => slot
                .lock()
                .as_ref()
                .map_or_else(SizeHint::default, Body::size_hint),
            ForwardBody::Streaming { body, .. } => body.size_hint(),
        }
    }
}

/// The client paused longer than the request body idle timeout.
#[derive(Debug)]
pub struct ClientIdleTimeout;

impl std::fmt::Display for ClientIdleTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("client request body idle timeout")
    }
}

impl std::error::Error for ClientIdleTimeout {}

/// Counts a response in flight on its webserver until the body ends or is dropped.
pub struct InFlight(Picked);

impl InFlight {
    pub fn new(backend: Picked) -> Self {
        backend.stats.add_in_flight(1);
        Self(backend)
    }

    pub fn backend(&self) -> &Backend {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.stats.add_in_flight(-1);
    }
}

/// What the balancer answers a client with: a webserver's answer, streamed, or one
/// of its own (errors, admin pages). An enum rather than a boxed body: a forwarded
/// answer costs no allocation.
pub enum LbBody {
    Forwarded(ResponseBody),
    Own(httpkit::Body),
}

impl Body for LbBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            LbBody::Forwarded(body) => Pin::new(body).poll_frame(cx),
            LbBody::Own(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            LbBody::Forwarded(body) => body.is_end_stream(),
            LbBody::Own(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            LbBody::Forwarded(body) => body.size_hint(),
            LbBody::Own(body) => body.size_hint(),
        }
    }
}

/// A webserver's response body, failed if no chunk arrives for `idle`. Once it has
/// been read in full, its connection goes back to the worker's pool; a body dropped
/// before its end closes the connection.
pub struct ResponseBody {
    /// Arrives on its connection, which it gives back at its end.
    inner: UpstreamBody,
    idle: Duration,
    /// Started the first time the webserver makes us wait (most small answers arrive
    /// with their headers and never need it).
    timer: Option<Pin<Box<Sleep>>>,
    in_flight: InFlight,
}

impl ResponseBody {
    pub fn new(inner: UpstreamBody, idle: Duration, in_flight: InFlight) -> Self {
        let mut body = Self {
            inner,
            idle,
            timer: None,
            in_flight,
        };
        body.release_if_done();
        body
    }

    /// Returns the connection to the pool once the body has been read in full (a
    /// body of known length ends with its last chunk, and the server then stops
    /// polling it).
    fn release_if_done(&mut self) {
        if let Some(conn) = self.inner.take_reusable() {
            upstream::release(self.in_flight.backend().addr(), conn);
        }
    }
}

/// The response body stalled longer than the idle timeout.
#[derive(Debug)]
pub struct IdleTimeout;

impl std::fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("webserver response body idle timeout")
    }
}

impl std::error::Error for IdleTimeout {}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(timer) = &mut this.timer {
                    timer
                        .as_mut()
                        .reset(tokio::time::Instant::now() + this.idle);
                }
                this.release_if_done();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err))),
            Poll::Ready(None) => {
                this.release_if_done();
                Poll::Ready(None)
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(IdleTimeout.into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
