//! Paste texts and request bodies: every text is a unique 17-byte prefix (the nonce)
//! and a slice of one pre-generated filler string, so a write costs one copy and a
//! read can be checked later from `(nonce, size)` alone, without keeping the text.

use bytes::Bytes;

/// Characters the filler uses: printable ASCII that needs no JSON escaping.
const ALPHABET: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_()[]{}<>!?=+*#%&/";
/// Length of the nonce prefix, `{:016x}:`.
pub const PREFIX: usize = 17;

/// The shared filler and the text/body builders.
#[derive(Debug)]
pub struct Texts {
    filler: String,
}

impl Texts {
    /// A filler of `max_size` bytes drawn from `seed`.
    pub fn new(seed: u64, max_size: usize) -> Texts {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed_f111);
        let filler = (0..max_size.max(PREFIX))
            .map(|_| char::from(ALPHABET[rng.usize(0..ALPHABET.len())]))
            .collect();
        Texts { filler }
    }

    /// The text of a paste: `size` bytes (at least the prefix), unique per nonce.
    pub fn text(&self, nonce: u64, size: usize) -> String {
        let tail = size.saturating_sub(PREFIX).min(self.filler.len());
        let mut s = String::with_capacity(PREFIX + tail);
        s.push_str(&format!("{nonce:016x}:"));
        s.push_str(&self.filler[..tail]);
        s
    }

    /// The JSON body of a create: `{"text":"...", ...}` (no escaping needed, see
    /// ALPHABET). The pastes are unlisted and expire after [`PASTE_LIFETIME_SECS`], so
    /// a load test against a running stack neither fills its public list nor keeps
    /// its data: the stack's sweeper deletes them.
    pub fn write_body(&self, nonce: u64, size: usize) -> Bytes {
        let text = self.text(nonce, size);
        let mut body = Vec::with_capacity(text.len() + 64);
        body.extend_from_slice(b"{\"text\":\"");
        body.extend_from_slice(text.as_bytes());
        body.extend_from_slice(b"\",\"visibility\":\"unlisted\",\"expires_in\":");
        body.extend_from_slice(PASTE_LIFETIME_SECS.to_string().as_bytes());
        body.extend_from_slice(b"}");
        Bytes::from(body)
    }
}

/// How long the pastes a load test creates live: long enough for any run to read
/// them back, short enough that the sweeper soon deletes them.
pub const PASTE_LIFETIME_SECS: u64 = 3600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_valid_json_carrying_the_text() {
        let texts = Texts::new(3, 2000);
        let body = texts.write_body(0xabc, 1000);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let text = v["text"].as_str().unwrap();
        assert_eq!(text.len(), 1000);
        assert!(text.starts_with("0000000000000abc:"));
        assert_eq!(text, texts.text(0xabc, 1000));
        assert_eq!(v["visibility"], "unlisted");
        assert_eq!(v["expires_in"], PASTE_LIFETIME_SECS);
        assert_ne!(texts.text(1, 100), texts.text(2, 100));
    }
}
