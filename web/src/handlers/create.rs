//! `POST /pastes`: a JSON body `{"text": ..., "expires_in": seconds,
//! "burn_after_reading": bool, "visibility": "public" | "unlisted"}` or a plain-text
//! body (`curl --data-binary @file -H 'Content-Type: text/plain'`, the options in the
//! query), or the home page's form without JavaScript
//! (`application/x-www-form-urlencoded`, answered with 303 to the paste's page). The
//! delete token is handed out this once: in the JSON answer, else in `X-Delete-Token`.

use http::{HeaderValue, Request, Response, StatusCode, header};
use httpkit::{Body, BodyError, full, json_response, read_body};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::{base_url, within_store_timeout};
use crate::time::{now_unix, rfc3339};
use crate::{ApiError, App};

#[cfg(test)]
use crate::DEFAULT_MAX_EXPIRES_IN;

/// The header a non-JSON create answers its delete token in.
const DELETE_TOKEN_HEADER: &str = "x-delete-token";

#[derive(Deserialize)]
struct CreateBody {
    text: String,
    expires_in: Option<u64>,
    #[serde(default)]
    burn_after_reading: Option<bool>,
    #[serde(default)]
    visibility: Option<Visibility>,
}

/// Whether a paste is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Visibility {
    Public,
    Unlisted,
}

impl Visibility {
    fn parse(value: &str) -> Result<Self, ApiError> {
        match value {
            "public" => Ok(Visibility::Public),
            "unlisted" => Ok(Visibility::Unlisted),
            _ => Err(ApiError::BadRequest(
                "visibility must be \"public\" or \"unlisted\"".into(),
            )),
        }
    }
}

/// What a create asks for, validated.
#[derive(Debug)]
struct Parsed {
    text: String,
    expires_in: Option<u64>,
    burn_after_reading: bool,
    visibility: Visibility,
}

/// Options given in the query string (for plain-text and form bodies; a JSON body's
/// own fields win).
#[derive(Debug, Default)]
struct QueryOptions {
    expires_in: Option<u64>,
    burn_after_reading: Option<bool>,
    visibility: Option<Visibility>,
}

#[derive(Serialize)]
struct Created<'a> {
    paste_id: &'a str,
    url: &'a str,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    burn_after_reading: bool,
    visibility: Visibility,
    /// The only time it is given out: `DELETE /pastes/{id}` with
    /// `Authorization: Bearer <delete_token>`.
    delete_token: &'a str,
}

enum Format {
    Json,
    Plain,
    Form,
}

