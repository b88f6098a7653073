//! The opaque listing cursor: the `seq` of the last row of a page, as `s` + lowercase
//! hex, so it is URL-safe and one value has exactly one spelling.

/// The cursor continuing after the row with this `seq`.
pub(crate) fn encode(seq: i64) -> String {
    format!("s{seq:x}")
}

/// The `seq` a cursor continues after, or None if it is malformed.
pub(crate) fn decode(cursor: &str) -> Option<i64> {
    let hex = cursor.strip_prefix('s')?;
    let canonical = !hex.is_empty()
        && hex.len() <= 16
        && !hex.starts_with('0')
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !canonical {
        return None;
    }
    i64::from_str_radix(hex, 16).ok().filter(|&seq| seq > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for seq in [1, 15, 16, 123_456, i64::MAX] {
            assert_eq!(decode(&encode(seq)), Some(seq));
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "s",
            "1",
            "s0",
            "s01",
            "sA",
            "sg",
            "s-1",
            "s8000000000000000",
            "x1",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
