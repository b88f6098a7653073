//! The wire types of the sqlsvc HTTP API, shared with the crates that call it.

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
    #[cfg(test)]
    pub(crate) fn for_test() -> Self {
        Self(getrandom::Error::UNSUPPORTED)
    }
}

impl PasteId {
    /// A fresh id drawn from the OS random source. Each character is uniform over
    /// the 62-letter alphabet: bytes >= 248 (= 4 * 62) are rejected, so `b % 62`
    /// has no modulo bias.
    pub fn random() -> Result<Self, RandomIdError> {
        let mut id = String::with_capacity(PASTE_ID_LEN);
        // 16 bytes almost always suffice (each is kept with probability 248/256).
        let mut buf = [0u8; 16];
        while id.len() < PASTE_ID_LEN {
            getrandom::fill(&mut buf).map_err(RandomIdError)?;
            for &b in &buf {
                if b < 248 && id.len() < PASTE_ID_LEN {
                    id.push(char::from(ALPHABET[usize::from(b % 62)]));
                }
            }
        }
        Ok(Self(id))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PasteId {
    type Err = ParsePasteIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == PASTE_ID_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParsePasteIdError)
        }
    }
}

impl TryFrom<String> for PasteId {
    type Error = ParsePasteIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.len() == PASTE_ID_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
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

/// Body of `POST /pastes`: where the text is stored, and its optional expiry and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateMeta {
    /// Location of the text in nosqlsvc: 1..=128 characters of `[0-9A-Za-z_-]`.
    pub paste_path: String,
    /// Unix seconds after which the paste is gone; must be in the future. None = never.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Size of the text in bytes, if the caller knows it.
    #[serde(default)]
    pub size: Option<u64>,
}

/// One metadata row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub paste_id: PasteId,
    pub paste_path: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; None = never expires.
    pub expires_at: Option<i64>,
    pub size: Option<u64>,
}

/// One page of `GET /pastes`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaPage {
    pub pastes: Vec<Meta>,
    /// `cursors[i]` continues the listing right after `pastes[i]`, so a caller may
    /// cut the page short (the webserver cuts by the size of its JSON answer).
    #[serde(default)]
    pub cursors: Vec<String>,
    /// Pass as `cursor` to get the next page; None when this is the last page.
    pub next_cursor: Option<String>,
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
        assert!(serde_json::from_str::<Meta>(
            r#"{"paste_id":"bad!","paste_path":"p","created_at":1,"expires_at":null,"size":null}"#
        )
        .is_err());
    }
}
