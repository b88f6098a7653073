//! Hot reload of the webserver list: a backends file (one `host:port` per line) re-read
//! on SIGHUP and published on a `watch` channel that [`crate::run_with_reload`] follows.

use std::future::Future;
use std::path::{Path, PathBuf};

use tokio::sync::watch;

use crate::Error;
use crate::config::validate_backends;

/// Reads a backends file: one `host:port` per line (commas and spaces also separate
/// entries); blank lines and `#` comments are ignored. Every entry is validated.
pub fn read_backends_file(path: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let backends = parse_backends(&text);
    validate_backends(&backends)?;
    Ok(backends)
}

/// The entries of a backends file's text.
pub fn parse_backends(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(|line| line.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Re-reads `path` on every SIGHUP and sends the list on `tx`; a file that cannot be
/// read or has a bad entry is logged and the current list kept. Returns when every
/// receiver is gone, or at once if SIGHUP cannot be listened for. Prefer
/// [`sighup_reloader`] at start-up: this installs the handler only when first polled.
pub async fn reload_on_sighup(path: PathBuf, tx: watch::Sender<Vec<String>>) {
    match sighup_reloader(path, tx) {
        Ok(reloader) => reloader.await,
        Err(err) => tracing::error!(%err, "cannot listen for SIGHUP; reload disabled"),
    }
}

/// Installs the SIGHUP handler now, before returning, so a SIGHUP sent once this
/// returns is never lost (nor kills the process), and returns the loop of
/// [`reload_on_sighup`] to spawn. Must be called inside a Tokio runtime.
pub fn sighup_reloader(
    path: PathBuf,
    tx: watch::Sender<Vec<String>>,
) -> std::io::Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    Ok(async move {
        loop {
            tokio::select! {
                received = hup.recv() => if received.is_none() { return },
                () = tx.closed() => return,
            }
            match read_backends_file(&path) {
                Ok(backends) => {
                    tracing::info!(path = %path.display(), count = backends.len(), "SIGHUP: backends re-read");
                    if tx.send(backends).is_err() {
                        return;
                    }
                }
                Err(err) => tracing::error!(%err, "SIGHUP: keeping the current backends"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_commas_and_comments() {
        let text = "# webservers\n127.0.0.1:4000\n\n127.0.0.1:4001, 127.0.0.1:4002 # third\n";
        assert_eq!(
            parse_backends(text),
            ["127.0.0.1:4000", "127.0.0.1:4001", "127.0.0.1:4002"]
        );
    }

    #[test]
    fn reads_and_validates_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backends");
        std::fs::write(&path, "127.0.0.1:4000\n").unwrap();
        assert_eq!(read_backends_file(&path).unwrap(), ["127.0.0.1:4000"]);
        std::fs::write(&path, "not a backend/\n").unwrap();
        assert!(read_backends_file(&path).is_err());
        assert!(read_backends_file(&dir.path().join("missing")).is_err());
    }
}
