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
        random_chars(PASTE_ID_LEN).map(Self)
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
    /// Unix seconds after which the paste is gone; at most 60 s in the past (a create
    /// that took long is stored already expired). None = never.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Size of the text in bytes, if the caller knows it.
    #[serde(default)]
    pub size: Option<u64>,
    /// The first read that returns the text removes the paste (claimed with
    /// `POST /pastes/{id}/claim`); such a paste is never listed.
    #[serde(default)]
    pub burn_after_reading: bool,
    /// Readable by id, absent from listings.
    #[serde(default)]
    pub unlisted: bool,
}

/// Answer of `POST /pastes` (201): the row, and its delete token. The token is
/// drawn here and handed out this once; only its SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    #[serde(flatten)]
    pub meta: Meta,
    pub delete_token: String,
}

/// Body of `DELETE /pastes/{id}`: the token the create handed out. Without a body
/// the delete is an operator's (the service has no authentication of its own; keep
/// it on a private network).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub delete_token: String,
}

/// Length of every delete token.
pub const DELETE_TOKEN_LEN: usize = 32;

/// Most `(paste, month)` entries in one `POST /views`.
pub const MAX_VIEW_ENTRIES: usize = 10_000;

/// Body of `POST /views`: counts of reads aggregated by a webserver since its last
/// flush. Counts of pastes that are gone are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewCounts {
    pub views: Vec<ViewCount>,
}

/// Reads of one paste in one month (`YYYY-MM`, UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewCount {
    pub paste_id: PasteId,
    pub month: String,
    pub count: u64,
}

/// Answer of `GET /pastes/{id}/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasteStats {
    pub views: u64,
    /// Views by month, `YYYY-MM` (UTC) -> count.
    pub monthly: std::collections::BTreeMap<String, u64>,
}

/// Whether `m` is a month as `ViewCount` spells it: `YYYY-MM`, month 01..=12.
pub fn valid_month(m: &str) -> bool {
    let b = m.as_bytes();
    b.len() == 7
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..].iter().all(u8::is_ascii_digit)
        && matches!(
            &m[5..],
            "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"
        )
}

/// A fresh delete token: [`DELETE_TOKEN_LEN`] characters of `[0-9A-Za-z]` from the OS
/// random source (about 190 bits).
pub fn random_token() -> Result<String, RandomIdError> {
    random_chars(DELETE_TOKEN_LEN)
}

/// `len` characters, each uniform over the 62-letter alphabet: bytes >= 248
/// (= 4 * 62) are rejected, so `b % 62` has no modulo bias.
fn random_chars(len: usize) -> Result<String, RandomIdError> {
    let mut out = String::with_capacity(len);
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
    /// Removed by the first read that returns its text (see `CreateMeta`).
    #[serde(default)]
    pub burn_after_reading: bool,
    /// Absent from listings.
    #[serde(default)]
    pub unlisted: bool,
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

/// Answer of `GET /deletions?since=N`: the pastes deleted after position `since` of
/// the deletion log, which each webserver polls to drop what it cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionPage {
    /// Names the log (drawn once per database). A caller that sees it change must
    /// forget everything it cached: the log it followed is not this one.
    pub epoch: u64,
    /// The deletions after `since` cannot be listed (`since` absent, pruned, or ahead
    /// of the log): the caller must forget everything it cached, then follow from `next`.
    pub reset: bool,
    /// The pastes deleted after `since`, oldest first.
    pub ids: Vec<PasteId>,
    /// The log position these ids bring the caller to; its next `since`.
    pub next: u64,
    /// More deletions follow `next`: ask again at once.
    pub more: bool,
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
