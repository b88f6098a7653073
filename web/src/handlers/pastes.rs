//! `GET /pastes/{id}`, `GET /pastes/{id}/raw` and `GET /pastes` (a page, newest first).

use http::{HeaderValue, Request, Response, StatusCode, header};
use httpkit::{Body, full, json_response};
use hyper::body::Incoming;
use read::Paste;
use serde::Serialize;
use sqlsvc::api::PasteId;

use super::base_url;
use crate::time::rfc3339;
use crate::{ApiError, App};

/// Pastes per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

#[derive(Serialize)]
struct PasteView<'a> {
    paste_id: String,
    url: String,
    text: &'a str,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

impl<'a> PasteView<'a> {
    fn new(paste: &'a Paste, base: &str) -> Self {
        let meta = &paste.meta;
        PasteView {
            paste_id: meta.paste_id.to_string(),
            url: format!("{base}/pastes/{}", meta.paste_id),
            text: &paste.text,
            created_at: rfc3339(meta.created_at),
            expires_at: meta.expires_at.map(rfc3339),
            size: meta.size,
        }
    }
}

pub(super) async fn get(
    app: &App,
    req: &Request<Incoming>,
    id: &PasteId,
) -> Result<Response<Body>, ApiError> {
    let paste = app.read.get(id).await?;
    let base = base_url(app, req.headers());
    Ok(json_response(
        StatusCode::OK,
        &PasteView::new(&paste, &base),
    ))
}

/// The text alone, as plain text, never sniffed as HTML.
pub(super) async fn raw(app: &App, id: &PasteId) -> Result<Response<Body>, ApiError> {
    let paste = app.read.get(id).await?;
    let mut resp = Response::new(full(paste.text.as_bytes().to_vec()));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

pub(super) async fn list(app: &App, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (limit, cursor) = page_query(req.uri().query().unwrap_or(""))?;
    let page = app.read.list(limit, cursor).await?;
    let base = base_url(app, req.headers());
    let views: Vec<PasteView<'_>> = page
        .pastes
        .iter()
        .map(|p| PasteView::new(p, &base))
        .collect();
    let mut resp = json_response(StatusCode::OK, &views);
    if let Some(next) = &page.next_cursor {
        let link = format!("<{base}/pastes?limit={limit}&cursor={next}>; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(resp)
}

/// `limit` and `cursor` from the query string; other parameters are ignored.
fn page_query(query: &str) -> Result<(u32, Option<&str>), ApiError> {
    let mut limit = DEFAULT_LIMIT;
    let mut cursor = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "limit must be a number from 1 to {MAX_LIMIT}"
                        ))
                    })?;
            }
            "cursor" => {
                let valid = !value.is_empty()
                    && value.len() <= 256
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !valid {
                    return Err(ApiError::BadRequest("malformed cursor".into()));
                }
                cursor = Some(value);
            }
            _ => {}
        }
    }
    Ok((limit, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_query_defaults_and_bounds() {
        assert_eq!(page_query("").unwrap(), (50, None));
        assert_eq!(
            page_query("limit=10&cursor=abc_-9").unwrap(),
            (10, Some("abc_-9"))
        );
        assert!(page_query("limit=0").is_err());
        assert!(page_query("limit=501").is_err());
        assert!(page_query("limit=x").is_err());
        assert!(page_query("cursor=a%20b").is_err());
        assert!(page_query("cursor=").is_err());
        assert_eq!(page_query("foo=bar").unwrap(), (50, None));
    }
}
