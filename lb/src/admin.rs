//! The balancer's own endpoints, under a prefix the public API cannot use:
//! `GET /_lb/healthz`, `GET /_lb/status` (JSON), `GET /_lb/metrics` and `GET /metrics`
//! (Prometheus text). Everything else is forwarded to the webservers.

use std::sync::atomic::Ordering;
use std::time::Instant;

use http::{HeaderValue, Method, Response, StatusCode, header};
use serde::Serialize;

use crate::backend::{Registry, ejected_for};
use crate::metrics::{self, BackendView, Totals};

/// The prefix reserved for the balancer.
pub const PREFIX: &str = contract::defaults::LB_ADMIN_PREFIX;

/// An endpoint of the balancer itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRoute {
    Healthz,
    Status,
    Metrics,
}

/// What the balancer does with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Admin(AdminRoute),
    /// Under the admin prefix but not an endpoint.
    AdminNotFound,
    /// An admin endpoint with a method other than GET/HEAD.
    AdminMethodNotAllowed,
    Forward,
}

impl Route {
    pub fn parse(method: &Method, path: &str) -> Route {
        let admin = match path {
            "/_lb/healthz" => AdminRoute::Healthz,
            "/_lb/status" => AdminRoute::Status,
            "/_lb/metrics" | "/metrics" => AdminRoute::Metrics,
            _ if path == PREFIX || path.starts_with("/_lb/") => return Route::AdminNotFound,
            _ => return Route::Forward,
        };
        if method == Method::GET || method == Method::HEAD {
            Route::Admin(admin)
        } else {
            Route::AdminMethodNotAllowed
        }
    }
}

/// Answers an admin request.
pub fn respond(route: Route, registry: &Registry, totals: &Totals) -> Response<httpkit::Body> {
    match route {
        Route::Admin(AdminRoute::Healthz) => {
            httpkit::json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))
        }
        Route::Admin(AdminRoute::Status) => {
            httpkit::json_response(StatusCode::OK, &status(registry, totals))
        }
        Route::Admin(AdminRoute::Metrics) => metrics_response(registry, totals),
        Route::AdminNotFound => httpkit::error_response(StatusCode::NOT_FOUND, "not found"),
        Route::AdminMethodNotAllowed => {
            let mut resp =
                httpkit::error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            resp
        }
        Route::Forward => httpkit::error_response(StatusCode::NOT_FOUND, "not found"),
    }
}

fn metrics_response(registry: &Registry, totals: &Totals) -> Response<httpkit::Body> {
    let backends = registry.snapshot();
    let now = Instant::now();
    let states: Vec<_> = backends.iter().map(|b| b.health()).collect();
    let views: Vec<BackendView<'_>> = backends
        .iter()
        .zip(&states)
        .map(|(b, h)| BackendView {
            addr: b.addr(),
            up: h.is_up(),
            ejected: h.is_ejected(now),
            stats: &b.stats,
        })
        .collect();
    let mut resp = Response::new(httpkit::full(metrics::render(totals, &views)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    httpkit::nosniff(resp.headers_mut());
    resp
}

#[derive(Serialize)]
struct Status {
    requests: u64,
    retries: u64,
    reloads: u64,
    reloads_rejected: u64,
    backends: Vec<BackendStatus>,
}

#[derive(Serialize)]
struct BackendStatus {
    addr: String,
    /// Active health checks say it is up.
    up: bool,
    /// Passively ejected right now.
    ejected: bool,
    ejected_for_ms: Option<u128>,
    /// Gets new requests: up and not ejected.
    available: bool,
    requests: u64,
    errors: u64,
    ejections: u64,
    in_flight: u64,
}

fn status(registry: &Registry, totals: &Totals) -> Status {
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let backends = registry
        .snapshot()
        .iter()
        .map(|b| {
            let h = b.health();
            let left = ejected_for(&h);
            BackendStatus {
                addr: b.addr().to_owned(),
                up: h.is_up(),
                ejected: left.is_some(),
                ejected_for_ms: left.map(|d| d.as_millis()),
                available: h.is_up() && left.is_none(),
                requests: b.stats.requests(),
                errors: b.stats.errors(),
                ejections: load(&b.stats.ejections),
                in_flight: b.stats.in_flight(),
            }
        })
        .collect();
    Status {
        requests: totals.requests.get(),
        retries: load(&totals.retries),
        reloads: load(&totals.reloads),
        reloads_rejected: load(&totals.reloads_rejected),
        backends,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            Route::parse(&Method::GET, "/_lb/status"),
            Route::Admin(AdminRoute::Status)
        );
        assert_eq!(
            Route::parse(&Method::HEAD, "/metrics"),
            Route::Admin(AdminRoute::Metrics)
        );
        assert_eq!(
            Route::parse(&Method::POST, "/_lb/healthz"),
            Route::AdminMethodNotAllowed
        );
        assert_eq!(
            Route::parse(&Method::GET, "/_lb/nope"),
            Route::AdminNotFound
        );
        assert_eq!(Route::parse(&Method::GET, "/_lb"), Route::AdminNotFound);
        assert_eq!(Route::parse(&Method::GET, "/healthz"), Route::Forward);
        assert_eq!(Route::parse(&Method::GET, "/_lbx"), Route::Forward);
        assert_eq!(Route::parse(&Method::POST, "/pastes"), Route::Forward);
    }
}
