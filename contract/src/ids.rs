//! Ids and paths, each a newtype with one validator: parsing (`FromStr`,
//! `TryFrom<String>`) and deserializing go through it, so a value of the type is
//! always well-formed, on the server that receives it and on the caller that sends it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Length of every paste id.
pub const PASTE_ID_LEN: usize = 10;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A paste id: exactly 10 characters of `[0-9A-Za-z]`. Parsing (and deserializing)
/// validates, so a `PasteId` value is always well-formed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PasteId(String);

/// Why a string is not a paste id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsePasteIdError;

impl fmt::Display for ParsePasteIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a paste id is exactly {PASTE_ID_LEN} characters of [0-9A-Za-z]"
        )
    }
}

impl std::error::Error for ParsePasteIdError {}

/// The operating system's random source failed.
#[derive(Debug, Clone)]
pub struct RandomIdError(getrandom::Error);

impl fmt::Display for RandomIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the OS random source failed: {}", self.0)
    }
}

impl std::error::Error for RandomIdError {}

impl RandomIdError {
    /// A stand-in failure, for tests of the paths that handle it.
    #[doc(hidden)]
    pub fn for_test() -> Self {
        Self(getrandom::Error::UNSUPPORTED)
    }
}

/// Length of every delete token.
pub const DELETE_TOKEN_LEN: usize = 32;

/// A fresh delete token: [`DELETE_TOKEN_LEN`] characters of `[0-9A-Za-z]` from the
/// OS random source (about 190 bits), drawn like ids.
pub fn random_token() -> Result<String, RandomIdError> {
    random_chars(DELETE_TOKEN_LEN)
}

/// `len` characters, each uniform over the 62-letter alphabet: bytes >= 248
/// (= 4 * 62) are rejected, so `b % 62` has no modulo bias.
fn random_chars(len: usize) -> Result<String, RandomIdError> {
    let mut out = String::with_capacity(len);
    // 16 bytes almost always suffice for an id (each kept with probability 248/256).
    let mut buf = [0u8; 16];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(RandomIdError)?;
        for &b in &buf {
            if b < 248 && out.len() < len {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

impl PasteId {
    /// A fresh id drawn from the OS random source. Each character is uniform over
    /// the 62-letter alphabet: bytes >= 248 (= 4 * 62) are rejected, so `b % 62`
    /// has no modulo bias.
    pub fn random() -> Result<Self, RandomIdError> {
        random_chars(PASTE_ID_LEN).map(Self)
    }

    /// The one rule of a paste id.
    pub fn is_valid(s: &str) -> bool {
        s.len() == PASTE_ID_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PasteId {
    type Err = ParsePasteIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Self::is_valid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParsePasteIdError)
        }
    }
}

impl TryFrom<String> for PasteId {
    type Error = ParsePasteIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if Self::is_valid(&s) {
            Ok(Self(s))
        } else {
            Err(ParsePasteIdError)
        }
    }
}

impl From<PasteId> for String {
    fn from(id: PasteId) -> Self {
        id.0
    }
}

impl fmt::Display for PasteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PasteId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Longest text path: what nosqlsvc stores under and sqlsvc records. nosqlsvc's
/// backends make paths of 16 or 24 characters; the bound leaves room for others
/// while keeping keys and log lines short. (sqlsvc once took 128 and nosqlsvc 64:
/// a path of 65..=128 characters could be recorded but never read.)
pub const MAX_PATH_LEN: usize = 64;

/// Where a paste's text is stored in nosqlsvc: 1..=[`MAX_PATH_LEN`] characters of
/// `[0-9A-Za-z_-]` (so it is safe in a URL path segment as is).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PastePath(String);

/// Why a string is not a text path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsePastePathError;

impl fmt::Display for ParsePastePathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "paste_path must be 1..={MAX_PATH_LEN} characters of [0-9A-Za-z_-]"
        )
    }
}

impl std::error::Error for ParsePastePathError {}

impl PastePath {
    /// The one rule of a text path.
    pub fn is_valid(s: &str) -> bool {
        (1..=MAX_PATH_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    /// The path as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PastePath {
    type Err = ParsePastePathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Self::is_valid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParsePastePathError)
        }
    }
}

impl TryFrom<String> for PastePath {
    type Error = ParsePastePathError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if Self::is_valid(&s) {
            Ok(Self(s))
        } else {
            Err(ParsePastePathError)
        }
    }
}

impl From<PastePath> for String {
    fn from(path: PastePath) -> Self {
        path.0
    }
}

impl fmt::Display for PastePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PastePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_well_formed_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = PasteId::random().unwrap();
            assert_eq!(id.as_str().parse::<PasteId>().unwrap(), id);
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn random_ids_use_the_whole_alphabet() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.extend(PasteId::random().unwrap().as_str().bytes());
        }
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn parsing_rejects_bad_ids() {
        for bad in [
            "",
            "abc",
            "abcdefghijk",
            "abcdefghi-",
            "abcdefghé",
            "abcdefghi ",
        ] {
            assert!(bad.parse::<PasteId>().is_err(), "{bad:?}");
        }
        assert!("aZ09aZ09aZ".parse::<PasteId>().is_ok());
    }

    #[test]
    fn deserializing_validates() {
        let id: PasteId = serde_json::from_str("\"aZ09aZ09aZ\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"aZ09aZ09aZ\"");
        assert!(serde_json::from_str::<PasteId>("\"short\"").is_err());
    }

    #[test]
    fn paste_ids_at_the_boundaries() {
        assert!("0123456789".parse::<PasteId>().is_ok());
        assert!("012345678".parse::<PasteId>().is_err());
        assert!("0123456789a".parse::<PasteId>().is_err());
        assert!(PasteId::try_from("zzzzzzzzzz".to_owned()).is_ok());
        assert!(PasteId::try_from("zzzzzzzzz_".to_owned()).is_err());
    }

    #[test]
    fn paths_at_the_boundaries() {
        for good in ["a", "AZaz09_-", &"x".repeat(MAX_PATH_LEN)] {
            assert!(good.parse::<PastePath>().is_ok(), "{good:?}");
            assert!(PastePath::try_from(good.to_owned()).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            &"x".repeat(MAX_PATH_LEN + 1),
            "a/b",
            "a.b",
            "a b",
            "a?b",
            "a%2F",
            "é",
            "batch\n",
        ] {
            assert!(bad.parse::<PastePath>().is_err(), "{bad:?}");
            assert!(PastePath::try_from(bad.to_owned()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_deserialize_through_the_validator() {
        let p: PastePath = serde_json::from_str("\"p_1-A\"").unwrap();
        assert_eq!(p.as_str(), "p_1-A");
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"p_1-A\"");
        let long = format!("\"{}\"", "a".repeat(MAX_PATH_LEN + 1));
        assert!(serde_json::from_str::<PastePath>(&long).is_err());
        assert!(serde_json::from_str::<PastePath>("\"\"").is_err());
        assert!(serde_json::from_str::<PastePath>("5").is_err());
    }
}
