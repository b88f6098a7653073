//! The HTML pages (home, a paste, an error for browsers), their static files, the
//! security headers every answer carries, and the health endpoints.
//!
//! No inline script or style anywhere, so the Content-Security-Policy can forbid both:
//! the stylesheet and the script are files embedded in the binary, served under names
//! holding a hash of their content and cached as immutable.

use std::fmt::Write as _;
use std::sync::LazyLock;

use contract::PasteId;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use httpkit::{Body, full, json_response};
use read::Paste;
use serde_json::json;

use super::within_store_timeout;
use crate::time::rfc3339;
use crate::{ApiError, App};

const INDEX_HTML: &str = include_str!("index.html");
const APP_CSS: &str = include_str!("../static/app.css");
const APP_JS: &str = include_str!("../static/app.js");

/// The policy of every HTML page: only this origin's files, nothing inline, no
/// framing, forms only to this origin.
pub(crate) const HTML_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// The policy of every other answer (JSON, raw text, files): nothing at all.
const OTHER_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Pastes with more lines than this are shown as one block, without a link per line:
/// a page of half a million empty lines would otherwise weigh tens of megabytes.
const MAX_LINKED_LINES: usize = 50_000;

/// Lines per chunk the browser may skip laying out while it is off screen (the
/// stylesheet's `content-visibility: auto` on `.c`).
const LINES_PER_CHUNK: usize = 500;

/// A static file: its path (with the content hash) and its bytes.
pub(crate) struct Asset {
    pub(crate) path: String,
    content_type: &'static str,
    body: &'static str,
}

pub(crate) struct Assets {
    pub(crate) css: Asset,
    pub(crate) js: Asset,
}

/// The static files, named once at startup from their content.
pub(crate) static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    css: Asset {
        path: format!("/static/app.{:016x}.css", fnv1a(APP_CSS.as_bytes())),
        content_type: "text/css; charset=utf-8",
        body: APP_CSS,
    },
    js: Asset {
        path: format!("/static/app.{:016x}.js", fnv1a(APP_JS.as_bytes())),
        content_type: "text/javascript; charset=utf-8",
        body: APP_JS,
    },
});

/// FNV-1a, 64 bits: enough to give each version of a file its own name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `GET /static/{name}`: the current files only (an old hash is a 404, never another
/// version under the old name), cached for a year.
pub(super) fn asset(path: &str) -> Result<Response<Body>, ApiError> {
    let asset = [&ASSETS.css, &ASSETS.js]
        .into_iter()
        .find(|a| a.path == path)
        .ok_or(ApiError::NoRoute)?;
    let mut resp = Response::new(full(asset.body));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(resp)
}

/// The headers on every answer: never sniffed, never framed, no referrer sent from our
/// pages, and a Content-Security-Policy (strict for HTML, nothing allowed otherwise).
pub(super) fn security_headers(headers: &mut HeaderMap) {
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    httpkit::nosniff(headers);
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if html { HTML_CSP } else { OTHER_CSP }),
    );
}

fn html_response(status: StatusCode, html: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(html));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// The home page: a form that works without JavaScript (it posts
/// `application/x-www-form-urlencoded`, answered with 303 to the paste's page) and,
/// with it, posts JSON and goes to the paste's page itself.
pub(super) fn index(app: &App, headers: &HeaderMap) -> Response<Body> {
    let base = super::base_url(app, headers).unwrap_or_else(|_| "http://HOST".to_owned());
    let html = INDEX_HTML
        .replace("{{css}}", &ASSETS.css.path)
        .replace("{{js}}", &ASSETS.js.path)
        .replace("{{base}}", &escape(&base));
    html_response(StatusCode::OK, html)
}

/// The page head shared by every page, up to and including `<main>`.
fn head(out: &mut String, title: &str, body_attrs: &str) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n<title>{}</title>\n\
         <link rel=\"stylesheet\" href=\"{}\">\n<script src=\"{}\" defer></script>\n\
         </head>\n<body{body_attrs}>\n<header class=\"top\"><a href=\"/\">pastebin</a></header>\n<main>\n",
        escape(title),
        ASSETS.css.path,
        ASSETS.js.path,
    );
}

fn tail(out: &mut String) {
    out.push_str("</main>\n</body>\n</html>\n");
}

/// `<time>` holding an RFC 3339 instant, shown in UTC until the script shows it in the
/// reader's time zone.
fn time_element(secs: i64) -> String {
    let iso = rfc3339(secs);
    let shown = format!("{} {} UTC", &iso[..10], &iso[11..19]);
    format!("<time datetime=\"{iso}\">{shown}</time>")
}

