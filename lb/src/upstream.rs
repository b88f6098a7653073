//! Upstream connections, owned by the worker thread that uses them: each worker keeps
//! its own idle keep-alive connections per webserver (hyper's `client::conn::http1`),
//! so a request checks one out, sends on it and returns it when the answer's body
//! ends, all on one thread, with no pool shared between threads and no task per
//! request. A connection's I/O is driven by a task on the same worker.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::ForwardBody;
use httpkit::BoxError;

/// The sending half of one upstream connection.
pub type Sender = SendRequest<ForwardBody>;

/// How an exchange on an upstream connection failed.
pub enum SendError {
    /// Nothing was sent: the connection could not be opened (or closed at once).
    NotSent(BoxError),
    /// The connection failed after the request may have been (partly) sent.
    Broken(hyper::Error),
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// One worker's idle connections, by webserver address.
struct Pool {
    idle: HashMap<String, Vec<Idle>>,
    idle_timeout: Duration,
    max_idle_per_host: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool {
        idle: HashMap::new(),
        idle_timeout: Duration::from_secs(20),
        max_idle_per_host: 1024,
    });
}

/// Sets this worker thread's pool limits (before it serves).
pub fn init(idle_timeout: Duration, max_idle_per_host: usize) {
    POOL.with_borrow_mut(|pool| {
        pool.idle_timeout = idle_timeout;
        pool.max_idle_per_host = max_idle_per_host;
    });
}

/// The most recently used idle connection to `addr` still open and not expired.
fn checkout(addr: &str) -> Option<Sender> {
    POOL.with_borrow_mut(|pool| {
        let timeout = pool.idle_timeout;
        let list = pool.idle.get_mut(addr)?;
        while let Some(idle) = list.pop() {
            if !idle.sender.is_closed() && idle.since.elapsed() < timeout {
                return Some(idle.sender);
            }
        }
        None
    })
}

/// Returns a connection whose last answer has been read in full to the pool.
pub fn release(addr: &str, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    POOL.with_borrow_mut(|pool| {
        let max = pool.max_idle_per_host;
        let since = Instant::now();
        match pool.idle.get_mut(addr) {
            Some(list) if list.len() < max => list.push(Idle { sender, since }),
            Some(_) => {}
            None if max > 0 => {
                pool.idle
                    .insert(addr.to_owned(), vec![Idle { sender, since }]);
            }
            None => {}
        }
    });
}

/// Closes this worker's idle connections that expired or were closed by the peer.
pub fn sweep() {
    POOL.with_borrow_mut(|pool| {
        let timeout = pool.idle_timeout;
        pool.idle.retain(|_, list| {
            list.retain(|idle| !idle.sender.is_closed() && idle.since.elapsed() < timeout);
            !list.is_empty()
        });
    });
}

/// Opens a new connection to `addr` within `connect_timeout`; its I/O runs in a task
/// on this worker.
async fn connect(addr: &str, connect_timeout: Duration) -> Result<Sender, BoxError> {
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out")??;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        if let Err(err) = conn.await {
            tracing::debug!(err = %httpkit::error_chain(&err), "upstream connection ended");
        }
    });
    Ok(sender)
}

/// Sends `req` to `addr` on an idle connection, or a new one. A request that an idle
/// connection could not take (the webserver closed it meanwhile) is sent again on a
/// new connection: it was never written. Returns the answer and its connection, to
/// [`release`] once the answer's body has been read.
pub async fn send(
    addr: &str,
    mut req: http::Request<ForwardBody>,
    connect_timeout: Duration,
) -> Result<(http::Response<Incoming>, Sender), SendError> {
    loop {
        let (mut sender, reused) = match checkout(addr) {
            Some(sender) => (sender, true),
            // Boxed: the rare path's state stays out of every request's future.
            None => (
                Box::pin(connect(addr, connect_timeout))
                    .await
                    .map_err(SendError::NotSent)?,
                false,
            ),
        };
        if let Err(err) = sender.ready().await {
            if reused {
                continue;
            }
            return Err(SendError::NotSent(err.into()));
        }
        match sender.try_send_request(req).await {
            Ok(resp) => return Ok((resp, sender)),
            Err(mut err) => match err.take_message() {
                Some(unsent) if reused => req = unsent,
                Some(_) => return Err(SendError::NotSent(err.into_error().into())),
                None => return Err(SendError::Broken(err.into_error())),
            },
        }
    }
}
