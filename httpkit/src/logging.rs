//! Logging setup shared by every binary.

use tracing_subscriber::EnvFilter;

/// Logs to stderr, filtered by `RUST_LOG` when set, else by `default_filter`
/// (for example `"info"`). Safe to call twice: the second call does nothing.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
