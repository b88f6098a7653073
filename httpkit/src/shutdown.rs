//! Turns SIGINT and SIGTERM into one shutdown future.

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
