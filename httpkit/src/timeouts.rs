//! Timeouts nest: each inner timeout (a store call inside a webserver's request)
//! is clearly shorter than the one outside it (the balancer's wait for that
//! webserver), so the inner one fires first and the outer tier sees an answer (a
//! 504 from the webserver) instead of blaming a healthy peer.

use std::time::Duration;

/// Whether `inner` is clearly shorter than `outer`: at least a fifth shorter, and by
/// at least 100 ms.
pub fn nests(inner: Duration, outer: Duration) -> bool {
    let margin = (outer / 5).max(Duration::from_millis(100));
    inner.saturating_add(margin) <= outer
}

/// `Ok` if `inner` nests in `outer`, else a message naming both settings.
pub fn check_nested(
    inner_name: &str,
    inner: Duration,
    outer_name: &str,
    outer: Duration,
) -> Result<(), String> {
    if nests(inner, outer) {
        Ok(())
    } else {
        Err(format!(
            "{inner_name} ({} ms) must be clearly shorter than {outer_name} ({} ms): at least a fifth and 100 ms shorter, so the inner one fires first",
            inner.as_millis(),
            outer.as_millis()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_needs_a_clear_margin() {
        let s = Duration::from_secs;
        assert!(nests(s(5), s(10)));
        assert!(nests(s(8), s(10)));
        assert!(!nests(Duration::from_millis(8001), s(10)));
        assert!(!nests(s(10), s(10)));
        assert!(!nests(s(11), s(10)));
        assert!(!nests(
            Duration::from_millis(450),
            Duration::from_millis(500)
        ));
        assert!(
            check_nested("a", s(10), "b", s(10))
                .unwrap_err()
                .contains("a (10000 ms)")
        );
    }
}
