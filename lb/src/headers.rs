//! Header rewriting at the proxy boundary: hop-by-hop headers removed both ways,
//! forwarding headers set (believed only from trusted proxies), and the host links are
//! built on chosen.

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
/// header named in `Connection` except `Host`, which names the target for every
/// recipient and must reach the webserver (a client listing it in `Connection`
/// would otherwise make the link of a new paste point at an internal address).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: one pass over the names instead of a lookup per name.
    if !headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(name) || name.as_str().starts_with("proxy-"))
    {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .filter(|name| name != header::HOST)
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

pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Who sent a request, and what the balancer knows about its host.
pub struct Origin<'a> {
    /// The client's address (the peer of the connection).
    pub client: IpAddr,
    /// `client` as a header value, if made already (once per connection).
    pub client_value: Option<&'a HeaderValue>,
    /// Whether the client is a configured trusted proxy, whose forwarding headers
    /// are believed.
    pub trusted: bool,
    /// The authority of an absolute-form request target, if any.
    pub uri_authority: Option<&'a str>,
    /// The balancer's public host, for requests that name none.
    pub fallback_host: Option<&'a str>,
}

/// The request names no host a link could be built on (HTTP/1.0 without `Host`,
/// an empty one, one with a path...) and the balancer has no public host of its own.
#[derive(Debug, PartialEq, Eq)]
pub struct NoUsableHost;

/// A host (and port) safe to put into a URL and a `Location` header: no path, no
/// spaces, no user info.
pub fn usable_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The forwarding headers a request goes to the webserver with, made by
/// [`prepare_forwarding`]: each replaces every header of its name (`None`: the
/// request's own are kept).
pub struct Forwarding {
    pub xff: Option<HeaderValue>,
    pub proto: Option<HeaderValue>,
    pub host: Option<HeaderValue>,
}

impl Forwarding {
    /// Whether `name` is one of the headers this replaces.
    pub fn replaces(&self, name: &HeaderName) -> bool {
        (self.xff.is_some() && name == X_FORWARDED_FOR)
            || (self.proto.is_some() && name == X_FORWARDED_PROTO)
            || (self.host.is_some() && name == X_FORWARDED_HOST)
    }

