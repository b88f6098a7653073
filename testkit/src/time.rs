//! Times as the API writes them.

/// Unix seconds of a `YYYY-MM-DDTHH:MM:SSZ` time (the API's `created_at` and
/// `expires_at`); panics on anything else.
pub fn unix(rfc3339: &str) -> i64 {
    assert!(rfc3339.len() == 20 && rfc3339.ends_with('Z'), "{rfc3339}");
    let n = |a: usize, b: usize| rfc3339[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_instants() {
        assert_eq!(super::unix("1970-01-01T00:00:00Z"), 0);
        assert_eq!(super::unix("2026-11-30T23:59:59Z"), 1_796_083_199);
        assert_eq!(super::unix("2000-02-29T00:00:00Z"), 951_782_400);
    }
}
