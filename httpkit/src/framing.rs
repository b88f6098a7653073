//! Checks of a request's framing that every server applies before its handler
//! (RFC 9112): a transfer coding other than `chunked` is not implemented (501), and
//! an HTTP/1.1 request must carry exactly one `Host` (400).

use http::{HeaderMap, Request, Response, StatusCode, Version, header};

use crate::{Body, error_response};

/// Most header lines a client may send to the service. The balancer applies it at
/// the edge; it adds at most [`FORWARDING_HEADERS`] of its own, so a webserver
/// behind it accepts that many more and never refuses what the balancer accepted.
pub const MAX_HEADERS: usize = 100;

/// Header lines the balancer adds to a request (`X-Forwarded-For`,
/// `X-Forwarded-Proto`, `X-Forwarded-Host`) beyond those it replaces.
pub const FORWARDING_HEADERS: usize = 3;

/// Whether the `Transfer-Encoding` of a request names a coding other than `chunked`
/// (e.g. `gzip, chunked`), which no server here implements.
pub fn unsupported_transfer_coding(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap_or("\u{0}")
                .split(',')
                .map(str::trim)
                .collect::<Vec<_>>()
        })
        .filter(|coding| !coding.is_empty())
        .any(|coding| !coding.eq_ignore_ascii_case("chunked"))
}

/// The error answer for a request whose framing is refused, if it is.
pub fn check<B>(req: &Request<B>) -> Option<Response<Body>> {
    if unsupported_transfer_coding(req.headers()) {
        // The body's framing is unknown: nothing more can be read on this connection.
        return Some(crate::closing(error_response(
            StatusCode::NOT_IMPLEMENTED,
            "transfer coding not implemented: only chunked is supported",
        )));
    }
    let hosts = req.headers().get_all(header::HOST).iter().count();
    let bad_host = match req.version() {
        Version::HTTP_09 | Version::HTTP_10 => hosts > 1,
        _ => hosts != 1,
    };
    if bad_host {
        return Some(error_response(
            StatusCode::BAD_REQUEST,
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().version(version).uri("/");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn transfer_codings_other_than_chunked_are_501() {
        for te in ["gzip, chunked", "chunked, gzip", "deflate", "x"] {
            let r = req(
                Version::HTTP_11,
                &[("host", "h"), ("transfer-encoding", te)],
            );
            assert_eq!(check(&r).unwrap().status(), 501, "{te}");
        }
        for te in ["chunked", "Chunked", " chunked "] {
            let r = req(
                Version::HTTP_11,
                &[("host", "h"), ("transfer-encoding", te)],
            );
            assert!(check(&r).is_none(), "{te}");
        }
    }

    #[test]
    fn http11_needs_exactly_one_host() {
        assert_eq!(check(&req(Version::HTTP_11, &[])).unwrap().status(), 400);
        let two = req(Version::HTTP_11, &[("host", "a"), ("host", "b")]);
        assert_eq!(check(&two).unwrap().status(), 400);
        assert!(check(&req(Version::HTTP_11, &[("host", "a")])).is_none());
        assert!(check(&req(Version::HTTP_10, &[])).is_none());
        let two = req(Version::HTTP_10, &[("host", "a"), ("host", "b")]);
        assert_eq!(check(&two).unwrap().status(), 400);
    }

    proptest::proptest! {
        #[test]
        fn any_framing_is_accepted_or_a_4xx_or_501_json_error(
            te in proptest::option::of("[ -~]{0,30}"),
            hosts in 0usize..3,
            http10 in proptest::bool::ANY,
        ) {
            let mut headers: Vec<(&str, String)> = (0..hosts).map(|i| ("host", format!("h{i}"))).collect();
            if let Some(te) = &te {
                headers.push(("transfer-encoding", te.clone()));
            }
            let mut builder = Request::builder()
                .version(if http10 { Version::HTTP_10 } else { Version::HTTP_11 })
                .uri("/");
            for (k, v) in &headers {
                if let Ok(v) = http::HeaderValue::from_str(v) {
                    builder = builder.header(*k, v);
                }
            }
            let req = builder.body(()).unwrap();
            if let Some(resp) = check(&req) {
                let status = resp.status();
                proptest::prop_assert!(status == 400 || status == 501, "{status}");
                proptest::prop_assert_eq!(&resp.headers()[header::CONTENT_TYPE], "application/json");
            }
        }
    }
}
