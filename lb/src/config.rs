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
    /// Idle upstream connections kept per webserver.
    pub pool_max_idle_per_host: usize,
    /// The accept loop's limits.
    pub server: httpkit::ServerConfig,
    /// Active health checks.
    pub health: HealthConfig,
    /// Passive ejection after a connect failure, reset or timeout.
    pub ejection: EjectionConfig,
    /// Retries on another webserver.
    pub retry: RetryConfig,
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

/// Passive ejection: a webserver that refused, reset or timed out is taken out of
/// rotation at once for `base`, doubled on each consecutive ejection up to `max`.
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
            server: httpkit::ServerConfig::default(),
            health: HealthConfig::default(),
            ejection: EjectionConfig::default(),
            retry: RetryConfig::default(),
        }
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
        config.response_timeout = Duration::ZERO;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("response_timeout")
        );
    }
}
