//! The balancer's serving shape (the accept loop's limits and checks are those of
//! `httpkit::serve`, which it mirrors): one worker thread per core, each a current-thread
//! tokio runtime that owns its client connections, its upstream connections
//! (`upstream`) and every request on them, so a request never changes threads. An
//! acceptor hands each new client connection to the worker with the fewest open
//! connections (one hand-off per connection, none per request). Shared state (the
//! webservers' health, the metrics) is atomics and short locks.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use crate::proxy::TimerSlot;
use crate::{Error, Lb};
use httpkit::ServerConfig;
use httpkit::io::WriteTimeout;

/// A client connection on its way to a worker.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    /// Held while the connection is open (the `max_connections` cap).
    permit: OwnedSemaphorePermit,
}

struct Worker {
    conns: mpsc::UnboundedSender<Accepted>,
    /// Open connections, for the acceptor's choice.
    load: Arc<AtomicUsize>,
    done: oneshot::Receiver<()>,
}

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
    let (drain_tx, drain) = watch::channel(false);
    let mut pool = Vec::with_capacity(workers);
    for i in 0..workers {
        pool.push(start_worker(i, lb.clone(), config.clone(), drain.clone())?);
    }
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // the semaphore is never closed
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // EMFILE, ECONNABORTED...: transient; back off and keep serving.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(err) => {
                tracing::debug!(%err, "cannot hand over a connection");
                continue;
            }
        };
        let Some(worker) = pool.iter().min_by_key(|w| w.load.load(Ordering::Relaxed)) else {
            break;
        };
        worker.load.fetch_add(1, Ordering::Relaxed);
        let accepted = Accepted {
            stream,
            peer,
            permit,
        };
        if worker.conns.send(accepted).is_err() {
            tracing::error!("a worker has stopped; stopping");
            break;
        }
    }
    drop(listener);
    let _ = drain_tx.send(true);
    for worker in pool {
        drop(worker.conns);
        let _ = worker.done.await;
    }
    Ok(())
}

fn start_worker(
    index: usize,
    lb: Lb,
    config: ServerConfig,
    drain: watch::Receiver<bool>,
) -> Result<Worker, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Start {
            what: "a worker runtime",
            source,
        })?;
    let (conns, rx) = mpsc::unbounded_channel();
    let (done_tx, done) = oneshot::channel();
    let load = Arc::new(AtomicUsize::new(0));
    let worker_load = load.clone();
    std::thread::Builder::new()
        .name(format!("lb-worker-{index}"))
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, work(rx, Rc::new(lb), config, worker_load, drain));
            drop(local);
            drop(runtime);
            let _ = done_tx.send(());
        })
        .map_err(|source| Error::Start {
            what: "a worker thread",
            source,
        })?;
    Ok(Worker { conns, load, done })
}

/// One worker: serves the connections it is handed until told to drain.
async fn work(
    mut conns: mpsc::UnboundedReceiver<Accepted>,
    lb: Rc<Lb>,
    config: ServerConfig,
    load: Arc<AtomicUsize>,
    mut drain: watch::Receiver<bool>,
) {
    let proxy_config = &lb.proxy.config;
    crate::upstream::init(
        proxy_config.pool_idle_timeout,
        proxy_config.pool_max_idle_per_host,
    );
    let sweep_every = proxy_config.pool_idle_timeout / 2;
    let sweeper = tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(sweep_every.max(Duration::from_millis(100)));
        loop {
            tick.tick().await;
            crate::upstream::sweep();
        }
    });
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_headers(config.max_headers.max(1))
        .keep_alive(true);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = drain.changed() => break,
            accepted = conns.recv() => match accepted {
                Some(a) => a,
                None => break,
            },
        };
        let Accepted {
            stream,
            peer,
            permit,
        } = accepted;
        let stream = match TcpStream::from_std(stream) {
            Ok(s) => s,
            Err(err) => {
                tracing::debug!(%err, "cannot take over a connection");
                load.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = lb.clone();
        let timer: Rc<TimerSlot> = Rc::default();
        let service = service_fn(move |req| {
            let handler = handler.clone();
            let timer = timer.clone();
            async move {
                // Framing the balancer cannot forward (RFC 9112): 501 / 400, as every
                // server answers it (see `httpkit::serve`).
                if let Some(refused) = httpkit::framing::check(&req) {
                    return Ok::<_, Infallible>(refused);
                }
                Ok::<_, Infallible>(handler.handle(req, peer, &timer).await)
            }
        });
        let stream = WriteTimeout::new(stream, config.write_timeout);
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let load = load.clone();
        tokio::task::spawn_local(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%err, %peer, "connection ended with an error");
            }
            load.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections drained"),
        () = tokio::time::sleep(config.drain_timeout) => {
            tracing::warn!("drain timed out; closing remaining connections");
        }
    }
    sweeper.abort();
}
