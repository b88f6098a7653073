//! The errors a webserver answers with, and their one mapping to status codes.

use contract::CallError;
use http::{HeaderValue, Response, StatusCode, header};
use httpkit::{Body, error_response};

/// Everything that can go wrong with a public request.
#[derive(Debug)]
pub enum ApiError {
    /// The request is malformed; the message says how.
    BadRequest(String),
    /// No such paste (or it expired).
    NotFound,
    /// No such route.
    NoRoute,
    /// The route exists but not for this method; the value is the `Allow` header.
    MethodNotAllowed(&'static str),
    /// The body is larger than the limit, in bytes.
    PayloadTooLarge(usize),
    /// The body did not arrive in time.
    RequestTimeout,
    /// The body's content type is not one the route takes.
    UnsupportedMediaType(String),
    /// A storage service failed; classified by how.
    Upstream(CallError),
    /// More header lines than [`httpkit::framing::MAX_HEADERS`].
    TooManyHeaders,
    /// Too many large answers are being sent to slow readers; try again.
    Busy,
    /// A bug or an impossible state; details were logged.
    Internal,
}

impl ApiError {
    pub fn into_response(self) -> Response<Body> {
        let (status, message) = match &self {
            ApiError::BadRequest(msg) => (StatusCode::BAD_REQUEST, msg.clone()),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "paste not found".to_owned()),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "no such route".to_owned()),
            ApiError::MethodNotAllowed(allow) => {
                let mut resp = error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                return resp;
            }
            ApiError::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body is larger than {limit} bytes"),
            ),
            ApiError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time".to_owned(),
            ),
            ApiError::UnsupportedMediaType(ct) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content type {ct:?}: send application/json or text/plain"),
            ),
            ApiError::Upstream(err) => {
                let (status, msg) = upstream_status(err);
                tracing::warn!(%err, %status, "storage call failed");
                (status, msg.to_owned())
            }
            ApiError::TooManyHeaders => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("more than {} header lines", httpkit::framing::MAX_HEADERS),
            ),
            ApiError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy sending large answers; try again".to_owned(),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".to_owned(),
            ),
        };
        let resp = error_response(status, &message);
        match self {
            // The rest of the body is unread: the answer closes the connection.
            ApiError::PayloadTooLarge(_) | ApiError::RequestTimeout => httpkit::closing(resp),
            _ => resp,
        }
    }
}

/// Who failed decides the status: unreachable or not ready -> 503, slow -> 504, a
/// storage service that failed -> 502, and a storage service refusing what we sent
/// (or not finding what it was just asked for where the handler did not expect
/// that) is our bug -> 500. The message stays generic; the detail is logged.
fn upstream_status(err: &CallError) -> (StatusCode, &'static str) {
    const UNAVAILABLE: &str = "a storage service is unavailable";
    const FAILED: &str = "a storage service failed";
    match err {
        CallError::NotSent(_) | CallError::Unavailable(_) | CallError::Overloaded(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE)
        }
        CallError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "a storage service timed out"),
        CallError::Failed { .. } | CallError::BadResponse(_) => (StatusCode::BAD_GATEWAY, FAILED),
        CallError::NotFound | CallError::Conflict(_) | CallError::Invalid { .. } => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

impl From<read::ReadError> for ApiError {
    fn from(err: read::ReadError) -> Self {
        match err {
            read::ReadError::NotFound => ApiError::NotFound,
            read::ReadError::BadCursor(_) => ApiError::BadRequest("malformed cursor".into()),
            read::ReadError::Upstream(err) => ApiError::Upstream(err),
        }
    }
}

impl From<write::WriteError> for ApiError {
    fn from(err: write::WriteError) -> Self {
        match err {
            write::WriteError::Text(err) | write::WriteError::Meta(err) => ApiError::Upstream(err),
        }
    }
}
