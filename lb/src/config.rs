//! The balancer's typed configuration, its defaults, and its validation (each bad value
//! names the setting).

use std::time::Duration;

use http::uri::Authority;

use crate::Error;

/// Everything `lb::run` needs. Build with [`Config::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// Webserver authorities, e.g. `"127.0.0.1:4000"`.
    pub backends: Vec<String>,
    /// Largest request body accepted at the edge, in bytes (a paste is at most 512 KiB;
    /// 1 MiB leaves room for JSON escaping).
    pub max_body_bytes: usize,
    /// Time allowed to open a TCP connection to a webserver.
    pub connect_timeout: Duration,
    /// Time allowed for a webserver to answer with response headers, counted from
    /// the last chunk of the client's body: time spent waiting for a slow client is
    /// not the webserver's.
    pub response_timeout: Duration,
    /// Longest pause allowed between two chunks of the client's request body while it
    /// is forwarded; a client that stalls longer gets a 408 and the webserver is not
    /// blamed.
    pub request_body_idle_timeout: Duration,
    /// Longest pause allowed between two chunks of a response body.
    pub idle_timeout: Duration,
    /// Idle pooled upstream connections are closed after this; kept below the
    /// webservers' header-read timeout (30 s) so the balancer closes them first and
    /// never sends a request on a connection the webserver is closing.
    pub pool_idle_timeout: Duration,
    /// Idle upstream connections kept per webserver (by each worker).
    pub pool_max_idle_per_host: usize,
    /// Worker threads serving requests, each with its own connections; 0 means one
    /// per core.
    pub workers: usize,
    /// The accept loop's limits.
    pub server: httpkit::ServerConfig,
    /// Active health checks.
    pub health: HealthConfig,
    /// Passive ejection after a refused connection or a reset.
    pub ejection: EjectionConfig,
    /// Retries on another webserver.
    pub retry: RetryConfig,
    /// Clients whose own `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`,
    /// `X-Real-IP` and `Forwarded` are believed (appended to, or kept); every other
    /// client's are replaced. Addresses or CIDR blocks, e.g. `10.0.0.0/8`.
    pub trusted_proxies: Vec<String>,
    /// The host (and port) links point at when a request names no usable host (an
    /// HTTP/1.0 request without `Host`): the balancer's public address. Unset: such a
    /// request gets 400, never a link to a webserver's internal address.
    pub fallback_host: Option<String>,
}

/// Active health checks: `GET {path}` on every webserver every `interval`.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Time between two checks of one webserver.
    pub interval: Duration,
    /// Time allowed for one check; a slower answer counts as a failure.
    pub timeout: Duration,
    /// Consecutive failures that mark an up webserver down.
    pub fall: u32,
    /// Consecutive successes that mark a down webserver up.
    pub rise: u32,
    /// Path checked; a 2xx answer is a success.
    pub path: String,
}

/// Passive ejection: a webserver that refused or reset a connection is taken out of
/// rotation (a timeout does not eject: the health checks judge a slow webserver) at once for `base`, doubled on each consecutive ejection up to `max`.
#[derive(Debug, Clone)]
pub struct EjectionConfig {
    pub base: Duration,
    pub max: Duration,
}

/// Retry bounds. A request that was never sent (connect failure) is retried whatever
/// its method; GET and HEAD are also retried once after a reset or a 502/503.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Further attempts after the first, at most.
    pub max_retries: u32,
    /// Total time all attempts of one request may take until response headers.
    pub budget: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            fall: 3,
            rise: 2,
            path: "/healthz".to_owned(),
        }
    }
}

impl Default for EjectionConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 2,
            budget: Duration::from_secs(15),
        }
    }
}

impl Config {
    /// Sensible defaults for `backends`.
    pub fn new(backends: Vec<String>) -> Self {
        Self {
            backends,
            max_body_bytes: 1024 * 1024,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(10),
            request_body_idle_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(20),
            pool_max_idle_per_host: 1024,
            workers: 0,
            server: httpkit::ServerConfig::default(),
            health: HealthConfig::default(),
            ejection: EjectionConfig::default(),
            retry: RetryConfig::default(),
            trusted_proxies: Vec::new(),
            fallback_host: None,
        }
    }

