//! The opaque listing cursor. It must not reveal how many pastes there are (the
//! `seq` of a row counts them), so the `seq` is masked and authenticated with a key
//! the service keeps next to its database: a random 8-byte nonce, the `seq` XORed
//! with HMAC-SHA256(key, "mask" | nonce), and a tag HMAC-SHA256(key, "tag" | nonce |
//! masked), truncated to 8 bytes; all as `c` + 48 lowercase hex digits (URL-safe).
//! A cursor that was altered, or made with another key, is malformed (400).

use std::path::Path;
use std::sync::OnceLock;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The process's cursor key: set from the key file by `run`; a random one otherwise
/// (unit tests). One sqlsvc runs per process; in-process test stacks share it.
static KEY: OnceLock<[u8; 32]> = OnceLock::new();

fn key() -> &'static [u8; 32] {
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        // A failing OS random source leaves the zero key: cursors still work, they
        // are only guessable. `load_key` reports that failure at start-up.
        let _ = getrandom::fill(&mut key);
        key
    })
}

/// Reads the key file at `path`, creating it (32 random bytes, as hex, mode 0600)
/// when missing, and makes it the process's key.
pub(crate) fn load_key(path: &Path) -> std::io::Result<()> {
    let key = match std::fs::read_to_string(path) {
        Ok(text) => parse_hex::<32>(text.trim()).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: not 64 hex digits", path.display()),
            )
        })?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|err| std::io::Error::other(err.to_string()))?;
            write_new_key(path, &hex(&key))?;
            key
        }
        Err(err) => return Err(err),
    };
    if KEY.set(key).is_err() && KEY.get() != Some(&key) {
        tracing::debug!("cursor key already set in this process; keeping it");
    }
    Ok(())
}

fn write_new_key(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn mac(parts: &[&[u8]]) -> [u8; 8] {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => return [0; 8],
    };
    for part in parts {
        mac.update(part);
    }
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 8];
    out.copy_from_slice(&full[..8]);
    out
}

/// The cursor continuing after the row with this `seq`.
pub(crate) fn encode(seq: i64) -> String {
    let mut nonce = [0u8; 8];
    if getrandom::fill(&mut nonce).is_err() {
        nonce = seq.to_le_bytes();
    }
    let mask = mac(&[b"mask", &nonce]);
    let masked: Vec<u8> = seq
        .to_be_bytes()
        .iter()
        .zip(mask)
        .map(|(a, b)| a ^ b)
        .collect();
    let tag = mac(&[b"tag", &nonce, &masked]);
    format!("c{}{}{}", hex(&nonce), hex(&masked), hex(&tag))
}

/// The `seq` a cursor continues after, or None if it is malformed or forged.
pub(crate) fn decode(cursor: &str) -> Option<i64> {
    let hex_part = cursor.strip_prefix('c').filter(|h| h.len() == 48)?;
    let bytes = parse_hex::<24>(hex_part)?;
    let (nonce, rest) = bytes.split_at(8);
    let (masked, tag) = rest.split_at(8);
    // Not constant-time: a tag only guards the cursor's integrity, and the listing
    // it unlocks is public anyway.
    if mac(&[b"tag", nonce, masked]) != tag {
        return None;
    }
    let mask = mac(&[b"mask", nonce]);
    let mut seq = [0u8; 8];
    for (i, byte) in seq.iter_mut().enumerate() {
        *byte = masked[i] ^ mask[i];
    }
    Some(i64::from_be_bytes(seq)).filter(|&seq| seq > 0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
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
    fn reveals_nothing_and_refuses_forgeries() {
        // Two cursors of the same row differ; neither contains the seq in hex.
        let (a, b) = (encode(4096), encode(4096));
        assert_ne!(a, b);
        assert!(!a.contains("1000"), "{a}");
        // One flipped digit anywhere: refused.
        for i in 1..a.len() {
            let mut bytes = a.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            assert_eq!(decode(&String::from_utf8(bytes).unwrap()), None, "{i}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "c",
            "s1f",
            "s1",
            &"c".repeat(49),
            &format!("c{}", "0".repeat(48)),
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_key_file_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        load_key(&path).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        assert_eq!(first.len(), 64);
        load_key(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
        std::fs::write(&path, "nonsense").unwrap();
        assert!(load_key(&path).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_string_decodes_to_a_positive_seq_or_nothing(cursor in ".{0,60}") {
            if let Some(seq) = decode(&cursor) {
                proptest::prop_assert!(seq > 0);
            }
        }

        #[test]
        fn every_seq_round_trips(seq in 1..i64::MAX) {
            proptest::prop_assert_eq!(decode(&encode(seq)), Some(seq));
        }
    }
}
