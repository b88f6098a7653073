//! The accept loop every server runs: a connection cap, header-read timeouts, a span
//! per connection, transient accept errors survived, and a graceful drain with a
//! deadline on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::Body;
use crate::io::WriteTimeout;

/// Something that answers requests. Implemented by each server's shared state.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request; errors are already turned into responses.
    fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// Limits of the accept loop.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Connections served at once; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// A client must send a request's headers within this time (also bounds idle
    /// keep-alive connections), so slow or idle clients cannot pin the server.
    pub header_read_timeout: Duration,
    /// A client that stops reading its answer for this long is dropped, so it cannot
    /// pin a connection (and what the connection holds upstream).
    pub write_timeout: Duration,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub drain_timeout: Duration,
    /// Most header lines a request may have (more: 431). See
    /// [`crate::framing::MAX_HEADERS`].
    pub max_headers: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            max_headers: crate::framing::MAX_HEADERS,
        }
    }
}

/// Serves HTTP/1.1 on `listener` with `handler` until `shutdown` completes, then
/// stops accepting and waits (at most `drain_timeout`) for open connections.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_headers(config.max_headers.max(1))
        .keep_alive(true);
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
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |req| {
            let handler = handler.clone();
            async move {
                // Framing the handler cannot serve (RFC 9112): 501 / 400, in one place.
                if let Some(refused) = crate::framing::check(&req) {
                    return Ok::<_, Infallible>(refused);
                }
                Ok::<_, Infallible>(handler.handle(req, peer).await)
            }
        });
        let stream = WriteTimeout::new(stream, config.write_timeout);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        let span = tracing::debug_span!("conn", %peer);
        tokio::spawn(
            async move {
                if let Err(err) = conn.await {
                    tracing::debug!(%err, "connection ended with an error");
                }
                drop(permit);
            }
            .instrument(span),
        );
    }

    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections drained"),
        () = tokio::time::sleep(config.drain_timeout) => {
            tracing::warn!("drain timed out; closing remaining connections");
        }
    }
}

/// Returns the loopback address of a listener bound to port 0 (for tests and launchers).
pub async fn bind_ephemeral() -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
