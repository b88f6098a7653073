//! Dispatch of a parsed route to its handler, and what handlers share.

mod create;
mod pages;
mod pastes;

use std::future::Future;

use contract::CallError;
use http::{HeaderMap, Request, Response, header};
use httpkit::Body;
use hyper::body::Incoming;

use crate::routes::Route;
use crate::{ApiError, App};

/// Answers one public request.
pub(crate) async fn dispatch(app: &App, req: Request<Incoming>) -> Response<Body> {
    let mut resp = if too_many_headers(req.headers()) {
        ApiError::TooManyHeaders.into_response()
    } else {
        answer(app, req).await
    };
    pages::security_headers(resp.headers_mut());
    resp
}

async fn answer(app: &App, req: Request<Incoming>) -> Response<Body> {
    let route = match Route::parse(req.method(), req.uri().path()) {
        Ok(route) => route,
        // A malformed id on the paste's own URL (`/pastes/!!`) negotiates like any
        // other answer there: a browser gets the error page, curl the JSON.
        Err(err) if crate::routes::is_paste_url(req.method(), req.uri().path()) => {
            let mut resp = if crate::negotiate::prefers_html(req.headers()) {
                pages::error_page(err)
            } else {
                err.into_response()
            };
            resp.headers_mut()
                .insert(header::VARY, http::HeaderValue::from_static("Accept"));
            return resp;
        }
        Err(err) => return err.into_response(),
    };
    if let Route::GetPaste(id) = &route {
        // The paste's own URL answers JSON or a page by `Accept`, errors included.
        let html = crate::negotiate::prefers_html(req.headers());
        let result = pastes::get(app, &req, id).await;
        let mut resp = match result {
            Ok(resp) => resp,
            Err(err) if html => pages::error_page(err),
            Err(err) => err.into_response(),
        };
        resp.headers_mut()
            .insert(header::VARY, http::HeaderValue::from_static("Accept"));
        return resp;
    }
    let result = match route {
        Route::Index => Ok(pages::index(app, req.headers())),
        Route::Static => pages::asset(req.uri().path()),
        Route::Health => Ok(pages::health(app, req.headers())),
        Route::Ready => pages::ready(app).await,
        Route::OpenApi => Ok(crate::openapi::document()),
        Route::CreatePaste => create::create(app, req).await,
        Route::ListPastes => pastes::list(app, &req).await,
        Route::GetPaste(id) => pastes::get(app, &req, &id).await,
        Route::GetRaw(id) => pastes::raw(app, &req, &id).await,
        Route::RevealPaste(id) => Ok(pages::reveal(app, &id)
            .await
            .unwrap_or_else(pages::error_page)),
        Route::DeletePaste(id) => pastes::delete(app, &req, &id).await,
        Route::GetStats(id) => pastes::stats(app, &id).await,
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// One header-count limit for every client, direct or through the balancer: the
/// server's parser takes the balancer's forwarding headers on top of the limit, and
/// here they are not counted, so a webserver refuses exactly what the balancer does.
fn too_many_headers(headers: &HeaderMap) -> bool {
    let forwarding = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]
        .iter()
        .map(|name| headers.get_all(*name).iter().count().min(1))
        .sum::<usize>();
    headers.len().saturating_sub(forwarding) > httpkit::framing::MAX_HEADERS
}

/// Runs the store calls of one request within the webserver's store timeout, so the
/// webserver answers (504) before the balancer gives up waiting for it.
pub(crate) async fn within_store_timeout<T, E: Into<ApiError>>(
    app: &App,
    calls: impl Future<Output = Result<T, E>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(app.store_timeout, calls).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(ApiError::Upstream(CallError::Timeout)),
    }
}

/// The base URL links are built on: the configured public URL, else what the
/// balancer (`X-Forwarded-Host`, `X-Forwarded-Proto`) or the client (`Host`) says was
/// used. Never this server's own address: a request naming no usable host gets 400.
pub(crate) fn base_url(app: &App, headers: &HeaderMap) -> Result<String, ApiError> {
    link_base(app.public_url.as_deref(), headers)
}

fn link_base(public_url: Option<&str>, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(url) = public_url {
        return Ok(url.to_owned());
    }
    let only = |name: &str| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(one), None) => one.to_str().ok().map(str::trim),
            _ => None,
        }
    };
    let proto = match only("x-forwarded-proto").and_then(|v| v.split(',').next()) {
        Some(p) if p.trim() == "https" => "https",
        _ => "http",
    };
    let forwarded = only("x-forwarded-host")
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    let host = forwarded
        .or_else(|| only(header::HOST.as_str()))
        .filter(|h| valid_host(h))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "no usable Host header to build links on: send Host: <host[:port]>".into(),
            )
        })?;
    Ok(format!("{proto}://{host}"))
}

/// A host (and port) safe to echo into a URL and a `Location` header.
pub(crate) fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::{link_base, valid_host};
    use http::{HeaderMap, HeaderValue};

    proptest::proptest! {
        #[test]
        fn any_host_headers_give_a_plain_link_or_a_4xx_json_error(
            pairs in proptest::collection::vec(
                (proptest::sample::select(vec!["host", "x-forwarded-host", "x-forwarded-proto"]), "[ -~]{0,30}"),
                0..5,
            ),
        ) {
            let mut headers = HeaderMap::new();
            for (name, value) in &pairs {
                if let Ok(value) = HeaderValue::from_str(value) {
                    headers.append(*name, value);
                }
            }
            match link_base(None, &headers) {
                Ok(base) => {
                    let host = base.split_once("://").map(|(_, h)| h).unwrap_or("");
                    proptest::prop_assert!(valid_host(host), "{base}");
                }
                Err(err) => {
                    let resp = err.into_response();
                    proptest::prop_assert_eq!(resp.status(), http::StatusCode::BAD_REQUEST);
                }
            }
        }

        #[test]
        fn only_plain_hosts_are_echoed(host in ".{0,40}") {
            if valid_host(&host) {
                proptest::prop_assert!(!host.is_empty());
                proptest::prop_assert!(!host.contains(['/', ' ', '\r', '\n', '@', '?', '#']));
            }
        }
    }

    #[test]
    fn hosts_are_checked_before_echoing() {
        assert!(valid_host("localhost:3000"));
        assert!(valid_host("[::1]:3000"));
        assert!(valid_host("paste.example.com"));
        assert!(!valid_host("evil.com/x"));
        assert!(!valid_host("a b"));
        assert!(!valid_host("x\r\nSet-Cookie: a"));
        assert!(!valid_host(""));
    }
}