/// What a paste page shows besides the paste itself.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PageExtra {
    /// Its view count, when sqlsvc answered it.
    pub(crate) views: Option<u64>,
    /// A burn-after-reading paste, revealed (and so removed) by this request: no raw or
    /// download links (they would find nothing), a notice that this is the only time.
    pub(crate) revealed: bool,
}

/// `GET /pastes/{id}` for a browser. A burn-after-reading paste is not touched: the
/// answer is a page that says so, with a Reveal button (a POST form, so no link
/// preview, crawler or prefetch ever burns it). Any other paste is read (a `GET`
/// counts a view, a `HEAD` does not) and shown with its view count.
pub(crate) async fn paste_answer(
    app: &App,
    method: &http::Method,
    id: &PasteId,
) -> Result<Response<Body>, ApiError> {
    let paste = within_store_timeout(app, app.read.get(id)).await?;
    if paste.meta.burn_after_reading {
        let mut resp = html_response(StatusCode::OK, burn_notice_page(&paste));
        no_store(resp.headers_mut());
        return Ok(resp);
    }
    if method != http::Method::HEAD {
        app.read.count_view(id);
    }
    let views = page_views(app, id).await;
    let page = paste_page(
        &paste,
        PageExtra {
            views,
            revealed: false,
        },
    );
    page_response(app, page).await
}

/// How long a paste page waits for its view count before it is sent without one. The
/// count is one indexed read in sqlsvc (as quick as a deletion-log poll, which gets
/// [`read::invalidation::POLL_TIMEOUT`]); a page of a cached paste must not wait a
/// whole store timeout for a figure while sqlsvc hangs.
pub(crate) const PAGE_VIEWS_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// The view count a page shows: the one flushed so far (views come in batches), or
/// none when sqlsvc is known to be down or does not answer within
/// [`PAGE_VIEWS_TIMEOUT`]; the page is served either way.
async fn page_views(app: &App, id: &PasteId) -> Option<u64> {
    if app.read.sqlsvc_down() {
        return None;
    }
    let limit = PAGE_VIEWS_TIMEOUT.min(app.store_timeout);
    match tokio::time::timeout(limit, app.read.stats(id)).await {
        Ok(Ok(stats)) => Some(stats.views),
        Ok(Err(err)) => {
            tracing::debug!(%err, "page shown without its view count");
            None
        }
        Err(_) => {
            tracing::debug!("page shown without its view count: sqlsvc did not answer in time");
            None
        }
    }
}

/// `POST /pastes/{id}/reveal`: the Reveal button of a burn-after-reading paste. Claims
/// it (exactly one reveal, on whatever webserver, gets the text) and shows it this
/// once; a paste that is not burn-after-reading is simply shown.
pub(crate) async fn reveal(app: &App, id: &PasteId) -> Result<Response<Body>, ApiError> {
    let paste = within_store_timeout(app, app.read.read(id)).await?;
    app.read.count_view(id);
    let mut resp = page_response(
        app,
        paste_page(
            &paste,
            PageExtra {
                views: None,
                revealed: paste.meta.burn_after_reading,
            },
        ),
    )
    .await?;
    no_store(resp.headers_mut());
    Ok(resp)
}

/// A page whose body holds its share of the in-flight budget while it is sent.
async fn page_response(app: &App, page: String) -> Result<Response<Body>, ApiError> {
    let mut resp = Response::new(app.in_flight.body(page.into_bytes()).await?);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(resp)
}

/// Neither the notice nor a revealed text may be kept by a cache.
fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The page a burn-after-reading link opens: what will happen, and the button.
fn burn_notice_page(paste: &Paste) -> String {
    let meta = &paste.meta;
    let id = meta.paste_id.to_string();
    let mut out = String::with_capacity(2048);
    head(
        &mut out,
        &format!("Paste {id}"),
        &format!(" class=\"burn\" data-paste=\"{id}\""),
    );
    let _ = write!(
        out,
        "<h1>Paste <code>{id}</code></h1>\n<p class=\"meta\">Created {}",
        time_element(meta.created_at)
    );
    if let Some(at) = meta.expires_at {
        let _ = write!(out, " · expires {}", time_element(at));
    }
    out.push_str("</p>\n");
    let _ = write!(
        out,
        "<p class=\"notice\" id=\"burn-notice\">This paste is burnt after reading: it can be \
         shown once, to one reader. Revealing it deletes it, for you and for everyone \
         else. Copy what you need before you leave the page.</p>\n\
         <form method=\"post\" action=\"/pastes/{id}/reveal\" id=\"reveal-form\">\
         <button type=\"submit\" id=\"reveal\">Reveal and burn</button></form>\n"
    );
    tail(&mut out);
    out
}

