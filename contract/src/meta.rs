//! sqlsvc's contract: the paste metadata service. Its wire types, and
//! [`MetaClient`], which owns the URLs and turns statuses into [`CallError`]s.
//!
//! | Call                       | Method                    | Answer          |
//! |----------------------------|---------------------------|-----------------|
//! | `POST /pastes`             | [`MetaClient::create`]    | 201 [`Meta`]    |
//! | `GET /pastes/{id}`         | [`MetaClient::get`]       | 200 [`Meta`], 404 |
//! | `GET /pastes?limit&cursor` | [`MetaClient::list`]      | 200 [`MetaPage`], 400 bad cursor |
//! | `GET /deletions?since`     | [`MetaClient::deletions`] | 200 [`DeletionPage`] |
//! | `GET /creations?since`     | [`MetaClient::creations`] | 200 [`CreationPage`] |
//! | `GET /healthz`             | [`MetaClient::health`]    | 200, 503        |
//! | `DELETE /pastes/{id}`      | [`MetaClient::delete`]    | 200 [`Meta`], 404 (also: wrong token) |
//! | `POST /pastes/{id}/claim`  | [`MetaClient::claim`]     | 200 [`Meta`] to the one winner, 404 |
//! | `GET /pastes/{id}/stats`   | [`MetaClient::stats`]     | 200 [`PasteStats`], 404 |
//! | `POST /views`              | [`MetaClient::add_views`] | 200             |

use httpkit::JsonClient;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::Endpoint;
use crate::error::CallError;
use crate::ids::{PasteId, PastePath};

/// Body of `POST /pastes`: where the text is stored, and its optional expiry and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateMeta {
    /// Location of the text in nosqlsvc.
    pub paste_path: PastePath,
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

/// One metadata row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub paste_id: PasteId,
    pub paste_path: PastePath,
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

/// Answer of `POST /pastes` (201): the row, and its delete token. The token is
/// drawn by sqlsvc and handed out this once; only its SHA-256 is stored.
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
        && matches!(
            &b[5..],
            b"01"
                | b"02"
                | b"03"
                | b"04"
                | b"05"
                | b"06"
                | b"07"
                | b"08"
                | b"09"
                | b"10"
                | b"11"
                | b"12"
        )
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

/// Answer of `GET /creations?since=N`: the cacheable pastes created after insertion
/// number `since`, which each webserver polls to fetch, in one batch, the pastes
/// other webservers created, before anyone reads them there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreationPage {
    /// Live pastes after `since`, oldest first; burn-after-reading pastes (never
    /// cached) and expired ones are left out. Empty when `since` was absent.
    pub pastes: Vec<Meta>,
    /// The position these pastes bring the caller to; its next `since`.
    pub next: u64,
    /// More pastes follow `next`: ask again at once.
    pub more: bool,
}

/// A typed client of sqlsvc. Cheap to clone; clones share the connection pool.
///
/// To add an endpoint: one method here that builds its URL from typed arguments
/// with `self.at.url(..)`, calls the pooled client and converts its error with `?`
/// (the [`From`] in [`crate::error`] decides what each status means); its wire types
/// go above, and the server's handler uses the same types.
#[derive(Debug, Clone)]
pub struct MetaClient {
    at: Endpoint,
}

impl MetaClient {
    /// A client of the sqlsvc at `base`, such as `http://127.0.0.1:5004`.
    pub fn new(http: JsonClient, base: impl Into<String>) -> Self {
        Self {
            at: Endpoint::new(http, base),
        }
    }

    /// The base URL this client calls.
    pub fn base(&self) -> &str {
        self.at.base()
    }

    /// Records a new paste (`POST /pastes`); the answer holds its delete token.
    pub async fn create(&self, request: &CreateMeta) -> Result<Created, CallError> {
        let url = self.at.url(format_args!("/pastes"));
        Ok(self.at.http.post_json(&url, request).await?)
    }

    /// One live paste's metadata (`GET /pastes/{id}`); [`CallError::NotFound`] if it
    /// is unknown, deleted or expired.
    pub async fn get(&self, id: &PasteId) -> Result<Meta, CallError> {
        let url = self.at.url(format_args!("/pastes/{id}"));
        Ok(self.at.http.get_json(&url).await?)
    }

    /// A page of live pastes, newest first (`GET /pastes`). `cursor` is the opaque
    /// `next_cursor` (or one of `cursors`) of an earlier page, passed on as is; one
    /// sqlsvc does not accept is [`CallError::Invalid`].
    pub async fn list(&self, limit: u32, cursor: Option<&str>) -> Result<MetaPage, CallError> {
        let url = match cursor {
            Some(cursor) => self
                .at
                .url(format_args!("/pastes?limit={limit}&cursor={cursor}")),
            None => self.at.url(format_args!("/pastes?limit={limit}")),
        };
        Ok(self.at.http.get_json(&url).await?)
    }

