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

/// Liveness: this process answers. Says which webserver answered, and its cache's
/// figures.
pub(super) fn health(app: &App) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "service": "web",
            "addr": app.local_addr,
            "pid": std::process::id(),
            "cache": app.read.cache_stats(),
        }),
    )
}

/// Readiness: both storage services answer their health checks.
pub(super) async fn ready(app: &App) -> Result<Response<Body>, ApiError> {
    app.read.ready().await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"status": "ready", "addr": app.local_addr}),
    ))
}
