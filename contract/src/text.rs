//! nosqlsvc's contract: the paste text service. Its wire types, and [`TextClient`],
//! which owns the URLs and turns statuses into [`CallError`]s.
//!
//! | Call                 | Method                   | Answer                    |
//! |----------------------|--------------------------|---------------------------|
//! | `POST /texts`        | [`TextClient::insert`]   | 201 [`Inserted`]          |
//! | `GET /texts/{path}`  | [`TextClient::get`]      | 200 [`TextDoc`], 404      |
//! | `POST /texts/batch`  | [`TextClient::get_many`] | 200 [`Texts`]             |
//! | `DELETE /texts/{path}` | [`TextClient::delete`] | 200 [`Deleted`], 404      |
//! | `GET /healthz`       | [`TextClient::health`]   | 200, 503                  |
//! | `POST /texts/delete` | [`TextClient::delete_many`] | 200 [`Affected`]       |
//! | `GET /texts/unsettled?before&limit` | [`TextClient::unsettled`] | 200 [`Paths`] |
//! | `POST /texts/settle` | [`TextClient::settle`]   | 200 [`Affected`]          |

use httpkit::JsonClient;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::Endpoint;
use crate::error::CallError;
use crate::ids::PastePath;

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
    pub paste_path: PastePath,
}

/// Answer of `GET /texts/{path}` (200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextDoc {
    pub paste_path: PastePath,
    pub text: String,
}

/// Body of `POST /texts/batch`: at most [`MAX_BATCH_PATHS`] valid paths. Plain
/// strings on the wire, so that nosqlsvc can name the index of a malformed one;
/// [`TextClient::get_many`] only sends [`PastePath`]s.
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
/// [`MAX_BATCH_PATHS`] valid paths; answer of `GET /texts/unsettled`. Plain strings on
/// the wire, like [`GetMany`].
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

/// Most paths `GET /texts/unsettled` lists at once.
pub const MAX_UNSETTLED_LIMIT: u32 = MAX_BATCH_PATHS as u32;

/// The text to insert, borrowed so that a large paste is not copied to be encoded
/// (the same JSON as [`InsertText`]).
#[derive(Serialize)]
struct InsertTextRef<'a> {
    text: &'a str,
}

/// A typed client of nosqlsvc. Cheap to clone; clones share the connection pool.
///
/// To add an endpoint: one method here that builds its URL from typed arguments
/// with `self.at.url(..)`, calls the pooled client and converts its error with `?`;
/// its wire types go above, and the server's handler uses the same types.
#[derive(Debug, Clone)]
pub struct TextClient {
    at: Endpoint,
}

impl TextClient {
    /// A client of the nosqlsvc at `base`, such as `http://127.0.0.1:5005`.
    pub fn new(http: JsonClient, base: impl Into<String>) -> Self {
        Self {
            at: Endpoint::new(http, base),
        }
    }

    /// The base URL this client calls.
    pub fn base(&self) -> &str {
        self.at.base()
    }

    /// Stores a text under a new path (`POST /texts`).
    pub async fn insert(&self, text: &str) -> Result<Inserted, CallError> {
        let url = self.at.url(format_args!("/texts"));
        Ok(self
            .at
            .http
            .post_json(&url, &InsertTextRef { text })
            .await?)
    }

    /// One text (`GET /texts/{path}`); [`CallError::NotFound`] if none is stored there.
    pub async fn get(&self, path: &PastePath) -> Result<TextDoc, CallError> {
        let url = self.at.url(format_args!("/texts/{path}"));
        Ok(self.at.http.get_json(&url).await?)
    }

    /// Many texts in one call (`POST /texts/batch`), in the order asked, `None`
    /// where a path holds nothing. At most [`MAX_BATCH_PATHS`] paths.
    pub async fn get_many(&self, paths: &[PastePath]) -> Result<Texts, CallError> {
        let url = self.at.url(format_args!("/texts/batch"));
        let body = GetMany {
            paths: paths.iter().map(|p| p.as_str().to_owned()).collect(),
        };
        Ok(self.at.http.post_json(&url, &body).await?)
    }

    /// Deletes one text (`DELETE /texts/{path}`); [`CallError::NotFound`] if none
    /// was stored there.
    pub async fn delete(&self, path: &PastePath) -> Result<Deleted, CallError> {
        let url = self.at.url(format_args!("/texts/{path}"));
        Ok(self.at.http.delete_json(&url).await?)
    }

    /// Deletes many texts in one call (`POST /texts/delete`, at most
    /// [`MAX_BATCH_PATHS`]); returns how many there were.
    pub async fn delete_many(&self, paths: &[PastePath]) -> Result<u64, CallError> {
        let url = self.at.url(format_args!("/texts/delete"));
        let answer: Affected = self.at.http.post_json(&url, &paths_body(paths)).await?;
        Ok(answer.affected)
    }

    /// Up to `limit` texts inserted before `before` (unix seconds) that no paste was
    /// found to point at yet, oldest first (`GET /texts/unsettled`): the candidates
    /// of the orphan sweep.
    pub async fn unsettled(&self, before: i64, limit: u32) -> Result<Vec<PastePath>, CallError> {
        let url = self.at.url(format_args!(
            "/texts/unsettled?before={before}&limit={limit}"
        ));
        let answer: Paths = self.at.http.get_json(&url).await?;
        answer
            .paths
            .into_iter()
            .map(|p| {
                p.parse::<PastePath>()
                    .map_err(|err| CallError::BadResponse(format!("unsettled path: {err}")))
            })
            .collect()
    }

    /// Marks texts a paste points at as settled (`POST /texts/settle`); returns how
    /// many were unsettled.
    pub async fn settle(&self, paths: &[PastePath]) -> Result<u64, CallError> {
        let url = self.at.url(format_args!("/texts/settle"));
        let answer: Affected = self.at.http.post_json(&url, &paths_body(paths)).await?;
        Ok(answer.affected)
    }

    /// Whether nosqlsvc is ready (`GET /healthz`).
    pub async fn health(&self) -> Result<(), CallError> {
        let url = self.at.url(format_args!("/healthz"));
        self.at.http.get_json::<IgnoredAny>(&url).await?;
        Ok(())
    }
}

fn paths_body(paths: &[PastePath]) -> Paths {
    Paths {
        paths: paths.iter().map(|p| p.as_str().to_owned()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_borrowed_insert_body_is_the_wire_type() {
        let borrowed = serde_json::to_string(&InsertTextRef { text: "x\"y" }).unwrap();
        let owned = serde_json::to_string(&InsertText {
            text: "x\"y".into(),
        })
        .unwrap();
        assert_eq!(borrowed, owned);
    }
}
