//! The wall clock in unix seconds, the unit of `created_at` and `expires_at`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the unix epoch; 0 if the clock is set before 1970.
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
