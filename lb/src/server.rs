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
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use socket2::{Domain, SockRef, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::body::LbBody;
use crate::{Error, Lb};
use httpkit::ServerConfig;
use httpkit::io::WriteTimeout;

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
    let builder = httpkit::server::http1_builder(&config);
    let drained = async move {
        let _ = drain.wait_for(|d| *d).await;
    };
    httpkit::server::accept_loop(&listener, &limit, drained, |stream, peer, permit| {
        let handler = lb.clone();
        let conn = Arc::new(crate::proxy::ClientConn::new(peer));
        let service = service_fn(move |req| {
            let handler = handler.clone();
            let conn = conn.clone();
            async move {
                // Framing the balancer cannot forward (RFC 9112): 501 / 400, as every
                // server answers it (see `httpkit::serve`).
                if let Some(refused) = httpkit::framing::check(&req) {
                    return Ok::<_, Infallible>(refused.map(LbBody::Own));
                }
                Ok::<_, Infallible>(handler.handle(req, &conn).await)
            }
        });
        let stream = WriteTimeout::new(stream, config.write_timeout);
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
