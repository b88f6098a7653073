//! The crate's errors: `Error` for startup and shutdown, `ApiError` for requests,
//! with the one exhaustive mapping from `ApiError` to a status code and JSON body.

use std::fmt;
use std::path::PathBuf;

use http::{HeaderValue, Response, StatusCode, header};
use httpkit::{Body, error_response};

/// Why the service could not start or stop cleanly.
#[derive(Debug)]
pub enum Error {
    /// The directory that should hold the database (or the cursor key file next to
    /// it) could not be created or read.
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The database could not be opened or configured (pragmas).
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// Applying the schema migrations failed.
    Migration(String),
    /// Closing the database at shutdown failed.
    Close(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::CreateDir { path, source } => {
                write!(f, "cannot create directory {}: {source}", path.display())
            }
            Error::Open { path, source } => {
                write!(f, "cannot open database {}: {source}", path.display())
            }
            Error::Migration(msg) => write!(f, "database migration failed: {msg}"),
            Error::Close(msg) => write!(f, "cannot close the database cleanly: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::CreateDir { source, .. } => Some(source),
            Error::Open { source, .. } => Some(source),
            Error::Migration(_) | Error::Close(_) => None,
        }
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum ApiError {
    /// The request is malformed (bad JSON, bad field, bad id, bad query).
    BadRequest(String),
    /// No such route, or no such (live) paste.
    NotFound(&'static str),
    /// The path exists but not with this method; `allow` lists the methods.
    MethodNotAllowed { allow: &'static str },
    /// The body is over the limit.
    PayloadTooLarge { limit: usize },
    /// The body did not arrive in time.
    RequestTimeout,
    /// The database does not answer (health check).
    Unavailable(String),
    /// Something failed on our side; the detail is logged, never sent.
    Internal(String),
}

impl ApiError {
    /// The status code of each error: exhaustive on purpose.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON error answer; 5xx details go to the log only.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        match self {
            ApiError::BadRequest(msg) => error_response(status, &msg),
            ApiError::NotFound(what) => error_response(status, what),
            ApiError::MethodNotAllowed { allow } => {
                let mut resp = error_response(status, "method not allowed");
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                resp
            }
            // The rest of the body is unread: the answer closes the connection.
            ApiError::PayloadTooLarge { limit } => httpkit::closing(error_response(
                status,
                &format!("body is larger than {limit} bytes"),
            )),
            ApiError::RequestTimeout => httpkit::closing(error_response(
                status,
                "the request body did not arrive in time",
            )),
            ApiError::Unavailable(detail) => {
                tracing::warn!(%detail, "database unavailable");
                error_response(status, "unavailable")
            }
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                error_response(status, "internal error")
            }
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::BadRequest(msg) => write!(f, "bad request: {msg}"),
            ApiError::NotFound(what) => write!(f, "not found: {what}"),
            ApiError::MethodNotAllowed { allow } => write!(f, "method not allowed ({allow})"),
            ApiError::PayloadTooLarge { limit } => write!(f, "body over {limit} bytes"),
            ApiError::RequestTimeout => write!(f, "request body timed out"),
            ApiError::Unavailable(msg) => write!(f, "unavailable: {msg}"),
            ApiError::Internal(msg) => write!(f, "internal: {msg}"),
        }
    }
}

impl From<tokio_rusqlite::Error<rusqlite::Error>> for ApiError {
    fn from(err: tokio_rusqlite::Error<rusqlite::Error>) -> Self {
        ApiError::Internal(format!("database: {err}"))
    }
}
