//! Turns SIGINT and SIGTERM into one shutdown future.

use std::future::Future;
use std::pin::Pin;

/// A boxed future: what the servers' `run` functions hand their caller, so that their
/// code is compiled in their own crate. The body of an `async fn` is a closure to
/// rustc, and closures are compiled in every crate that uses them (like `#[inline]`
/// functions): awaited directly, a server's whole body (and the hyper server code
/// under it) would be compiled again in each crate that starts it, the `pastebin`
/// binary last and alone at the end of a build, and every test binary. Behind a
/// `#[inline(never)]` function returning this, the callers only poll it through a
/// pointer.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A shutdown future of one concrete type, so that a server's body is not generic
/// over it (see [`BoxFuture`]).
pub type Shutdown<'a> = BoxFuture<'a, ()>;

/// Completes on the first SIGINT or SIGTERM. If a handler cannot be installed the
/// error is logged and that signal is ignored (the other still works).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let wait = |kind: SignalKind, name: &'static str| async move {
        match signal(kind) {
            Ok(mut s) => {
                s.recv().await;
                tracing::info!(signal = name, "shutting down");
            }
            Err(err) => {
                tracing::error!(%err, signal = name, "cannot listen for signal");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = wait(SignalKind::interrupt(), "SIGINT") => {}
        () = wait(SignalKind::terminate(), "SIGTERM") => {}
    }
}
