//! The one HTTP endpoint a run talks to: parsed from `http://host:port[/path]` and
//! resolved once, so no request pays for a DNS lookup and nothing else is contacted.

use std::net::SocketAddr;

use http::HeaderValue;

use crate::LoadError;

/// Where requests go: a resolved address, the `Host` header, and a base path.
#[derive(Debug, Clone)]
pub struct Target {
    /// The address every connection connects to.
    pub addr: SocketAddr,
    /// `host:port` as given, sent as the `Host` header.
    pub authority: HeaderValue,
    /// The path of the URL (`/` when none), used by the plain `--get` mode.
    pub path: String,
    /// The URL as given, for reports.
    pub url: String,
}

/// The parts of an `http://` URL, before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub authority: String,
    pub path: String,
}

/// Splits `http://host[:port][/path]`; `https` is refused (the stack speaks plain
/// HTTP on loopback) and the port defaults to 80.
pub fn split_url(url: &str) -> Result<UrlParts, LoadError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| LoadError::Target(format!("{url:?}: only http:// URLs are supported")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(LoadError::Target(format!("{url:?}: no host")));
    }
    let path = if path.is_empty() { "/" } else { path };
    if path.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(LoadError::Target(format!("{url:?}: bad path")));
    }
    Ok(UrlParts {
        authority: authority.to_owned(),
        path: path.to_owned(),
    })
}

impl Target {
    /// Parses and resolves `url` (first address wins).
    pub async fn resolve(url: &str) -> Result<Target, LoadError> {
        let parts = split_url(url)?;
        let with_port = if parts
            .authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !parts.authority.ends_with(']')
        {
            parts.authority.clone()
        } else {
            format!("{}:80", parts.authority)
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|err| LoadError::Target(format!("cannot resolve {with_port}: {err}")))?
            .next()
            .ok_or_else(|| LoadError::Target(format!("{with_port} resolves to nothing")))?;
        let authority = HeaderValue::from_str(&parts.authority)
            .map_err(|_| LoadError::Target(format!("{url:?}: bad host")))?;
        Ok(Target {
            addr,
            authority,
            path: parts.path,
            url: url.to_owned(),
        })
    }

    /// The target with another path (for `--get /path` against a spawned stack).
    pub fn with_path(&self, path: &str) -> Result<Target, LoadError> {
        if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
            return Err(LoadError::Target(format!("{path:?}: bad path")));
        }
        let mut t = self.clone();
        t.path = path.to_owned();
        let base = self.url.trim_end_matches('/');
        let base = base
            .strip_suffix(self.path.trim_end_matches('/'))
            .unwrap_or(base);
        t.url = format!("{base}{path}");
        Ok(t)
    }

    /// The base URL without path: `http://host:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.authority.to_str().unwrap_or("?"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        let p = split_url("http://127.0.0.1:3000").unwrap();
        assert_eq!(p.authority, "127.0.0.1:3000");
        assert_eq!(p.path, "/");
        let p = split_url("http://localhost:8080/pastes?limit=5").unwrap();
        assert_eq!(p.authority, "localhost:8080");
        assert_eq!(p.path, "/pastes?limit=5");
        assert!(split_url("https://x").is_err());
        assert!(split_url("http:///x").is_err());
        assert!(split_url("ftp://x").is_err());
    }

    #[tokio::test]
    async fn loopback_resolves_with_the_given_port() {
        let t = Target::resolve("http://127.0.0.1:3456/a").await.unwrap();
        assert_eq!(t.addr.port(), 3456);
        assert_eq!(t.path, "/a");
        assert_eq!(t.base_url(), "http://127.0.0.1:3456");
        let g = t.with_path("/pastes").unwrap();
        assert_eq!(g.url, "http://127.0.0.1:3456/pastes");
    }
}
