//! What a call to an internal service can end in, decided once for every client:
//! each answer status has one meaning here, so callers match on variants instead
//! of comparing status numbers.

use http::StatusCode;
use httpkit::ClientError;

/// Why a call to sqlsvc or nosqlsvc failed. The first five variants are answers
/// from the service (see [`CallError::answered`]); the rest are not, and of those
/// only [`CallError::NotSent`] proves that the service did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// 404: no such thing (an unknown or expired paste, an unknown text).
    NotFound,
    /// 409: the request clashes with what the service holds.
    Conflict(String),
    /// Another 4xx: the service refused what was sent (a malformed cursor, a bad
    /// field); `message` is its `error` field.
    Invalid { status: StatusCode, message: String },
    /// 503: the service is up but cannot serve now (not ready, its store down).
    Overloaded(String),
    /// Another 5xx (or a status the contract does not have): the service failed.
    Failed { status: StatusCode, message: String },
    /// No connection could be made (refused, unreachable): the request was never
    /// sent, so the service certainly did not act on it.
    NotSent(String),
    /// The service dropped the connection (or it broke) after the request may have
    /// been sent: it may or may not have acted on the request.
    Unavailable(String),
    /// No answer in time: it may or may not have acted on the request.
    Timeout,
    /// The answer was not what the contract says (bad JSON, too large).
    BadResponse(String),
}

impl CallError {
    /// Whether the service answered, so that it certainly did not do what a
    /// failed request asked (the Write API deletes an orphaned text only then).
    pub fn answered(&self) -> bool {
        match self {
            CallError::NotFound
            | CallError::Conflict(_)
            | CallError::Invalid { .. }
            | CallError::Overloaded(_)
            | CallError::Failed { .. } => true,
            CallError::NotSent(_)
            | CallError::Unavailable(_)
            | CallError::Timeout
            | CallError::BadResponse(_) => false,
        }
    }

    /// Whether the failure proves the service did not apply the request: it answered
    /// an error (see [`CallError::answered`]), or the request was never sent. A
    /// timeout, a dropped connection or a broken answer prove nothing: the service
    /// may have applied it, so replaying a non-idempotent request could apply it
    /// twice.
    pub fn not_applied(&self) -> bool {
        self.answered() || matches!(self, CallError::NotSent(_))
    }
}

impl From<ClientError> for CallError {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::NotSent(msg) => CallError::NotSent(msg),
            ClientError::Unavailable(msg) => CallError::Unavailable(msg),
            ClientError::Timeout => CallError::Timeout,
            ClientError::BadResponse(msg) => CallError::BadResponse(msg),
            ClientError::Status { status, message } => match status {
                StatusCode::NOT_FOUND => CallError::NotFound,
                StatusCode::CONFLICT => CallError::Conflict(message),
                StatusCode::SERVICE_UNAVAILABLE => CallError::Overloaded(message),
                s if s.is_client_error() => CallError::Invalid { status, message },
                _ => CallError::Failed { status, message },
            },
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotFound => write!(f, "upstream answered 404 Not Found"),
            CallError::Conflict(msg) => write!(f, "upstream answered 409 Conflict: {msg}"),
            CallError::Invalid { status, message } | CallError::Failed { status, message } => {
                write!(f, "upstream answered {status}: {message}")
            }
            CallError::Overloaded(msg) => write!(f, "upstream answered 503: {msg}"),
            CallError::NotSent(msg) => write!(f, "upstream unreachable: {msg}"),
            CallError::Unavailable(msg) => write!(f, "upstream unavailable: {msg}"),
            CallError::Timeout => write!(f, "upstream timed out"),
            CallError::BadResponse(msg) => write!(f, "bad upstream response: {msg}"),
        }
    }
}

impl std::error::Error for CallError {}