pub(super) async fn create(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let format = body_format(req.headers())?;
    let base = base_url(app, req.headers())?;
    let query = req
        .uri()
        .query()
        .map(options_from_query)
        .transpose()?
        .unwrap_or_default();
    let body = read_body(req, app.max_body_bytes)
        .await
        .map_err(|err| match err {
            BodyError::TooLarge { limit } => ApiError::PayloadTooLarge(limit),
            BodyError::Read(err) => {
                ApiError::BadRequest(format!("could not read the request body: {err}"))
            }
            BodyError::TimedOut { .. } => ApiError::RequestTimeout,
        })?;
    let query = match format {
        // The home page's boxes without JavaScript: `burn_after_reading=1`,
        // `visibility=unlisted` in the urlencoded body (the query's own win).
        Format::Form => with_form_options(query, &body)?,
        _ => query,
    };
    let parsed = parse_body(&format, &body, query, app.max_expires_in)?;
    let expires_in = parsed.expires_in.or(app.default_expires_in);
    let options = write::NewPaste {
        expires_at: expires_in.map(|secs| now_unix().saturating_add(secs as i64)),
        burn_after_reading: parsed.burn_after_reading,
        unlisted: parsed.visibility == Visibility::Unlisted,
    };

    // Taken before the write, so that a reset of the cache during it refuses the copy.
    let ticket = app.read.ticket();
    let created = within_store_timeout(app, app.write.create_with(&parsed.text, options)).await?;
    let meta = &created.meta;
    // The first read of a new paste through this webserver is then a hit: under a
    // read-heavy mix, most pastes are read soon after they are written. (Never a
    // burn-after-reading paste: the cache refuses those.)
    app.read.remember_created(
        meta.clone(),
        std::sync::Arc::from(parsed.text.as_str()),
        ticket,
    );
    let id = meta.paste_id.to_string();
    let url = format!("{base}/pastes/{id}");
    let mut resp = match format {
        Format::Json => json_response(
            StatusCode::CREATED,
            &Created {
                paste_id: &id,
                url: &url,
                created_at: rfc3339(meta.created_at),
                expires_at: meta.expires_at.map(rfc3339),
                burn_after_reading: meta.burn_after_reading,
                visibility: parsed.visibility,
                delete_token: &created.delete_token,
            },
        ),
        Format::Form => {
            let mut resp = Response::new(full(format!("{url}\n")));
            *resp.status_mut() = StatusCode::SEE_OTHER;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            resp
        }
        Format::Plain => {
            let mut resp = Response::new(full(format!("{url}\n")));
            *resp.status_mut() = StatusCode::CREATED;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            resp
        }
    };
    if let Ok(location) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    if !matches!(format, Format::Json)
        && let Ok(token) = HeaderValue::from_str(&created.delete_token)
    {
        resp.headers_mut().insert(DELETE_TOKEN_HEADER, token);
    }
    Ok(resp)
}

/// `query`, completed by the options of an urlencoded form body (its `text` and
/// `expires_in` are the form parser's).
fn with_form_options(query: QueryOptions, body: &[u8]) -> Result<QueryOptions, ApiError> {
    let body = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("body is not valid UTF-8".into()))?;
    let picked: Vec<&str> = body
        .trim_end_matches(['\r', '\n'])
        .split('&')
        .filter(|pair| pair.starts_with("burn_after_reading=") || pair.starts_with("visibility="))
        .collect();
    let form = options_from_query(&picked.join("&"))?;
    Ok(QueryOptions {
        burn_after_reading: query.burn_after_reading.or(form.burn_after_reading),
        visibility: query.visibility.or(form.visibility),
        ..query
    })
}

/// The text and its validated options from a request body in `format`; `expires_in`
/// may be at most `max_expires_in`.
fn parse_body(
    format: &Format,
    body: &[u8],
    query: QueryOptions,
    max_expires_in: u64,
) -> Result<Parsed, ApiError> {
    let utf8_error = || ApiError::BadRequest("body is not valid UTF-8".into());
    let (text, expires_in, burn, visibility) = match format {
        Format::Json => {
            let body = std::str::from_utf8(body).map_err(|_| utf8_error())?;
            let parsed: CreateBody = serde_json::from_str(body)
                .map_err(|err| ApiError::BadRequest(format!("invalid JSON body: {err}")))?;
            (
                parsed.text,
                parsed.expires_in.or(query.expires_in),
                parsed.burn_after_reading.or(query.burn_after_reading),
                parsed.visibility.or(query.visibility),
            )
        }
        Format::Plain => (
            String::from_utf8(body.to_vec()).map_err(|_| utf8_error())?,
            query.expires_in,
            query.burn_after_reading,
            query.visibility,
        ),
        Format::Form => {
            let (text, expires_in) = parse_form(body, query.expires_in)?;
            (text, expires_in, query.burn_after_reading, query.visibility)
        }
    };
    if text.is_empty() {
        return Err(ApiError::BadRequest("text is empty".into()));
    }
    match expires_in {
        Some(secs) if !(1..=max_expires_in).contains(&secs) => Err(ApiError::BadRequest(format!(
            "expires_in must be between 1 and {max_expires_in} seconds"
        ))),
        _ => Ok(Parsed {
            text,
            expires_in,
            burn_after_reading: burn.unwrap_or(false),
            visibility: visibility.unwrap_or(Visibility::Public),
        }),
    }
}

