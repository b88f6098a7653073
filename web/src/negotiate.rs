//! Content negotiation on a paste's own URL: the `Accept` header decides between the
//! JSON answer (curl, scripts, no `Accept`) and the HTML page (browsers).

use http::{HeaderMap, header};

/// Whether the client prefers `text/html` to `application/json`: HTML is chosen only
/// when its quality is above zero and strictly above JSON's, each taken from the most
/// specific media range that matches it (`text/html` over `text/*` over `*/*`, as
/// RFC 9110 section 12.5.1 says). A tie (curl's `*/*`), no `Accept`, or one that cannot
/// be read keeps JSON, today's answer.
pub(crate) fn prefers_html(headers: &HeaderMap) -> bool {
    let mut html = Quality::default();
    let mut json = Quality::default();
    let mut any = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for range in value.split(',') {
            let Some((media, q)) = parse_range(range) else {
                continue;
            };
            any = true;
            html.offer(&media, q, "text", "html");
            json.offer(&media, q, "application", "json");
        }
    }
    any && html.q > 0 && html.q > json.q
}

/// The quality of one media type so far: the `q` of the most specific range seen
/// that matches it (0 when none does), in thousandths.
#[derive(Default)]
struct Quality {
    specificity: u8,
    q: u16,
}

impl Quality {
    fn offer(&mut self, media: &str, q: u16, kind: &str, sub: &str) {
        let (range_kind, range_sub) = media.split_once('/').unwrap_or((media, ""));
        let specificity = if range_kind == kind && range_sub == sub {
            3
        } else if range_kind == kind && range_sub == "*" {
            2
        } else if range_kind == "*" && range_sub == "*" {
            1
        } else {
            return;
        };
        if specificity > self.specificity {
            self.specificity = specificity;
            self.q = q;
        } else if specificity == self.specificity {
            // The same range twice: the more generous one wins.
            self.q = self.q.max(q);
        }
    }
}

/// `type/subtype` lower-cased and its `q` in thousandths (1000 when absent). A range
/// with a malformed `q` is skipped rather than guessed at.
fn parse_range(range: &str) -> Option<(String, u16)> {
    let mut parts = range.split(';');
    let media = parts.next()?.trim().to_ascii_lowercase();
    if !media.contains('/') || media.len() > 128 {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            q = parse_q(value.trim())?;
        }
    }
    Some((media, q))
}

/// RFC 9110's `qvalue`: `0`, `1`, `0.xyz` or `1.000` (at most three decimals).
fn parse_q(value: &str) -> Option<u16> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn html(accept: Option<&str>) -> bool {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        }
        prefers_html(&headers)
    }

    #[test]
    fn browsers_get_html() {
        // Chromium and Firefox, top-level navigation.
        assert!(html(Some(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
        )));
        assert!(html(Some(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(html(Some("text/html")));
        assert!(html(Some("TEXT/HTML; q=0.5, application/json; q=0.4")));
        assert!(html(Some("text/*, application/json;q=0.9")));
    }

    #[test]
    fn everything_else_keeps_json() {
        assert!(!html(None));
        assert!(!html(Some("*/*")));
        assert!(!html(Some("application/json")));
        assert!(!html(Some("application/json, text/html")));
        assert!(!html(Some("text/html;q=0.5, application/json")));
        assert!(!html(Some("text/html;q=0, */*")));
        assert!(!html(Some("text/plain")));
        assert!(!html(Some("")));
        assert!(!html(Some("text/html;q=2")), "a malformed q is skipped");
        assert!(!html(Some("text/html;q=0.1234")));
        assert!(!html(Some("text/*;q=0.5, */*")));
    }

    #[test]
    fn qvalues_parse_as_rfc_9110_says() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("0.8"), Some(800));
        assert_eq!(parse_q("0.05"), Some(50));
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("-1"), None);
        assert_eq!(parse_q("0.x"), None);
    }

    proptest::proptest! {
        #[test]
        fn any_accept_header_is_answered_without_panic(value in "[ -~]{0,120}") {
            let _ = html(Some(&value));
        }
    }
}
