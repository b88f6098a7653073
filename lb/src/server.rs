//! The balancer's serving shape: one worker thread per core, each a current-thread
//! tokio runtime with its own listening socket on the balancer's address
//! (`SO_REUSEPORT`: the kernel spreads new connections over the workers), its own
//! client connections, its own upstream connections (`upstream`) and every request
//! on them, so neither a connection nor a request ever changes threads. The accept
//! loop (connection cap, transient errors) and the drain are `httpkit`'s. Shared
//! state (the webservers' health, the metrics) is read without locks on the hot path,
//! and the hot counters are per worker (`metrics`).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use socket2::{Domain, SockRef, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::body::LbBody;
use crate::proxy::ClientConn;
use crate::{Error, Lb};
use httpkit::io::WriteTimeout;
use httpkit::{BoxError, ServerConfig};

/// How many workers `configured` asks for (0: one per core).
pub fn worker_count(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Serves `lb` on `listener` with `workers` worker threads until `shutdown`, then
/// stops accepting and lets each worker drain (at most `config.drain_timeout`).
pub async fn serve(
    listener: TcpListener,
    lb: Lb,
    workers: usize,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let listeners = listeners(listener, workers.max(1)).map_err(|source| Error::Start {
        what: "the workers' listeners",
        source,
    })?;
    let (drain_tx, drain) = watch::channel(false);
    // One connection cap for the whole balancer: a permit per open connection.
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let (ended_tx, mut ended) = mpsc::unbounded_channel::<()>();
    let mut done = Vec::with_capacity(listeners.len());
    for (i, listener) in listeners.into_iter().enumerate() {
        let worker = Worker {
            listener,
            lb: lb.clone(),
            config: config.clone(),
            limit: limit.clone(),
            drain: drain.clone(),
        };
        done.push(start_worker(i, worker, ended_tx.clone())?);
    }
    drop(ended_tx);
    tokio::select! {
        () = shutdown => {}
        _ = ended.recv() => tracing::error!("a worker has stopped; stopping"),
    }
    let _ = drain_tx.send(true);
    for worker in done {
        let _ = worker.await;
    }
    Ok(())
}

/// One listening socket per worker on `listener`'s address: `listener` itself and
/// `workers - 1` more, all with `SO_REUSEPORT`, so the kernel hashes each new
/// connection to one of them. (As with nginx's `reuseport`, another process of the
/// same user could join the group with a socket of its own; only the same user.) Where a socket cannot join (a kernel without
/// `SO_REUSEPORT`), that worker shares `listener`'s queue instead (a duplicate of
/// its descriptor): every worker still accepts for itself.
fn listeners(listener: TcpListener, workers: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let addr = listener.local_addr()?;
    let first = listener.into_std()?;
    let reuse = SockRef::from(&first).set_reuse_port(true);
    let mut all = Vec::with_capacity(workers);
    for _ in 1..workers {
        let joined = match &reuse {
            Ok(()) => reuse_port_listener(addr),
            Err(err) => Err(std::io::Error::new(err.kind(), err.to_string())),
        };
        match joined {
            Ok(l) => all.push(l),
            Err(err) => {
                tracing::warn!(%err, "no SO_REUSEPORT listener; the workers share one queue");
                all.push(first.try_clone()?);
            }
        }
    }
    all.insert(0, first);
    Ok(all)
}

/// A non-blocking listener on `addr` in `addr`'s `SO_REUSEPORT` group.
fn reuse_port_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // The backlog tokio's `TcpListener::bind` uses.
    socket.listen(1024)?;
    Ok(socket.into())
}

/// What one worker thread gets.
struct Worker {
    listener: std::net::TcpListener,
    lb: Lb,
    config: ServerConfig,
    /// The balancer-wide connection cap.
    limit: Arc<Semaphore>,
    drain: watch::Receiver<bool>,
}

fn start_worker(
    index: usize,
    worker: Worker,
    ended: mpsc::UnboundedSender<()>,
) -> Result<oneshot::Receiver<()>, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Start {
            what: "a worker runtime",
            source,
        })?;
    let (done_tx, done) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("lb-worker-{index}"))
        .spawn(move || {
            crate::metrics::set_shard(index);
            // Every task of this runtime runs on this thread (a current-thread
            // runtime), so the worker's thread-local pools are theirs alone.
            runtime.block_on(work(worker));
            drop(runtime);
            let _ = ended.send(());
            let _ = done_tx.send(());
        })
        .map_err(|source| Error::Start {
            what: "a worker thread",
            source,
        })?;
    Ok(done)
}

