//! The service's errors: startup failures (`Error`) and request failures (`ApiError`),
//! the latter mapped to status codes in one exhaustive place.

use std::path::PathBuf;

use http::{HeaderValue, Response, StatusCode, header};
use httpkit::Body;

use crate::embedded::OpenError;
use crate::mongo::MongoSetupError;
use crate::store::StoreError;

/// Why the service could not start.
#[derive(Debug)]
pub enum Error {
    /// A setting has a value the service cannot run with.
    InvalidConfig {
        setting: &'static str,
        reason: String,
    },
    /// The embedded store's file could not be opened.
    OpenEmbedded { path: PathBuf, source: OpenError },
    /// The MongoDB client could not be built (bad URI or options; a server that is
    /// down is not an error: the service starts and reports not ready).
    MongoSetup(MongoSetupError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidConfig { setting, reason } => {
                write!(f, "invalid setting {setting}: {reason}")
            }
            Error::OpenEmbedded { path, source } => {
                write!(f, "embedded store {}: {source}", path.display())
            }
            Error::MongoSetup(err) => write!(f, "MongoDB backend: {err}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::InvalidConfig { .. } => None,
            Error::OpenEmbedded { source, .. } => Some(source),
            Error::MongoSetup(err) => Some(err),
        }
    }
}

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// The request is malformed; the message says how.
    BadRequest(String),
    /// No text under that path.
    TextNotFound,
    /// No such route.
    UnknownRoute,
    /// A known route with another method; the value is the `Allow` header.
    MethodNotAllowed(&'static str),
    /// The body is over the limit.
    TooLarge { limit: usize },
    /// The body did not arrive in time.
    RequestTimeout,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        ApiError::Store(err)
    }
}

impl ApiError {
    /// The JSON error response; 5xx details go to the log only.
    pub(crate) fn into_response(self) -> Response<Body> {
        let (status, message) = match &self {
            ApiError::BadRequest(msg) => (StatusCode::BAD_REQUEST, msg.clone()),
            ApiError::TextNotFound => (StatusCode::NOT_FOUND, "no such text".into()),
            ApiError::UnknownRoute => (StatusCode::NOT_FOUND, "no such route".into()),
            ApiError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method not allowed".into())
            }
            ApiError::TooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body is larger than {limit} bytes"),
            ),
            ApiError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time".into(),
            ),
            ApiError::Store(StoreError::Unavailable(detail)) => {
                tracing::warn!(%detail, "store unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "store unavailable".into())
            }
            ApiError::Store(StoreError::Internal(detail)) => {
                tracing::error!(%detail, "store failure");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        };
        let mut resp = httpkit::error_response(status, &message);
        match self {
            ApiError::MethodNotAllowed(allow) => {
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            // The rest of the body is unread: the answer closes the connection.
            ApiError::TooLarge { .. } | ApiError::RequestTimeout => {
                resp = httpkit::closing(resp);
            }
            _ => {}
        }
        resp
    }
}
