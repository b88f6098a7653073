//! The balancer's documented defaults, each asserted once (README: health checks every
//! 2 s, down after 3 failures, up after 2 successes; ejection back-off 1 s doubling to
//! 30 s; 2 retries within a 15 s budget; the timeouts), and that they validate.

use std::time::Duration;

#[test]
fn the_documented_defaults() {
    let config = lb::Config::new(vec!["192.0.2.1:4000".into()]); // never contacted: TEST-NET-1
    assert!(config.validate().is_ok(), "{:?}", config.validate());
    assert!(lb::Config::new(vec![]).validate().is_ok());

    assert_eq!(config.health.interval, Duration::from_secs(2));
    assert_eq!(config.health.timeout, Duration::from_secs(1));
    assert_eq!(config.health.fall, 3);
    assert_eq!(config.health.rise, 2);
    assert_eq!(config.health.path, "/healthz");

    assert_eq!(config.ejection.base, Duration::from_secs(1));
    assert_eq!(config.ejection.max, Duration::from_secs(30));

    assert_eq!(config.retry.max_retries, 2);
    assert_eq!(config.retry.budget, Duration::from_secs(15));

    assert_eq!(config.connect_timeout, Duration::from_secs(1));
    assert_eq!(config.response_timeout, Duration::from_secs(10));
    assert_eq!(config.request_body_idle_timeout, Duration::from_secs(30));
    assert_eq!(config.idle_timeout, Duration::from_secs(30));
    // Below the webservers' 30 s header-read timeout, so the balancer closes an idle
    // pooled connection first.
    assert_eq!(config.pool_idle_timeout, Duration::from_secs(20));
    assert!(config.pool_idle_timeout < config.server.header_read_timeout);
    assert_eq!(config.max_body_bytes, 1024 * 1024);
}
