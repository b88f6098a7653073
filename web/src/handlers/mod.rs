//! Dispatch of a parsed route to its handler, and what handlers share.

mod create;
mod pages;
mod pastes;

use http::{HeaderMap, Request, Response, header};
use httpkit::Body;
use hyper::body::Incoming;

use crate::routes::Route;
use crate::{ApiError, App};

/// Answers one public request.
pub(crate) async fn dispatch(app: &App, req: Request<Incoming>) -> Response<Body> {
    let route = match Route::parse(req.method(), req.uri().path()) {
        Ok(route) => route,
        Err(err) => return err.into_response(),
    };
    let result = match route {
        Route::Index => Ok(pages::index()),
        Route::Health => Ok(pages::health(app)),
        Route::Ready => pages::ready(app).await,
        Route::OpenApi => Ok(crate::openapi::document()),
        Route::CreatePaste => create::create(app, req).await,
        Route::ListPastes => pastes::list(app, &req).await,
        Route::GetPaste(id) => pastes::get(app, &req, &id).await,
        Route::GetRaw(id) => pastes::raw(app, &id).await,
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// The base URL links are built on: the configured public URL, else what the client
/// (or the balancer, in `X-Forwarded-*`) says it used, else this server's address.
pub(crate) fn base_url(app: &App, headers: &HeaderMap) -> String {
    if let Some(url) = &app.public_url {
        return url.clone();
    }
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let proto = match first("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    let host = first("x-forwarded-host")
        .or_else(|| first(header::HOST.as_str()))
        .filter(|h| valid_host(h))
        .unwrap_or(&app.local_addr);
    format!("{proto}://{host}")
}

/// A host (and port) safe to echo into a URL and a `Location` header.
fn valid_host(host: &str) -> bool {
    host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::valid_host;

    #[test]
    fn hosts_are_checked_before_echoing() {
        assert!(valid_host("localhost:3000"));
        assert!(valid_host("[::1]:3000"));
        assert!(valid_host("paste.example.com"));
        assert!(!valid_host("evil.com/x"));
        assert!(!valid_host("a b"));
        assert!(!valid_host("x\r\nSet-Cookie: a"));
    }
}