/// A paste's page: the text escaped, one linkable block per line (`#L12`), its times,
/// links to the raw text and a download, a copy button.
pub(crate) fn paste_page(paste: &Paste, extra: PageExtra) -> String {
    let meta = &paste.meta;
    let id = meta.paste_id.to_string();
    let text: &str = &paste.text;
    let lines = text.split_terminator('\n').count().max(1);
    let mut out = String::with_capacity(text.len() + lines * 48 + 2048);
    head(
        &mut out,
        &format!("Paste {id}"),
        &format!(" class=\"paste\" data-paste=\"{id}\""),
    );
    let _ = write!(out, "<h1>Paste <code>{id}</code></h1>\n<p class=\"meta\">");
    let _ = write!(out, "Created {}", time_element(meta.created_at));
    match meta.expires_at {
        Some(at) => {
            let _ = write!(out, " · expires {}", time_element(at));
        }
        None => out.push_str(" · never expires"),
    }
    let _ = write!(
        out,
        " · {} line{} · {} bytes",
        lines,
        if lines == 1 { "" } else { "s" },
        text.len()
    );
    if let Some(views) = extra.views {
        let _ = write!(
            out,
            " · <span id=\"views\">{views}</span> view{}",
            if views == 1 { "" } else { "s" }
        );
    }
    out.push_str("</p>\n");
    if extra.revealed {
        out.push_str(
            "<p class=\"notice\" id=\"burnt\">This paste was burnt after reading: it is \
             shown this once and is now deleted. Copy what you need before you leave \
             the page.</p>\n",
        );
    }
    if text.chars().any(is_bidi_control) {
        out.push_str(
            "<p class=\"notice\" id=\"bidi\">This text holds Unicode bidirectional control \
             characters: what is shown may read in another order than the characters \
             are stored. The raw text has them as they are.</p>\n",
        );
    }
    if extra.revealed {
        // Raw and download would find nothing now; Copy takes the text from the page.
        out.push_str(
            "<p class=\"actions\"><button type=\"button\" id=\"copy\" hidden>Copy</button></p>\n",
        );
    } else {
        let _ = writeln!(
            out,
            "<p class=\"actions\"><a href=\"/pastes/{id}/raw\" id=\"raw\">Raw</a> \
             <a href=\"/pastes/{id}/raw?download=1\" id=\"download\">Download</a> \
             <button type=\"button\" id=\"copy\" data-raw=\"/pastes/{id}/raw\" hidden>Copy</button> \
             <button type=\"button\" id=\"delete\" hidden>Delete</button></p>"
        );
    }
    out.push_str(
        "<input type=\"checkbox\" id=\"wrap\"><label for=\"wrap\" class=\"wrap-toggle\">Wrap long lines</label>\n",
    );
    if lines > MAX_LINKED_LINES {
        out.push_str("<pre class=\"code plain\" id=\"text\">");
        escape_into(&mut out, text);
        out.push_str("</pre>\n");
    } else {
        out.push_str("<div class=\"code\" id=\"text\"><div class=\"c\">");
        for (n, line) in text.split_terminator('\n').enumerate() {
            if n > 0 && n % LINES_PER_CHUNK == 0 {
                out.push_str("</div><div class=\"c\">");
            }
            let n = n + 1;
            let _ = write!(
                out,
                "<div class=\"l\" id=\"L{n}\"><a href=\"#L{n}\" data-n=\"{n}\"></a><span>"
            );
            escape_into(&mut out, line);
            out.push_str("</span></div>");
        }
        if text.is_empty() {
            out.push_str(
                "<div class=\"l\" id=\"L1\"><a href=\"#L1\" data-n=\"1\"></a><span></span></div>",
            );
        }
        out.push_str("</div></div>\n");
    }
    tail(&mut out);
    out
}

/// An error as a page, for a browser that asked for a paste page.
pub(super) fn error_page(err: ApiError) -> Response<Body> {
    let json = err.into_response();
    let status = json.status();
    let allow = json.headers().get(header::ALLOW).cloned();
    let message = match status {
        StatusCode::NOT_FOUND => {
            "There is no such paste: it never existed, it expired, it was deleted, or it \
             was burnt after reading."
        }
        StatusCode::BAD_REQUEST => "This is not a paste link.",
        s if s.is_server_error() => "The paste could not be read just now. Try again.",
        _ => "The paste could not be shown.",
    };
    let mut out = String::with_capacity(1024);
    head(&mut out, status.as_str(), "");
    let _ = write!(
        out,
        "<h1>{} {}</h1>\n<p>{message}</p>\n<p><a href=\"/\">New paste</a></p>\n",
        status.as_str(),
        escape(status.canonical_reason().unwrap_or(""))
    );
    tail(&mut out);
    let mut resp = html_response(status, out);
    if let Some(allow) = allow {
        resp.headers_mut().insert(header::ALLOW, allow);
    }
    resp
}