    /// The deletion log after position `since` (`GET /deletions`); `None` asks from
    /// wherever the log can be followed (the answer says `reset`).
    pub async fn deletions(&self, since: Option<u64>) -> Result<DeletionPage, CallError> {
        let url = match since {
            Some(since) => self.at.url(format_args!("/deletions?since={since}")),
            None => self.at.url(format_args!("/deletions")),
        };
        Ok(self.at.http.get_json(&url).await?)
    }

    /// The pastes created after insertion number `since` (`GET /creations`), at most
    /// `limit`; `None` asks only for the newest number, to follow from there.
    pub async fn creations(
        &self,
        since: Option<u64>,
        limit: u32,
    ) -> Result<CreationPage, CallError> {
        let url = match since {
            Some(since) => self
                .at
                .url(format_args!("/creations?since={since}&limit={limit}")),
            None => self.at.url(format_args!("/creations?limit={limit}")),
        };
        Ok(self.at.http.get_json(&url).await?)
    }

    /// Deletes a live paste (`DELETE /pastes/{id}`) if `token` is its delete token, or
    /// as an operator when `token` is None. [`CallError::NotFound`] for an unknown id
    /// and a wrong token alike. The row goes, its text to sqlsvc's trash (its sweeper
    /// deletes it from nosqlsvc), its id to the deletion log.
    pub async fn delete(&self, id: &PasteId, token: Option<&str>) -> Result<Meta, CallError> {
        let url = self.at.url(format_args!("/pastes/{id}"));
        let body = token.map(|t| {
            // A struct of one string always encodes.
            serde_json::to_vec(&DeleteRequest {
                delete_token: t.to_owned(),
            })
            .unwrap_or_default()
            .into()
        });
        Ok(self.at.http.call(http::Method::DELETE, &url, body).await?)
    }

    /// Claims a live burn-after-reading paste (`POST /pastes/{id}/claim`): the one
    /// caller that gets `Ok` removed it and may show its text; every other (and any
    /// paste that is not burn-after-reading) gets [`CallError::NotFound`].
    pub async fn claim(&self, id: &PasteId) -> Result<Meta, CallError> {
        let url = self.at.url(format_args!("/pastes/{id}/claim"));
        Ok(self.at.http.call(http::Method::POST, &url, None).await?)
    }

    /// A live paste's view counts (`GET /pastes/{id}/stats`).
    pub async fn stats(&self, id: &PasteId) -> Result<PasteStats, CallError> {
        let url = self.at.url(format_args!("/pastes/{id}/stats"));
        Ok(self.at.http.get_json(&url).await?)
    }

    /// Adds a batch of view counts (`POST /views`), at most [`MAX_VIEW_ENTRIES`].
    pub async fn add_views(&self, counts: &ViewCounts) -> Result<(), CallError> {
        let url = self.at.url(format_args!("/views"));
        self.at
            .http
            .post_json::<_, IgnoredAny>(&url, counts)
            .await?;
        Ok(())
    }

    /// Whether sqlsvc is ready (`GET /healthz`).
    pub async fn health(&self) -> Result<(), CallError> {
        let url = self.at.url(format_args!("/healthz"));
        self.at.http.get_json::<IgnoredAny>(&url).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializing_meta_validates_its_id_and_path() {
        let ok = r#"{"paste_id":"aZ09aZ09aZ","paste_path":"p","created_at":1,"expires_at":null,"size":null}"#;
        assert!(serde_json::from_str::<Meta>(ok).is_ok());
        for bad in [
            r#"{"paste_id":"bad!","paste_path":"p","created_at":1,"expires_at":null,"size":null}"#,
            r#"{"paste_id":"aZ09aZ09aZ","paste_path":"a/b","created_at":1,"expires_at":null,"size":null}"#,
        ] {
            assert!(serde_json::from_str::<Meta>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<CreateMeta>(r#"{"paste_path":""}"#).is_err());
        let create: CreateMeta = serde_json::from_str(r#"{"paste_path":"p"}"#).unwrap();
        assert_eq!(create.expires_at, None);
        assert!(!create.burn_after_reading && !create.unlisted);
    }

    #[test]
    fn created_is_the_row_and_its_token_side_by_side() {
        let json = r#"{"paste_id":"aZ09aZ09aZ","paste_path":"p","created_at":1,"expires_at":null,"size":null,"burn_after_reading":true,"unlisted":false,"delete_token":"t"}"#;
        let created: Created = serde_json::from_str(json).unwrap();
        assert!(created.meta.burn_after_reading);
        assert_eq!(created.delete_token, "t");
        assert_eq!(serde_json::to_string(&created).unwrap(), json);
    }

    #[test]
    fn months() {
        for ok in ["2026-11", "1970-01", "2026-12"] {
            assert!(valid_month(ok), "{ok}");
        }
        for bad in [
            "2026-13", "2026-00", "2026-1", "26-11", "2026/11", "2026-11 ", "abcd-11",
        ] {
            assert!(!valid_month(bad), "{bad}");
        }
    }
}
