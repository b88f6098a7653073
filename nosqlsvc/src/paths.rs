//! New text paths: 16 characters of `[0-9A-Za-z_-]` (96 random bits from the OS).

/// Length of the paths this service makes.
pub const PATH_LEN: usize = 16;

const ALPHABET: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";

/// A fresh random path, or the OS random source's error.
pub fn new_path() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; PATH_LEN * 6 / 8];
    getrandom::fill(&mut bytes)?;
    Ok(encode(&bytes))
}

/// Each 6 bits of `bytes` as one alphabet character (uniform: 64 symbols).
fn encode(bytes: &[u8; 12]) -> String {
    let mut out = String::with_capacity(PATH_LEN);
    for chunk in bytes.chunks_exact(3) {
        let n = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PastePath;

    #[test]
    fn paths_are_valid_and_distinct() {
        let a = new_path().unwrap();
        let b = new_path().unwrap();
        assert_eq!(a.len(), PATH_LEN);
        assert!(PastePath::is_valid(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn encoding_uses_the_whole_alphabet_edges() {
        assert_eq!(encode(&[0; 12]), "0000000000000000");
        assert_eq!(encode(&[0xff; 12]), "----------------");
    }
}