/// Unicode's explicit bidirectional formatting characters (embeddings, overrides,
/// isolates), the ones that can make text read in another order than stored.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

/// HTML-escapes `s` onto `out`, copying runs without special characters at once.
fn escape_into(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            b'\r' => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(rep);
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// Liveness: this process answers. Asked directly (an operator, the launcher), it
/// says which webserver answered (address and pid); through the balancer, which
/// always sets `X-Forwarded-For`, it shows only an opaque per-process `instance`, so
/// no internal address or pid leaks to the public. Asked directly, it also gives the
/// paste cache's figures.
pub(super) fn health(app: &App, headers: &http::HeaderMap) -> Response<Body> {
    if headers.contains_key("x-forwarded-for") {
        return json_response(
            StatusCode::OK,
            &json!({"status": "ok", "service": "web", "instance": app.instance}),
        );
    }
    json_response(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "service": "web",
            "instance": app.instance,
            "addr": app.local_addr,
            "pid": std::process::id(),
            "cache": app.read.cache_stats(),
        }),
    )
}

/// Readiness: both storage services answer their health checks.
pub(super) async fn ready(app: &App) -> Result<Response<Body>, ApiError> {
    super::within_store_timeout(app, app.read.ready()).await?;
    Ok(json_response(StatusCode::OK, &json!({"status": "ready"})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paste(text: &str) -> Paste {
        Paste {
            meta: contract::meta::Meta {
                paste_id: "abcDEF0123".parse().unwrap(),
                paste_path: "p".parse().unwrap(),
                created_at: 1_795_833_289,
                expires_at: Some(1_795_836_889),
                size: Some(text.len() as u64),
                burn_after_reading: false,
                unlisted: false,
            },
            text: text.into(),
        }
    }

    #[test]
    fn the_text_is_escaped_and_every_line_linked() {
        let html = paste_page(
            &paste("<script>alert(1)</script>\n\"a\" & 'b'\n\nlast"),
            PageExtra::default(),
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&quot;a&quot; &amp; &#39;b&#39;"));
        assert_eq!(
            html.matches("<script").count(),
            1,
            "only the page's own script"
        );
        for n in 1..=4 {
            assert!(html.contains(&format!("id=\"L{n}\"><a href=\"#L{n}\" data-n=\"{n}\">")));
        }
        assert!(!html.contains("id=\"L5\""));
        assert!(
            html.contains("<time datetime=\"2026-11-28T02:34:49Z\">2026-11-28 02:34:49 UTC</time>")
        );
        assert!(!html.contains("id=\"bidi\""));
        assert!(!html.contains("style="), "no inline style");
    }

    #[test]
    fn lines_come_in_chunks() {
        let text = "x\n".repeat(LINES_PER_CHUNK * 2 + 1);
        let html = paste_page(&paste(&text), PageExtra::default());
        assert_eq!(html.matches("<div class=\"c\">").count(), 3);
        assert!(html.contains("</div></div><div class=\"c\"><div class=\"l\" id=\"L501\">"));
    }

    #[test]
    fn bidi_controls_are_pointed_out() {
        let html = paste_page(&paste("abc\u{202E}def"), PageExtra::default());
        assert!(html.contains("id=\"bidi\""));
    }

    #[test]
    fn huge_pastes_are_one_block() {
        let text = "x\n".repeat(MAX_LINKED_LINES + 1);
        let html = paste_page(&paste(&text), PageExtra::default());
        assert!(html.contains("<pre class=\"code plain\""));
        assert!(!html.contains("id=\"L1\""));
    }

    #[test]
    fn assets_are_named_by_content_and_cached_for_good() {
        assert!(ASSETS.js.path.starts_with("/static/app.") && ASSETS.js.path.ends_with(".js"));
        assert_eq!(
            ASSETS.css.path.len(),
            "/static/app.".len() + 16 + ".css".len()
        );
        let resp = asset(&ASSETS.js.path).unwrap();
        assert_eq!(
            resp.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert!(asset("/static/app.0000000000000000.js").is_err());
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
    }

    #[test]
    fn html_gets_the_strict_policy_and_json_the_empty_one() {
        let mut resp = html_response(StatusCode::OK, "x");
        security_headers(resp.headers_mut());
        assert_eq!(resp.headers()[header::CONTENT_SECURITY_POLICY], HTML_CSP);
        assert_eq!(resp.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let mut resp = json_response(StatusCode::OK, &json!({}));
        security_headers(resp.headers_mut());
        assert_eq!(resp.headers()[header::CONTENT_SECURITY_POLICY], OTHER_CSP);
        assert_eq!(resp.headers()[header::REFERRER_POLICY], "no-referrer");
    }
}