    /// Whether `ip` is a configured trusted proxy (invalid entries match nothing;
    /// [`Config::validate`] refuses them).
    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies
            .iter()
            .filter_map(|entry| parse_cidr(entry))
            .any(|(net, prefix)| in_block(ip, net, prefix))
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        validate_backends(&self.backends)?;
        let positive = [
            ("connect_timeout", self.connect_timeout),
            ("response_timeout", self.response_timeout),
            ("request_body_idle_timeout", self.request_body_idle_timeout),
            ("idle_timeout", self.idle_timeout),
            ("pool_idle_timeout", self.pool_idle_timeout),
            ("health.interval", self.health.interval),
            ("health.timeout", self.health.timeout),
            ("ejection.base", self.ejection.base),
            ("retry.budget", self.retry.budget),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return Err(Error::config(name, "must be greater than zero"));
            }
        }
        if self.ejection.max < self.ejection.base {
            return Err(Error::config(
                "ejection.max",
                "must be at least ejection.base",
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(Error::config("max_body_bytes", "must be greater than zero"));
        }
        if self.health.fall == 0 {
            return Err(Error::config("health.fall", "must be at least 1"));
        }
        if self.health.rise == 0 {
            return Err(Error::config("health.rise", "must be at least 1"));
        }
        if !self.health.path.starts_with('/') {
            return Err(Error::config("health.path", "must start with '/'"));
        }
        // Timeouts nest: the inner one fires first, so the outer tier gets an answer.
        for (inner_name, inner, outer_name, outer) in [
            (
                "connect_timeout",
                self.connect_timeout,
                "response_timeout",
                self.response_timeout,
            ),
            (
                "response_timeout",
                self.response_timeout,
                "retry.budget",
                self.retry.budget,
            ),
        ] {
            httpkit::timeouts::check_nested(inner_name, inner, outer_name, outer)
                .map_err(|msg| Error::config(inner_name, &msg))?;
        }
        for entry in &self.trusted_proxies {
            if parse_cidr(entry).is_none() {
                return Err(Error::config(
                    "trusted_proxies",
                    &format!(
                        "{entry:?}: expected an IP address or a CIDR block such as 10.0.0.0/8"
                    ),
                ));
            }
        }
        if let Some(host) = &self.fallback_host
            && !crate::headers::usable_host(host)
        {
            return Err(Error::config(
                "fallback_host",
                &format!("{host:?}: expected host or host:port"),
            ));
        }
        Ok(())
    }
}

/// Checks that every backend is a plain `host:port` authority.
pub fn validate_backends(backends: &[String]) -> Result<(), Error> {
    for backend in backends {
        parse_authority(backend)?;
    }
    Ok(())
}

/// Parses one backend as `host:port` (no scheme, no path, no user info).
pub(crate) fn parse_authority(backend: &str) -> Result<Authority, Error> {
    let bad = |why: &str| Error::config("backends", &format!("{backend:?}: {why}"));
    let authority: Authority = backend
        .parse()
        .map_err(|_| bad("expected host:port, e.g. 127.0.0.1:4000"))?;
    if authority.port_u16().is_none() {
        return Err(bad("a port is required"));
    }
    if authority.as_str().contains('@') {
        return Err(bad("user info is not allowed"));
    }
    Ok(authority)
}

/// `addr` or `addr/prefix` as an address and a prefix length.
fn parse_cidr(entry: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, prefix) = match entry.trim().split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (entry.trim(), None),
    };
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
        None => max,
    };
    Some((addr, prefix))
}

/// Whether `ip` lies in `net/prefix` (IPv4-mapped IPv6 clients match IPv4 blocks).
fn in_block(ip: std::net::IpAddr, net: std::net::IpAddr, prefix: u8) -> bool {
    use std::net::IpAddr;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let bits = |a: IpAddr| -> (u128, u32) {
        match a {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    };
    let ((a, width_a), (b, width_b)) = (bits(ip), bits(net));
    if width_a != width_b {
        return false;
    }
    let shift = width_a - u32::from(prefix);
    shift >= width_a || (a >> shift) == (b >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_the_setting() {
        let err = Config::new(vec!["http://x:1/".into()])
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("backends"), "{err}");
        let err = Config::new(vec!["localhost".into()])
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
        let mut config = Config::new(vec![]);
        config.health.fall = 0;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("health.fall")
        );
        let mut config = Config::new(vec![]);
        config.response_timeout = config.retry.budget;
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("response_timeout") && err.contains("retry.budget"),
            "{err}"
        );
        let mut config = Config::new(vec![]);
        config.trusted_proxies = vec!["10.0.0.0/33".into()];
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("trusted_proxies")
        );
        let mut config = Config::new(vec![]);
        config.fallback_host = Some("a/b".into());
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("fallback_host")
        );
        let mut config = Config::new(vec![]);
        config.response_timeout = Duration::ZERO;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("response_timeout")
        );
    }

    #[test]
    fn trusted_proxies_match_addresses_and_blocks() {
        let mut config = Config::new(vec![]);
        config.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into(), "192.0.2.7".into()];
        config.validate().unwrap();
        for ip in ["10.1.2.3", "::1", "192.0.2.7", "::ffff:10.9.9.9"] {
            assert!(config.is_trusted(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["11.0.0.1", "127.0.0.1", "192.0.2.8", "::2"] {
            assert!(!config.is_trusted(ip.parse().unwrap()), "{ip}");
        }
        config.trusted_proxies = vec!["0.0.0.0/0".into()];
        assert!(config.is_trusted("203.0.113.1".parse().unwrap()));
        assert!(!Config::new(vec![]).is_trusted("127.0.0.1".parse().unwrap()));
    }
}
