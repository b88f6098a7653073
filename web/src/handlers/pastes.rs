//! `GET /pastes/{id}`, `GET /pastes/{id}/raw`, `GET /pastes` (a page, newest first),
//! `DELETE /pastes/{id}` and `GET /pastes/{id}/stats`.

use std::io::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use contract::PasteId;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use httpkit::Body;
use hyper::body::Incoming;
use read::Paste;
use serde::Serialize;

use super::{base_url, within_store_timeout};
use crate::time::{rfc3339, write_rfc3339};
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
    if crate::negotiate::prefers_html(req.headers()) {
        // The page: a burn-after-reading paste gets a notice, not burnt (pages.rs).
        return super::pages::paste_answer(app, req.method(), id).await;
    }
    let base = base_url(app, req.headers())?;
    let paste = fetch(app, req, id).await?;
    json_answer(app, paste_json(&paste, &base)?).await
}

/// The paste from the cache at once when it is there (no timer is set up for a
/// hit), else from the stores within the store timeout.
async fn read_paste(app: &App, id: &PasteId) -> Result<Arc<Paste>, ApiError> {
    match app.read.cached(id) {
        Some(cached) => cached.map_err(Into::into),
        None => within_store_timeout(app, app.read.get(id)).await,
    }
}

/// A paste's JSON answer (what `PasteView` serializes to), written straight into one
/// buffer of the right size: the hot path of `GET /pastes/{id}`, so no intermediate
/// strings. Strings that may need escaping go through serde_json's escaper.
fn paste_json(paste: &Paste, base: &str) -> Result<Vec<u8>, ApiError> {
    let meta = &paste.meta;
    let id = meta.paste_id.as_str();
    // Escapes may make it longer; this is the size without any, plus the newline.
    let mut json =
        Vec::with_capacity(paste.text.len() + base.len() + 2 * id.len() + 2 * RFC3339_LEN + 128);
    let failed = |err: serde_json::Error| {
        tracing::error!(%err, "could not serialize a paste");
        ApiError::Internal
    };
    json.extend_from_slice(b"{\"paste_id\":\"");
    json.extend_from_slice(id.as_bytes());
    json.extend_from_slice(b"\",\"url\":");
    json_url(&mut json, base, id).map_err(failed)?;
    json.extend_from_slice(b",\"text\":");
    serde_json::to_writer(&mut json, &*paste.text).map_err(failed)?;
    json.extend_from_slice(b",\"created_at\":\"");
    write_rfc3339(&mut json, meta.created_at);
    json.push(b'"');
    if let Some(expires_at) = meta.expires_at {
        json.extend_from_slice(b",\"expires_at\":\"");
        write_rfc3339(&mut json, expires_at);
        json.push(b'"');
    }
    if let Some(size) = meta.size {
        json.extend_from_slice(b",\"size\":");
        // Writing to a Vec cannot fail.
        let _ = write!(json, "{size}");
    }
    json.push(b'}');
    Ok(json)
}

/// Bytes of a timestamp as `rfc3339` writes it for years 0000-9999.
const RFC3339_LEN: usize = 20;

/// The paste's URL as a JSON string. The base is a checked host or the configured
/// public URL: written as is unless it holds a character JSON must escape.
fn json_url(json: &mut Vec<u8>, base: &str, id: &str) -> Result<(), serde_json::Error> {
    if base.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        return serde_json::to_writer(json, &format!("{base}/pastes/{id}"));
    }
    json.push(b'"');
    json.extend_from_slice(base.as_bytes());
    json.extend_from_slice(b"/pastes/");
    json.extend_from_slice(id.as_bytes());
    json.push(b'"');
    Ok(())
}

