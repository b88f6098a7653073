//! The index page and the health endpoints.

use http::{HeaderValue, Response, StatusCode, header};
use httpkit::{Body, full, json_response};
use serde_json::json;

use crate::{ApiError, App};

const INDEX_HTML: &str = include_str!("index.html");

/// A small page to paste from a browser (it posts JSON with `fetch`).
pub(super) fn index() -> Response<Body> {
    let mut resp = Response::new(full(INDEX_HTML));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// Liveness: this process answers. Asked directly (an operator, the launcher), it
/// says which webserver answered (address and pid); through the balancer, which
/// always sets `X-Forwarded-For`, it shows only an opaque per-process `instance`, so
/// no internal address or pid leaks to the public.
pub(super) fn health(app: &App, headers: &http::HeaderMap) -> Response<Body> {
    if headers.contains_key("x-forwarded-for") {
        return json_response(
            StatusCode::OK,
            &json!({"status": "ok", "service": "web", "instance": app.instance}),
        );
    }
    json_response(
        StatusCode::OK,
        &json!({"status": "ok", "service": "web", "instance": app.instance, "addr": app.local_addr, "pid": std::process::id()}),
    )
}

/// Readiness: both storage services answer their health checks.
pub(super) async fn ready(app: &App) -> Result<Response<Body>, ApiError> {
    super::within_store_timeout(app, app.read.ready()).await?;
    Ok(json_response(StatusCode::OK, &json!({"status": "ready"})))
}
