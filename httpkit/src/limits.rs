//! Every size limit on a paste's way through the services, derived from the one
//! configured body limit (`max_body_bytes`), so that whatever a webserver accepts can
//! be stored, read back and listed, for every valid configuration.
//!
//! A text is at most `max_body_bytes` bytes (decoding a JSON body never makes it
//! longer). Inside JSON, serde escapes control characters as `\u00XX`: six bytes per
//! byte of text at worst. MongoDB stores the text unescaped, as a BSON string, in a
//! document of at most 16 MiB.

/// Largest byte length of `n` bytes of text once JSON-escaped (`\u0000` is 6 bytes).
pub const fn json_escaped_max(n: usize) -> usize {
    n.saturating_mul(6)
}

/// Smallest valid `max_body_bytes`.
pub const MIN_BODY_BYTES: usize = 1024;

/// Largest valid `max_body_bytes`: 8 MiB. A MongoDB document holds at most 16 MiB, so
/// this leaves half of it for the text's own document; and the largest internal
/// answer (6x escaping, see [`store_answer_bytes`]) stays under 64 MiB.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A listing page stops before the texts it holds pass this many bytes (raw, in
/// sqlsvc) or before its JSON answer passes this many bytes (in the webserver), but
/// always holds at least one paste.
pub const PAGE_BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// Room for everything around the texts of an internal JSON message: field names,
/// paths, ids, times, and per-text quotes and commas of a full page.
pub const ENVELOPE_BYTES: usize = 64 * 1024;

/// Most paths one batch read names, and the longest path (see nosqlsvc's API).
const BATCH_REQUEST_BYTES: usize = 1000 * (64 + 3) + 64;

/// The largest body nosqlsvc must accept: one text escaped (an insert), or a batch
/// read naming the most paths.
pub const fn text_store_body_bytes(max_body_bytes: usize) -> usize {
    let insert = json_escaped_max(max_body_bytes).saturating_add(ENVELOPE_BYTES);
    if insert > BATCH_REQUEST_BYTES {
        insert
    } else {
        BATCH_REQUEST_BYTES
    }
}

/// The largest answer a webserver must accept from a store: one text escaped, or a
/// batch of a page's texts (raw total at most [`PAGE_BUDGET_BYTES`], or one text
/// longer than that), escaped.
pub const fn store_answer_bytes(max_body_bytes: usize) -> usize {
    let raw = if max_body_bytes > PAGE_BUDGET_BYTES {
        max_body_bytes
    } else {
        PAGE_BUDGET_BYTES
    };
    json_escaped_max(raw).saturating_add(ENVELOPE_BYTES)
}

/// Checks `max_body_bytes` against the valid range.
pub fn check_body_limit(max_body_bytes: usize) -> Result<(), String> {
    if (MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&max_body_bytes) {
        Ok(())
    } else {
        Err(format!(
            "must be from {MIN_BODY_BYTES} to {MAX_BODY_BYTES} (8 MiB: MongoDB's 16 MiB document limit, and 6x JSON escaping), not {max_body_bytes}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_holds_the_largest_text_escaped() {
        for body in [
            MIN_BODY_BYTES,
            512 * 1024,
            PAGE_BUDGET_BYTES,
            MAX_BODY_BYTES,
        ] {
            let escaped_insert = serde_json::to_vec(&serde_json::json!({
                "text": "\u{0}".repeat(body)
            }))
            .unwrap()
            .len();
            assert!(escaped_insert <= text_store_body_bytes(body), "{body}");
            assert!(escaped_insert <= store_answer_bytes(body), "{body}");
        }
        assert!(store_answer_bytes(MAX_BODY_BYTES) < 64 * 1024 * 1024);
        assert!(text_store_body_bytes(MIN_BODY_BYTES) >= BATCH_REQUEST_BYTES);
        assert!(check_body_limit(MAX_BODY_BYTES + 1).is_err());
        assert!(check_body_limit(MIN_BODY_BYTES - 1).is_err());
    }
}