/// The paste for one request: a `GET` reads it (a burn-after-reading paste is
/// claimed: only one reader gets it) and counts a view; a `HEAD` only looks, so it
/// neither burns nor counts.
async fn fetch(
    app: &App,
    req: &Request<Incoming>,
    id: &PasteId,
) -> Result<std::sync::Arc<Paste>, ApiError> {
    if req.method() == Method::HEAD {
        return read_paste(app, id).await;
    }
    // A cached paste is never burn-after-reading (the cache refuses those), so a hit
    // needs no claim; a miss reads (and claims) through the stores.
    let paste = match app.read.cached(id) {
        Some(cached) => cached?,
        None => within_store_timeout(app, app.read.read(id)).await?,
    };
    app.read.count_view(id);
    Ok(paste)
}

/// `DELETE /pastes/{id}` with `Authorization: Bearer <token>`: 204 once deleted. A
/// missing, malformed or wrong token gets exactly the answer of an unknown id (404),
/// so ids cannot be probed; the token is compared (as a hash, in constant time) in
/// sqlsvc, and never logged.
pub(super) async fn delete(
    app: &App,
    req: &Request<Incoming>,
    id: &PasteId,
) -> Result<Response<Body>, ApiError> {
    let Some(token) = bearer_token(req.headers()) else {
        return Err(ApiError::NotFound);
    };
    if !within_store_timeout(app, app.write.delete(id, token)).await? {
        return Err(ApiError::NotFound);
    }
    // This webserver never serves it again; the others drop it on their next poll of
    // the deletion log.
    app.read.forget(id);
    let mut resp = Response::new(httpkit::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

/// The token of `Authorization: Bearer <token>`, if it is shaped like one (1 to 128
/// characters of `[0-9A-Za-z]`); anything else is no token.
fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer")
        && (1..=128).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_alphanumeric()))
    .then_some(token)
}

/// `GET /pastes/{id}/stats`: `{"views": N, "monthly": {"YYYY-MM": N}}`, counted by
/// every webserver and flushed in batches.
pub(super) async fn stats(app: &App, id: &PasteId) -> Result<Response<Body>, ApiError> {
    let stats = within_store_timeout(app, app.read.stats(id)).await?;
    Ok(httpkit::json_response(StatusCode::OK, &stats))
}

/// A JSON answer whose body holds its share of the in-flight budget while it is sent;
/// it ends with a newline, like every JSON answer.
async fn json_answer(app: &App, mut json: Vec<u8>) -> Result<Response<Body>, ApiError> {
    json.push(b'\n');
    let mut resp = Response::new(app.in_flight.body(json).await?);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// The text alone, as plain text, never sniffed as HTML; with `download=1` in the
/// query, as a file to save (`{id}.txt`).
pub(super) async fn raw(
    app: &App,
    req: &Request<Incoming>,
    id: &PasteId,
) -> Result<Response<Body>, ApiError> {
    let download = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair == "download=1"));
    let paste = fetch(app, req, id).await?;
    // The cached text itself, not a copy: the body keeps the paste alive until sent.
    let text = Bytes::from_owner(PasteText(paste));
    let mut resp = Response::new(app.in_flight.body(text).await?);
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if download {
        // The id is [0-9A-Za-z]{10}: always a valid header value.
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.txt\"")) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(resp)
}

/// A paste's text as the bytes of a response body.
struct PasteText(Arc<Paste>);

impl AsRef<[u8]> for PasteText {
    fn as_ref(&self) -> &[u8] {
        self.0.text.as_bytes()
    }
}

