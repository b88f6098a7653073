//! The JSON wire types of nosqlsvc, shared with the Read and Write API crates.

use serde::{Deserialize, Serialize};

/// Longest accepted text path.
pub const MAX_PATH_LEN: usize = 64;

/// Most paths accepted in one `POST /texts/batch`.
pub const MAX_BATCH_PATHS: usize = 1000;

/// Body of `POST /texts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsertText {
    pub text: String,
}

/// Answer of `POST /texts` (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inserted {
    pub paste_path: String,
}

/// Answer of `GET /texts/{path}` (200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextDoc {
    pub paste_path: String,
    pub text: String,
}

/// Body of `POST /texts/batch`: at most [`MAX_BATCH_PATHS`] valid paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetMany {
    pub paths: Vec<String>,
}

/// Answer of `POST /texts/batch`: one entry per requested path, in request order,
/// `None` (JSON `null`) where the path is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Texts {
    pub texts: Vec<Option<String>>,
}

/// Answer of `DELETE /texts/{path}` (200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: bool,
}

/// Body of `POST /texts/delete` and `POST /texts/settle`, at most
/// [`MAX_BATCH_PATHS`] valid paths; answer of `GET /texts/unsettled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paths {
    pub paths: Vec<String>,
}

/// Answer of `POST /texts/delete` (texts deleted) and `POST /texts/settle` (texts
/// that were unsettled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affected {
    pub affected: u64,
}

/// Whether `p` is a well-formed text path: 1 to 64 characters of `[0-9A-Za-z_-]`.
pub fn valid_path(p: &str) -> bool {
    (1..=MAX_PATH_LEN).contains(&p.len())
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(valid_path("a"));
        assert!(valid_path("AZaz09_-"));
        assert!(valid_path(&"x".repeat(64)));
        assert!(!valid_path(""));
        assert!(!valid_path(&"x".repeat(65)));
        assert!(!valid_path("a/b"));
        assert!(!valid_path("a.b"));
        assert!(!valid_path("é"));
        assert!(!valid_path("a b"));
    }

    #[test]
    fn texts_serialize_missing_as_null() {
        let t = Texts {
            texts: vec![Some("a".into()), None],
        };
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"texts":["a",null]}"#
        );
    }
}
