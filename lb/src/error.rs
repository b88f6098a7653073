//! The crate's errors: [`Error`] for starting the balancer, [`ProxyError`] for one
//! request, and the one place that turns a `ProxyError` into a JSON answer.

use http::{Response, StatusCode};

/// Why the balancer could not start or reload.
#[derive(Debug)]
pub enum Error {
    /// A setting has a bad value; `setting` names it.
    Config { setting: String, message: String },
    /// Reading the backends file failed.
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A worker thread or its runtime could not be started.
    Start {
        what: &'static str,
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn config(setting: &str, message: &str) -> Self {
        Error::Config {
            setting: setting.to_owned(),
            message: message.to_owned(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Config { setting, message } => write!(f, "bad setting {setting}: {message}"),
            Error::Io { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Error::Start { what, source } => write!(f, "cannot start {what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config { .. } => None,
            Error::Io { source, .. } | Error::Start { source, .. } => Some(source),
        }
    }
}

/// Why one proxied request failed, classified by who failed: the client (4xx), the
/// webservers (502/504), or the pool being empty (503).
#[derive(Debug)]
pub enum ProxyError {
    /// The request body is larger than `max_body_bytes`.
    TooLarge,
    /// The client sent a broken body or went away while sending it.
    ClientBody,
    /// The client paused in the middle of its body longer than
    /// `request_body_idle_timeout` (the webserver is not blamed).
    ClientTimeout,
    /// The request target cannot be forwarded (e.g. `CONNECT` or `*`).
    BadTarget,
    /// The request names no usable host and the balancer has no public host.
    NoHost,
    /// No webserver is configured, healthy and not ejected.
    NoBackend,
    /// The webserver could not be reached, reset the connection or sent garbage.
    Unreachable,
    /// The webserver did not answer with headers in time.
    Timeout,
}

impl ProxyError {
    /// The status code of this error; exhaustive, so a new variant forces a decision.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientBody => StatusCode::BAD_REQUEST,
            ProxyError::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BadTarget => StatusCode::BAD_REQUEST,
            ProxyError::NoHost => StatusCode::BAD_REQUEST,
            ProxyError::NoBackend => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Unreachable => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The message shown to the client: generic for 5xx, the detail is logged.
    pub fn message(&self) -> &'static str {
        match self {
            ProxyError::TooLarge => "request body too large",
            ProxyError::ClientBody => "could not read the request body",
            ProxyError::ClientTimeout => "request body timed out",
            ProxyError::BadTarget => "request target cannot be proxied",
            ProxyError::NoHost => "no usable Host header",
            ProxyError::NoBackend => "no healthy webserver",
            ProxyError::Unreachable => "bad gateway",
            ProxyError::Timeout => "gateway timeout",
        }
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ProxyError::TooLarge => "too_large",
            ProxyError::ClientBody => "client_body",
            ProxyError::ClientTimeout => "client_timeout",
            ProxyError::BadTarget => "bad_target",
            ProxyError::NoHost => "no_host",
            ProxyError::NoBackend => "no_backend",
            ProxyError::Unreachable => "unreachable",
            ProxyError::Timeout => "timeout",
        }
    }

    /// The JSON answer `{"error": ...}` for this error. After a client timeout, a body
    /// over the limit or a broken body, the rest of the body is unread: the answer
    /// closes the connection and says so ([`httpkit::closing`]).
    pub fn into_response(self) -> Response<httpkit::Body> {
        let resp = httpkit::error_response(self.status(), self.message());
        match self {
            ProxyError::ClientTimeout | ProxyError::TooLarge | ProxyError::ClientBody => {
                httpkit::closing(resp)
            }
            _ => resp,
        }
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ProxyError {}
