//! Logging setup shared by every binary.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Logs to stderr, filtered by `RUST_LOG` when it is set and valid (`target=level`
/// directives such as `info,hyper=warn`), else by `default_filter` (such as `"info"`).
/// Colours only when stderr is a terminal and `NO_COLOR` is unset or empty, so logs
/// sent to a file or a pipe stay plain text. Safe to call twice: the second call does
/// nothing.
pub fn init(default_filter: &str) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| match spec.parse::<Targets>() {
            Ok(filter) => Some(filter),
            Err(err) => {
                eprintln!("RUST_LOG={spec:?} ignored: {err}");
                None
            }
        });
    let filter = from_env
        .or_else(|| default_filter.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(use_colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .finish()
        .with(filter)
        .try_init();
}

/// For tests: like [`init`], but written through the test harness's capture, so a
/// test's logs are shown only if it fails.
pub fn init_for_tests(default_filter: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
        .or_else(|| default_filter.parse().ok())
        .unwrap_or_default();
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_ansi(false)
        .finish()
        .with(filter)
        .try_init();
}

/// Colours on a terminal, unless `NO_COLOR` is set to something (https://no-color.org).
fn use_colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some("".into())));
        assert!(!use_colour(true, Some("1".into())));
        assert!(!use_colour(false, None));
    }

    #[test]
    fn rust_log_directives_parse() {
        let t: Targets = "warn,lb=debug,hyper=off".parse().unwrap();
        assert!(t.would_enable("lb", &tracing::Level::DEBUG));
        assert!(!t.would_enable("web", &tracing::Level::INFO));
    }
}