/// JSON, or plain text (also when no content type is given); anything else is 415.
fn body_format(headers: &http::HeaderMap) -> Result<Format, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Format::Plain);
    };
    let raw = value.to_str().unwrap_or("");
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Format::Json),
        "text/plain" => Ok(Format::Plain),
        "application/x-www-form-urlencoded" => Ok(Format::Form),
        _ => Err(ApiError::UnsupportedMediaType(
            raw.chars().take(100).collect(),
        )),
    }
}

/// `text` and `expires_in` (empty: never) from the home page's form. Browsers send a
/// textarea's line breaks as CRLF whatever was typed; they become LF again, as the
/// JavaScript path (which sends the textarea's value) has them.
fn parse_form(body: &[u8], query_expiry: Option<u64>) -> Result<(String, Option<u64>), ApiError> {
    let mut text = None;
    let mut expires_in = query_expiry;
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        let value = percent_decode(value)?;
        match key {
            b"text" => text = Some(value.replace("\r\n", "\n")),
            b"expires_in" if value.is_empty() => {}
            b"expires_in" => {
                expires_in = Some(value.parse().map_err(|_| {
                    ApiError::BadRequest("expires_in must be a whole number of seconds".into())
                })?);
            }
            _ => {}
        }
    }
    let text = text.ok_or_else(|| ApiError::BadRequest("the form has no text field".into()))?;
    Ok((text, expires_in))
}

/// `application/x-www-form-urlencoded` decoding of one value: `+` is a space, `%XX` a
/// byte; the bytes must be UTF-8.
fn percent_decode(raw: &[u8]) -> Result<String, ApiError> {
    let bad = || ApiError::BadRequest("malformed form encoding".into());
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::BadRequest("body is not valid UTF-8".into()))
}