    /// The headers, to write after the request's own.
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, &HeaderValue)> {
        [
            (X_FORWARDED_FOR, self.xff.as_ref()),
            (X_FORWARDED_PROTO, self.proto.as_ref()),
            (X_FORWARDED_HOST, self.host.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
    }

    /// Puts them into `headers`.
    #[cfg(test)]
    pub fn apply(self, headers: &mut HeaderMap) {
        for (name, value) in [
            (X_FORWARDED_FOR, self.xff),
            (X_FORWARDED_PROTO, self.proto),
            (X_FORWARDED_HOST, self.host),
        ] {
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
    }
}

/// Rewrites a request's headers for the webserver: hop-by-hop headers removed,
/// `Expect` removed (the balancer already answered the client's `100-continue`),
/// and the forwarding headers set. From a trusted proxy, `X-Forwarded-For` is
/// appended to and its other forwarding headers kept; from anyone else, they are
/// replaced (`X-Forwarded-For: client`, `X-Forwarded-Proto: http`, `X-Forwarded-Host`
/// from the request's host) and `X-Real-IP` and `Forwarded` removed, so a client
/// cannot pose as someone else. The host links are built on is the request's usable
/// `Host`, else its absolute target's authority, else the balancer's own.
#[cfg(test)]
pub fn prepare_request(headers: &mut HeaderMap, origin: &Origin<'_>) -> Result<(), NoUsableHost> {
    prepare_forwarding(headers, origin)?.apply(headers);
    Ok(())
}

/// [`prepare_request`] with the forwarding headers returned instead of put into
/// `headers` (the balancer writes them after the request's own: no insertion, which
/// would grow the map hyper sized for the request's headers).
pub fn prepare_forwarding(
    headers: &mut HeaderMap,
    origin: &Origin<'_>,
) -> Result<Forwarding, NoUsableHost> {
    let host = {
        let mut hosts = headers.get_all(header::HOST).iter();
        let only = match (hosts.next(), hosts.next()) {
            (Some(one), None) => one.to_str().ok().map(|s| (one, s)),
            _ => None,
        };
        match only {
            // The request's own value, shared rather than copied.
            Some((value, host)) if usable_host(host) => Some(Ok(value.clone())),
            Some(_) => origin.fallback_host.map(HeaderValue::from_str),
            None => origin
                .uri_authority
                .filter(|h| usable_host(h))
                .or(origin.fallback_host)
                .map(HeaderValue::from_str),
        }
    };
    strip_hop_by_hop(headers);
    // Most requests have none of these: one pass over the names instead of lookups.
    let unwanted = |name: &HeaderName| {
        name == header::EXPECT
            || (!origin.trusted && (name == X_REAL_IP || name == header::FORWARDED))
    };
    if headers.keys().any(unwanted) {
        headers.remove(header::EXPECT);
        if !origin.trusted {
            headers.remove(X_REAL_IP);
            headers.remove(header::FORWARDED);
        }
    }

    let previous: Vec<&str> = if origin.trusted {
        headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    } else {
        Vec::new()
    };
    let chain = match (previous.is_empty(), origin.client_value) {
        (true, Some(value)) => Ok(value.clone()),
        (true, None) => HeaderValue::from_str(&origin.client.to_string()),
        (false, _) => HeaderValue::from_str(&format!("{}, {}", previous.join(", "), origin.client)),
    };

    let keep_theirs =
        |name: &HeaderName| origin.trusted && headers.get(name).is_some_and(|v| !v.is_empty());
    let proto = (!keep_theirs(&X_FORWARDED_PROTO)).then(|| HeaderValue::from_static("http"));
    let host = if keep_theirs(&X_FORWARDED_HOST) {
        None
    } else {
        match host {
            Some(Ok(value)) => Some(value),
            _ => return Err(NoUsableHost),
        }
    };
    Ok(Forwarding {
        xff: chain.ok(),
        proto,
        host,
    })
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

    fn origin(client: &str, trusted: bool) -> Origin<'static> {
        Origin {
            client: client.parse().unwrap(),
            client_value: None,
            trusted,
            uri_authority: None,
            fallback_host: None,
        }
    }

    #[test]
    fn a_trusted_proxy_s_forwarded_headers_are_appended_to() {
        let mut headers = map(&[
            ("host", "paste.example:3000"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
            ("x-real-ip", "10.0.0.1"),
            ("expect", "100-continue"),
        ]);
        prepare_request(&mut headers, &origin("127.0.0.9", true)).unwrap();
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 127.0.0.9");
        assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "paste.example:3000");
        assert_eq!(headers["x-real-ip"], "10.0.0.1");
        assert!(headers.get("expect").is_none());
    }

    #[test]
    fn anyone_else_s_forwarded_headers_are_replaced() {
        let mut headers = map(&[
            ("host", "paste.example:3000"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("x-real-ip", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
        ]);
        prepare_request(&mut headers, &origin("127.0.0.9", false)).unwrap();
        assert_eq!(headers["x-forwarded-for"], "127.0.0.9");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "paste.example:3000");
        assert!(headers.get("x-real-ip").is_none());
        assert!(headers.get("forwarded").is_none());
    }

    #[test]
    fn without_a_usable_host_the_balancer_s_own_is_used_or_none() {
        for bad in [
            &[][..],
            &[("host", "")],
            &[("host", "a.example/x")],
            &[("host", "a"), ("host", "b")],
        ] {
            let mut headers = map(bad);
            headers.insert("x-forwarded-host", HeaderValue::from_static("spoofed"));
            assert_eq!(
                prepare_request(&mut headers, &origin("::1", false)),
                Err(NoUsableHost),
                "{bad:?}"
            );
            let mut headers = map(bad);
            let origin = Origin {
                fallback_host: Some("lb.example:80"),
                ..origin("::1", false)
            };
            prepare_request(&mut headers, &origin).unwrap();
            assert_eq!(headers["x-forwarded-host"], "lb.example:80", "{bad:?}");
        }
        let mut headers = map(&[]);
        let origin = Origin {
            uri_authority: Some("h:1"),
            ..origin("::1", false)
        };
        prepare_request(&mut headers, &origin).unwrap();
        assert_eq!(headers["x-forwarded-host"], "h:1");
        assert_eq!(headers["x-forwarded-for"], "::1");
    }

    #[test]
    fn host_survives_being_named_in_connection() {
        let mut headers = map(&[
            ("host", "paste.example"),
            ("connection", "host, x-a"),
            ("x-a", "1"),
        ]);
        prepare_request(&mut headers, &origin("::1", false)).unwrap();
        assert_eq!(headers["host"], "paste.example");
        assert_eq!(headers["x-forwarded-host"], "paste.example");
        assert!(headers.get("x-a").is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_headers_are_forwarded_or_refused_without_panic(
            pairs in proptest::collection::vec(
                (proptest::sample::select(vec![
                    "host", "connection", "x-forwarded-for", "x-forwarded-host",
                    "x-forwarded-proto", "forwarded", "x-real-ip", "te", "x-other",
                ]), "[ -~]{0,30}"),
                0..12,
            ),
            trusted in proptest::bool::ANY,
        ) {
            let mut headers = HeaderMap::new();
            for (name, value) in &pairs {
                if let Ok(value) = HeaderValue::from_str(value) {
                    headers.append(*name, value);
                }
            }
            let origin = Origin { trusted, ..origin("192.0.2.1", false) };
            if prepare_request(&mut headers, &origin).is_ok() {
                let host = headers["x-forwarded-host"].to_str().unwrap_or("");
                proptest::prop_assert!(trusted || usable_host(host), "{host:?}");
                proptest::prop_assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
                proptest::prop_assert!(headers.get("connection").is_none());
            }
        }
    }
}
