//! Body helpers: the boxed body every server answers with, bounded reading of request
//! bodies, and JSON / JSON-error responses.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, Limited, combinators::BoxBody};
use serde::Serialize;

use crate::BoxError;

/// The response body type of every server: a fixed buffer or a streamed upstream body.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body holding `chunk` in full.
pub fn full(chunk: impl Into<Bytes>) -> Body {
    Full::new(chunk.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

/// Adds `X-Content-Type-Options: nosniff` unless the answer already says it: a
/// browser must take every answer (JSON, text, errors) for its declared type, never
/// guess HTML or script from its bytes. A static value: no allocation.
pub fn nosniff(headers: &mut http::HeaderMap) {
    if !headers.contains_key(header::X_CONTENT_TYPE_OPTIONS) {
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    }
}

/// `value` serialized as a JSON response with `status`, ending with a newline (so a
/// shell prompt after `curl` starts on a line of its own).
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            let mut resp = Response::new(full(bytes));
            *resp.status_mut() = status;
            resp.headers_mut().insert(header::CONTENT_TYPE, JSON);
            nosniff(resp.headers_mut());
            resp
        }
        Err(err) => {
            tracing::error!(%err, "could not serialize a response");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// Marks `resp` as the last answer on its connection (`Connection: close`). For
/// answers sent while the request's body is still unread (over the limit, too slow,
/// framing unknown): the server then closes the connection, and a client that is not
/// told so puts it back in its pool and sends its next request into a closing socket
/// (RFC 9112, section 9.6).
pub fn closing<B>(mut resp: Response<B>) -> Response<B> {
    resp.headers_mut()
        .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    resp
}

/// `{"error": message}` and a newline, with `status`. Callers keep 5xx messages generic.
pub fn error_response(status: StatusCode, message: &str) -> Response<Body> {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        error: &'a str,
    }
    let mut bytes = serde_json::to_vec(&ErrorBody { error: message })
        .unwrap_or_else(|_| b"{\"error\":\"internal error\"}".to_vec());
    bytes.push(b'\n');
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, JSON);
    nosniff(resp.headers_mut());
    resp
}

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// The body is longer than the limit (from `Content-Length` or while reading).
    TooLarge { limit: usize },
    /// The client went away or sent a broken body.
    Read(BoxError),
    /// The body did not arrive in time (a stalled or very slow client).
    TimedOut { after: std::time::Duration },
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge { limit } => write!(f, "body is larger than {limit} bytes"),
            BodyError::Read(err) => write!(f, "could not read the body: {err}"),
            BodyError::TimedOut { after } => {
                write!(f, "the body did not arrive within {} s", after.as_secs())
            }
        }
    }
}

impl std::error::Error for BodyError {}

/// How long a whole request body may take to arrive.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads a whole request body, but never more than `limit` bytes (a declared
/// `Content-Length` over the limit is refused before a byte is read) and never for
/// longer than [`BODY_READ_TIMEOUT`], so a stalled client cannot pin a server.
pub async fn read_body<B>(req: http::Request<B>, limit: usize) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    read_body_within(req, limit, BODY_READ_TIMEOUT).await
}

/// [`read_body`] with its own time limit.
pub async fn read_body_within<B>(
    req: http::Request<B>,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    tokio::time::timeout(timeout, read_limited(req, limit))
        .await
        .unwrap_or(Err(BodyError::TimedOut { after: timeout }))
}

async fn read_limited<B>(req: http::Request<B>, limit: usize) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(BodyError::TooLarge { limit })
        }
        Err(err) => Err(BodyError::Read(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_error_answers_say_nosniff() {
        for resp in [
            json_response(StatusCode::OK, &serde_json::json!({"a": 1})),
            error_response(StatusCode::SERVICE_UNAVAILABLE, "down"),
        ] {
            assert_eq!(resp.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
    }

    #[tokio::test]
    async fn read_body_enforces_the_limit() {
        let req = http::Request::new(Full::new(Bytes::from_static(b"hello world")));
        assert!(matches!(
            read_body(req, 5).await,
            Err(BodyError::TooLarge { limit: 5 })
        ));
        let req = http::Request::new(Full::new(Bytes::from_static(b"hello")));
        assert_eq!(read_body(req, 5).await.unwrap(), "hello");
    }

    #[tokio::test]
    async fn declared_length_over_the_limit_is_refused_early() {
        let req = http::Request::builder()
            .header(header::CONTENT_LENGTH, "1000000")
            .body(Full::new(Bytes::from_static(b"x")))
            .unwrap();
        assert!(matches!(
            read_body(req, 10).await,
            Err(BodyError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        use futures_util::StreamExt;
        // One chunk, then nothing ever again.
        let frames = futures_util::stream::iter([Ok::<_, BoxError>(http_body::Frame::data(
            Bytes::from_static(b"part"),
        ))])
        .chain(futures_util::stream::pending());
        let req = http::Request::new(http_body_util::StreamBody::new(frames));
        let got = read_body_within(req, 100, std::time::Duration::from_millis(50)).await;
        assert!(matches!(got, Err(BodyError::TimedOut { .. })), "{got:?}");
    }

    #[tokio::test]
    async fn error_bodies_are_json() {
        let resp = error_response(StatusCode::NOT_FOUND, "no \"such\" paste");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(bytes.ends_with(b"}\n"), "{bytes:?}");
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["error"], "no \"such\" paste");
    }

    #[tokio::test]
    async fn json_bodies_end_with_a_newline() {
        let resp = json_response(StatusCode::OK, &serde_json::json!({"a": [1, 2]}));
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"{\"a\":[1,2]}\n");
    }
}