/// `expires_in=SECONDS`, `burn_after_reading=true|false` and
/// `visibility=public|unlisted` from a query string (the first of each counts).
fn options_from_query(query: &str) -> Result<QueryOptions, ApiError> {
    let mut out = QueryOptions::default();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "expires_in" if out.expires_in.is_none() => {
                out.expires_in = Some(value.parse().map_err(|_| {
                    ApiError::BadRequest("expires_in must be a whole number of seconds".into())
                })?);
            }
            "burn_after_reading" if out.burn_after_reading.is_none() => {
                out.burn_after_reading = Some(match value {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::BadRequest(
                            "burn_after_reading must be true or false".into(),
                        ));
                    }
                });
            }
            "visibility" if out.visibility.is_none() => {
                out.visibility = Some(Visibility::parse(value)?);
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rejected_as_4xx_json(err: ApiError) {
        let resp = err.into_response();
        assert!(resp.status().is_client_error(), "{}", resp.status());
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn forms_decode_as_browsers_encode() {
        let (text, exp) = parse_form(
            b"text=%3Cscript%3Ealert%281%29%3C%2Fscript%3E%0D%0Aa+b%E2%82%AC&expires_in=600",
            None,
        )
        .unwrap();
        assert_eq!(text, "<script>alert(1)</script>\na b\u{20ac}");
        assert_eq!(exp, Some(600));
        let (_, exp) = parse_form(b"expires_in=&text=x", None).unwrap();
        assert_eq!(exp, None);
        assert!(parse_form(b"text=%4", None).is_err());
        assert!(parse_form(b"text=%zz", None).is_err());
        assert!(parse_form(b"text=%+1", None).is_err());
        assert!(parse_form(b"text=%FF", None).is_err());
        assert!(parse_form(b"expires_in=60", None).is_err());
        assert!(parse_form(b"text=x&expires_in=soon", None).is_err());
    }

    #[test]
    fn options_come_from_the_json_body_or_the_query() {
        let parsed = parse_body(
            &Format::Json,
            br#"{"text":"t","burn_after_reading":true,"visibility":"unlisted","expires_in":5}"#,
            QueryOptions::default(),
            10,
        )
        .unwrap();
        assert!(parsed.burn_after_reading);
        assert_eq!(parsed.visibility, Visibility::Unlisted);
        assert_eq!(parsed.expires_in, Some(5));
        // The configured maximum holds.
        assert!(
            parse_body(
                &Format::Json,
                br#"{"text":"t","expires_in":11}"#,
                QueryOptions::default(),
                10
            )
            .is_err()
        );
        for bad in [
            r#"{"text":"t","visibility":"private"}"#,
            r#"{"text":"t","visibility":null,"burn_after_reading":"yes"}"#,
        ] {
            assert!(
                parse_body(&Format::Json, bad.as_bytes(), QueryOptions::default(), 10).is_err(),
                "{bad}"
            );
        }
        let query =
            options_from_query("visibility=unlisted&burn_after_reading=1&expires_in=3").unwrap();
        let parsed = parse_body(&Format::Plain, b"x", query, 10).unwrap();
        assert!(parsed.burn_after_reading && parsed.visibility == Visibility::Unlisted);
        assert_eq!(parsed.expires_in, Some(3));
        assert!(options_from_query("visibility=secret").is_err());
        assert!(options_from_query("burn_after_reading=maybe").is_err());
        let plain = parse_body(&Format::Plain, b"x", QueryOptions::default(), 10).unwrap();
        assert!(!plain.burn_after_reading && plain.visibility == Visibility::Public);
    }

    proptest! {
        #[test]
        fn any_body_is_a_paste_or_a_4xx_json_error(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            format in 0..3u8,
            query_expiry in proptest::option::of(any::<u64>()),
        ) {
            let format = match format { 0 => Format::Json, 1 => Format::Plain, _ => Format::Form };
            let query = QueryOptions { expires_in: query_expiry, ..QueryOptions::default() };
            match parse_body(&format, &body, query, DEFAULT_MAX_EXPIRES_IN) {
                Ok(parsed) => {
                    prop_assert!(!parsed.text.is_empty());
                    prop_assert!(parsed.expires_in.is_none_or(|s| (1..=DEFAULT_MAX_EXPIRES_IN).contains(&s)));
                }
                Err(err) => rejected_as_4xx_json(err),
            }
        }

        #[test]
        fn json_shaped_bodies_never_panic(
            text in ".{0,40}",
            expires in any::<i128>(),
            extra in "[a-z_]{0,8}",
        ) {
            let bodies = [
                serde_json::json!({ "text": text, "expires_in": expires.to_string() }).to_string(),
                format!(r#"{{"text": {}, "expires_in": {expires}}}"#, serde_json::json!(text)),
                format!(r#"{{"{extra}": {}}}"#, serde_json::json!(text)),
                format!(r#"[{}]"#, serde_json::json!(text)),
                format!(r#"{{"text": {}, "visibility": {}, "burn_after_reading": {}}}"#,
                    serde_json::json!(text), serde_json::json!(extra), serde_json::json!(extra)),
            ];
            for body in bodies {
                if let Err(err) = parse_body(&Format::Json, body.as_bytes(), QueryOptions::default(), DEFAULT_MAX_EXPIRES_IN) {
                    rejected_as_4xx_json(err);
                }
            }
        }

        #[test]
        fn any_query_gives_an_expiry_or_a_4xx(query in ".{0,64}") {
            if let Err(err) = options_from_query(&query) {
                rejected_as_4xx_json(err);
            }
        }

        #[test]
        fn any_content_type_is_known_or_415(value in "[ -~]{0,64}") {
            let mut headers = http::HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(header::CONTENT_TYPE, v);
            }
            if let Err(err) = body_format(&headers) {
                rejected_as_4xx_json(err);
            }
        }
    }
}