/// One worker: accepts on its own listener and serves its connections until told
/// to drain, then waits for them (at most `config.drain_timeout`).
async fn work(worker: Worker) {
    let Worker {
        listener,
        lb,
        config,
        limit,
        mut drain,
    } = worker;
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(err) => {
            tracing::error!(%err, "a worker cannot listen");
            return;
        }
    };
    // This worker's own handle: requests clone it without touching a reference
    // count that another worker writes to.
    let lb = Arc::new(lb);
    let proxy_config = &lb.proxy.config;
    crate::upstream::init(
        proxy_config.pool_idle_timeout,
        proxy_config.pool_max_idle_per_host,
    );
    let sweep_every = proxy_config.pool_idle_timeout / 2;
    let sweeper = tokio::spawn(async move {
        let mut tick =
            tokio::time::interval(sweep_every.max(std::time::Duration::from_millis(100)));
        loop {
            tick.tick().await;
            crate::upstream::sweep();
        }
    });
    let graceful = GracefulShutdown::new();
    let mut builder = httpkit::server::http1_builder(&config);
    // The header-read timeout is the connection's own (`HeadTimeout`): hyper's arms a
    // new timer for every request.
    builder.header_read_timeout(None);
    let drained = async move {
        let _ = drain.wait_for(|d| *d).await;
    };
    httpkit::server::accept_loop(&listener, &limit, drained, |stream, peer, permit| {
        let handler = lb.clone();
        let conn = Arc::new(ClientConn::new(peer));
        let head_timeout = HeadTimeout::new(conn.clone(), config.header_read_timeout);
        let service = service_fn(move |req| {
            let handler = handler.clone();
            let conn = conn.clone();
            async move {
                conn.request_started();
                // Framing the balancer cannot forward (RFC 9112): 501 / 400, as every
                // server answers it (see `httpkit::serve`).
                let resp = match httpkit::framing::check(&req) {
                    Some(refused) => refused.map(LbBody::Own),
                    None => handler.handle(req, &conn).await,
                };
                Ok::<_, Infallible>(resp.map(|body| Served { body, conn }))
            }
        });
        let stream = head_timeout.wrap(WriteTimeout::new(stream, config.write_timeout));
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%err, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    })
    .await;
    drop(listener);
    httpkit::server::drain(graceful, config.drain_timeout).await;
    sweeper.abort();
}

/// An answer's body that tells its connection when it is done (sent in full, or
/// dropped with the connection): from then on, the next request's head is due.
struct Served {
    body: LbBody,
    conn: Arc<ClientConn>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.conn.request_ended();
    }
}

impl Body for Served {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The header-read timeout (see [`ServerConfig::header_read_timeout`]): a client
/// must send each request's head within the timeout of the connection starting to
/// wait for it (when it opened, or when the previous answer was sent), so slow or
/// idle clients cannot pin the balancer. One timer per connection, armed once and
/// moved only when it fires early (the deadline moved on meanwhile): no timer is
/// registered per request. A read that waits past the deadline fails, and hyper
/// closes the connection, as with its own timeout.
struct HeadTimeout {
    conn: Arc<ClientConn>,
    timeout: Duration,
}

impl HeadTimeout {
    fn new(conn: Arc<ClientConn>, timeout: Duration) -> Self {
        Self { conn, timeout }
    }

    fn wrap<S>(self, inner: S) -> HeadTimed<S> {
        HeadTimed {
            inner,
            clock: self,
            sleep: None,
        }
    }
}

/// A connection's stream under its [`HeadTimeout`].
struct HeadTimed<S> {
    inner: S,
    clock: HeadTimeout,
    /// Armed at the first read that waits.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> HeadTimed<S> {
    /// `Ready(Err)` once the head the connection waits for is overdue.
    fn poll_overdue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Polled once armed, the timer holds this connection's task's waker (the only
        // task that reads the stream): until it fires there is nothing to look at.
        if let Some(sleep) = &self.sleep
            && !sleep.is_elapsed()
        {
            return Poll::Pending;
        }
        let timeout = self.clock.timeout;
        let now = tokio::time::Instant::now();
        let sleep = self.sleep.get_or_insert_with(|| {
            let first = self
                .clock
                .conn
                .head_deadline(timeout)
                .unwrap_or(now + timeout);
            Box::pin(tokio::time::sleep_until(first))
        });
        while sleep.as_mut().poll(cx).is_ready() {
            let now = tokio::time::Instant::now();
            match self.clock.conn.head_deadline(timeout) {
                Some(deadline) if deadline <= now => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not received in time",
                    )));
                }
                Some(deadline) => sleep.as_mut().reset(deadline),
                // A request is being answered: look again a timeout later.
                None => sleep.as_mut().reset(now + timeout),
            }
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadTimed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => this.poll_overdue(cx),
            ready => ready,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadTimed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
