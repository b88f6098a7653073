//! The Read API: get one paste, or list a page of pastes, by asking sqlsvc for the
//! metadata and nosqlsvc for the texts. Texts never change once written, so they are
//! cached by path; metadata is always asked for, so deletion and expiry act at once.

mod cache;

use std::sync::Arc;

use httpkit::{ClientError, JsonClient};
use nosqlsvc::api::{GetMany, TextDoc, Texts};
use sqlsvc::api::{Meta, MetaPage, PasteId};

pub use cache::TextCache;

/// A paste as the Read API returns it: its metadata and its text.
#[derive(Debug, Clone)]
pub struct Paste {
    pub meta: Meta,
    pub text: Arc<str>,
}

/// A page of pastes, newest first, with the cursor of the next page if there is one.
#[derive(Debug, Clone)]
pub struct Page {
    pub pastes: Vec<Paste>,
    /// `cursors[i]` continues the listing right after `pastes[i]`, so a caller may
    /// send fewer pastes than the page holds (empty if sqlsvc gave none).
    pub cursors: Vec<String>,
    pub next_cursor: Option<String>,
}

/// Why a read failed.
#[derive(Debug)]
pub enum ReadError {
    /// No such paste, or it has expired.
    NotFound,
    /// A cursor sqlsvc did not accept.
    BadCursor(String),
    /// sqlsvc or nosqlsvc failed or could not be reached.
    Upstream(ClientError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotFound => write!(f, "paste not found"),
            ReadError::BadCursor(msg) => write!(f, "bad cursor: {msg}"),
            ReadError::Upstream(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Where the Read API finds its services: base URLs such as `http://127.0.0.1:5004`.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub sqlsvc: String,
    pub nosqlsvc: String,
}

/// The Read API. Cheap to clone; clones share the client pool and the cache.
#[derive(Clone)]
pub struct ReadApi {
    client: JsonClient,
    upstreams: Arc<Upstreams>,
    cache: Arc<TextCache>,
}

impl ReadApi {
    pub fn new(client: JsonClient, upstreams: Upstreams, cache: Arc<TextCache>) -> Self {
        Self {
            client,
            upstreams: Arc::new(upstreams),
            cache,
        }
    }

    /// One paste by id: metadata from sqlsvc, then the text (from the cache when it
    /// holds it).
    pub async fn get(&self, id: &PasteId) -> Result<Paste, ReadError> {
        let url = format!("{}/pastes/{}", self.upstreams.sqlsvc, id);
        let meta: Meta = self.client.get_json(&url).await.map_err(not_found_or)?;
        let text = match self.cache.get(&meta.paste_path) {
            Some(text) => text,
            None => {
                let url = format!("{}/texts/{}", self.upstreams.nosqlsvc, meta.paste_path);
                let doc: TextDoc = match self.client.get_json(&url).await {
                    Ok(doc) => doc,
                    Err(ClientError::Status { status, .. }) if status.as_u16() == 404 => {
                        // Text first, then metadata, so this only happens if a text was
                        // lost or deleted under a live row.
                        tracing::warn!(paste_id = %id, path = %meta.paste_path, "metadata points at a missing text");
                        return Err(ReadError::NotFound);
                    }
                    Err(err) => return Err(ReadError::Upstream(err)),
                };
                self.cache.insert(&meta.paste_path, doc.text)
            }
        };
        Ok(Paste { meta, text })
    }

    /// A page of pastes, newest first. The texts of the page come in one batch call.
    pub async fn list(&self, limit: u32, cursor: Option<&str>) -> Result<Page, ReadError> {
        let mut url = format!("{}/pastes?limit={limit}", self.upstreams.sqlsvc);
        if let Some(cursor) = cursor {
            url.push_str("&cursor=");
            url.push_str(cursor);
        }
        let page: MetaPage = self.client.get_json(&url).await.map_err(|err| match err {
            ClientError::Status { status, message } if status.as_u16() == 400 => {
                ReadError::BadCursor(message)
            }
            other => ReadError::Upstream(other),
        })?;

        let mut texts: Vec<Option<Arc<str>>> = page
            .pastes
            .iter()
            .map(|m| self.cache.get(&m.paste_path))
            .collect();
        let missing: Vec<String> = page
            .pastes
            .iter()
            .zip(&texts)
            .filter(|(_, t)| t.is_none())
            .map(|(m, _)| m.paste_path.clone())
            .collect();
        if !missing.is_empty() {
            let url = format!("{}/texts/batch", self.upstreams.nosqlsvc);
            let fetched: Texts = self
                .client
                .post_json(&url, &GetMany { paths: missing })
                .await
                .map_err(ReadError::Upstream)?;
            let mut fetched = fetched.texts.into_iter();
            for (meta, slot) in page.pastes.iter().zip(texts.iter_mut()) {
                if slot.is_none() {
                    *slot = fetched
                        .next()
                        .flatten()
                        .map(|text| self.cache.insert(&meta.paste_path, text));
                }
            }
        }

        let with_cursors = page.cursors.len() == page.pastes.len();
        let mut cursors = page.cursors.into_iter();
        let mut kept_cursors = Vec::new();
        let pastes = page
            .pastes
            .into_iter()
            .zip(texts)
            .filter_map(|(meta, text)| {
                let cursor = cursors.next();
                match text {
                    Some(text) => {
                        kept_cursors.extend(cursor);
                        Some(Paste { meta, text })
                    }
                    None => {
                        tracing::warn!(paste_id = %meta.paste_id, "listed paste has no text; skipped");
                        None
                    }
                }
            })
            .collect();
        Ok(Page {
            pastes,
            cursors: if with_cursors {
                kept_cursors
            } else {
                Vec::new()
            },
            next_cursor: page.next_cursor,
        })
    }
}

impl ReadApi {
    /// Both storage services answer their health checks.
    pub async fn ready(&self) -> Result<(), ReadError> {
        for base in [&self.upstreams.sqlsvc, &self.upstreams.nosqlsvc] {
            let url = format!("{base}/healthz");
            self.client
                .get_json::<serde::de::IgnoredAny>(&url)
                .await
                .map_err(ReadError::Upstream)?;
        }
        Ok(())
    }
}

fn not_found_or(err: ClientError) -> ReadError {
    match err {
        ClientError::Status { status, .. } if status.as_u16() == 404 => ReadError::NotFound,
        other => ReadError::Upstream(other),
    }
}
