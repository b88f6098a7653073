//! Header rewriting at the proxy boundary: hop-by-hop headers removed both ways,
//! `X-Forwarded-For` appended, `X-Forwarded-Proto` and `X-Forwarded-Host` set.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the
/// `Proxy-*` family, which is addressed to a proxy.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    KEEP_ALIVE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers: the fixed list, every `Proxy-*` header, and every
/// header named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

/// Rewrites a request's headers for the webserver: hop-by-hop headers removed,
/// `Expect` removed (the balancer already answered the client's `100-continue`),
/// `client` appended to `X-Forwarded-For`, `X-Forwarded-Proto: http`, and
/// `X-Forwarded-Host` set from `Host` (`host` if the request had none).
pub fn prepare_request(headers: &mut HeaderMap, client: IpAddr, host: Option<&str>) {
    strip_hop_by_hop(headers);
    headers.remove(header::EXPECT);

    let previous: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let client = client.to_string();
    let chain = if previous.is_empty() {
        client
    } else {
        format!("{}, {client}", previous.join(", "))
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert(X_FORWARDED_FOR, value);
    }

    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));

    let forwarded_host = headers
        .get(header::HOST)
        .cloned()
        .or_else(|| host.and_then(|h| HeaderValue::from_str(h).ok()));
    match forwarded_host {
        Some(value) => {
            headers.insert(X_FORWARDED_HOST, value);
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(*k, HeaderValue::from_static(v));
        }
        headers
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut headers = map(&[
            ("connection", "keep-alive, x-secret, X-Other"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "close"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("content-type", "application/json"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut headers);
        let names: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "x-kept"]);
    }

    #[test]
    fn forwarded_headers_are_added() {
        let mut headers = map(&[
            ("host", "paste.example:3000"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
            ("expect", "100-continue"),
        ]);
        prepare_request(&mut headers, "127.0.0.9".parse().unwrap(), None);
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 127.0.0.9");
        assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "paste.example:3000");
        assert!(headers.get("expect").is_none());
    }

    #[test]
    fn forwarded_host_falls_back_to_the_uri_authority() {
        let mut headers = map(&[("x-forwarded-host", "spoofed")]);
        prepare_request(&mut headers, "::1".parse().unwrap(), Some("h:1"));
        assert_eq!(headers["x-forwarded-host"], "h:1");
        assert_eq!(headers["x-forwarded-for"], "::1");
        let mut headers = map(&[("x-forwarded-host", "spoofed")]);
        prepare_request(&mut headers, "::1".parse().unwrap(), None);
        assert!(headers.get("x-forwarded-host").is_none());
    }
}