/// A page of pastes, newest first. The page stops before its JSON answer passes
/// [`httpkit::limits::PAGE_BUDGET_BYTES`] (counted as sent, escapes included), but
/// always holds at least one paste; `Link` continues right after the last one sent.
pub(super) async fn list(app: &App, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (limit, cursor) = page_query(req.uri().query().unwrap_or(""))?;
    let base = base_url(app, req.headers())?;
    let page = within_store_timeout(app, app.read.list(limit, cursor)).await?;
    // The page can be cut only where a cursor continues it.
    let budget = if page.cursors.len() == page.pastes.len() {
        httpkit::limits::PAGE_BUDGET_BYTES
    } else {
        usize::MAX
    };
    let (json, sent) = page_json(&page, &base, budget)?;
    let next = if sent < page.pastes.len() {
        sent.checked_sub(1).and_then(|last| page.cursors.get(last))
    } else {
        page.next_cursor.as_ref()
    };
    let mut resp = json_answer(app, json).await?;
    if let Some(next) = next {
        let link = format!("<{base}/pastes?limit={limit}&cursor={next}>; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(resp)
}

/// The JSON array of the first pastes of `page` that fit in `budget` bytes (at least
/// one), and how many that is.
fn page_json(page: &read::Page, base: &str, budget: usize) -> Result<(Vec<u8>, usize), ApiError> {
    let mut json = Vec::with_capacity(budget.min(64 * 1024));
    json.push(b'[');
    let mut sent = 0;
    for paste in &page.pastes {
        let item = serde_json::to_vec(&PasteView::new(paste, base)).map_err(|err| {
            tracing::error!(%err, "could not serialize a paste");
            ApiError::Internal
        })?;
        // One byte for the comma or the closing bracket.
        if sent > 0 && json.len() + item.len() + 1 > budget {
            break;
        }
        if sent > 0 {
            json.push(b',');
        }
        json.extend_from_slice(&item);
        sent += 1;
    }
    json.push(b']');
    Ok((json, sent))
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

    proptest::proptest! {
        #[test]
        fn any_listing_query_is_a_page_or_a_4xx_json_error(query in ".{0,80}") {
            if let Err(err) = page_query(&query) {
                let resp = err.into_response();
                proptest::prop_assert!(resp.status().is_client_error());
                proptest::prop_assert_eq!(&resp.headers()[header::CONTENT_TYPE], "application/json");
            }
        }
    }

    fn paste(n: usize, text: &str) -> Paste {
        Paste {
            meta: contract::meta::Meta {
                paste_id: format!("{n:0>10}").parse().unwrap(),
                paste_path: format!("p{n}").parse().unwrap(),
                created_at: 0,
                expires_at: None,
                size: Some(text.len() as u64),
                burn_after_reading: false,
                unlisted: false,
            },
            text: text.into(),
        }
    }

    proptest::proptest! {
        #[test]
        fn the_hand_written_json_is_what_serde_writes(
            text in "\\PC{1,40}|[\\x00-\\x7f]{1,40}",
            base in proptest::sample::select(vec!["http://h:3000", "https://a.example", "http://q\"\\x"]),
            created_at in -100_000_000_000i64..100_000_000_000,
            expires_at in proptest::option::of(0i64..300_000_000_000),
            size in proptest::option::of(0u64..u64::MAX),
        ) {
            let mut p = paste(7, &text);
            p.meta.created_at = created_at;
            p.meta.expires_at = expires_at;
            p.meta.size = size;
            let ours = paste_json(&p, base).unwrap();
            let serde = serde_json::to_vec(&PasteView::new(&p, base)).unwrap();
            proptest::prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(serde).unwrap());
        }
    }

    #[test]
    fn a_page_is_cut_by_its_escaped_size() {
        // Control characters: 6 bytes of JSON per byte of text.
        let text = "\u{1}".repeat(1000);
        let page = read::Page {
            pastes: (0..10).map(|n| paste(n, &text)).collect(),
            cursors: (0..10).map(|n| format!("c{n}")).collect(),
            next_cursor: Some("c9".into()),
        };
        let (json, sent) = page_json(&page, "http://h", 20_000).unwrap();
        assert_eq!(sent, 3, "{} bytes", json.len());
        assert!(json.len() <= 20_000);
        let parsed: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed.len(), 3);
        // At least one paste, whatever its size.
        let (json, sent) = page_json(&page, "http://h", 10).unwrap();
        assert_eq!(sent, 1);
        assert!(json.len() > 6000);
    }
}
