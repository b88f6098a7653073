//! The Write API: create a paste by storing its text in nosqlsvc first and its
//! metadata in sqlsvc second. A crash between the two leaves an unreachable text, never
//! an id that points at nothing; a metadata write that sqlsvc refused deletes the text
//! it orphaned.

use std::sync::Arc;

use httpkit::{ClientError, JsonClient};
use nosqlsvc::api::Inserted;
use serde::Serialize;
use sqlsvc::api::{CreateMeta, Meta};

/// Why a write failed.
#[derive(Debug)]
pub enum WriteError {
    /// nosqlsvc could not store the text.
    Text(ClientError),
    /// sqlsvc could not record the metadata.
    Meta(ClientError),
}

impl WriteError {
    /// The failure of the service that failed.
    pub fn upstream(&self) -> &ClientError {
        match self {
            WriteError::Text(err) | WriteError::Meta(err) => err,
        }
    }
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Text(err) => write!(f, "storing the text failed: {err}"),
            WriteError::Meta(err) => write!(f, "recording the metadata failed: {err}"),
        }
    }
}

impl std::error::Error for WriteError {}

/// Where the Write API finds its services: base URLs such as `http://127.0.0.1:5004`.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub sqlsvc: String,
    pub nosqlsvc: String,
}

/// The Write API. Cheap to clone; clones share the client pool.
#[derive(Clone)]
pub struct WriteApi {
    client: JsonClient,
    upstreams: Arc<Upstreams>,
}

/// The text to insert, borrowed so that a large paste is not copied to be encoded.
#[derive(Serialize)]
struct InsertTextRef<'a> {
    text: &'a str,
}

impl WriteApi {
    pub fn new(client: JsonClient, upstreams: Upstreams) -> Self {
        Self {
            client,
            upstreams: Arc::new(upstreams),
        }
    }

    /// Stores `text` and records a new paste for it, expiring at `expires_at` (unix
    /// seconds) if given. Answers once both stores have made the write durable.
    pub async fn create(&self, text: &str, expires_at: Option<i64>) -> Result<Meta, WriteError> {
        let texts_url = format!("{}/texts", self.upstreams.nosqlsvc);
        let inserted: Inserted = self
            .client
            .post_json(&texts_url, &InsertTextRef { text })
            .await
            .map_err(WriteError::Text)?;

        let meta_url = format!("{}/pastes", self.upstreams.sqlsvc);
        let request = CreateMeta {
            paste_path: inserted.paste_path,
            expires_at,
            size: Some(text.len() as u64),
        };
        match self.client.post_json::<_, Meta>(&meta_url, &request).await {
            Ok(meta) => Ok(meta),
            Err(err) => {
                // Only an answer from sqlsvc proves the row was not written; after a
                // timeout or a dropped connection it may have been, and deleting the
                // text then would leave an id pointing at nothing.
                if matches!(err, ClientError::Status { .. }) {
                    self.forget_text(&request.paste_path).await;
                }
                Err(WriteError::Meta(err))
            }
        }
    }

    /// Best effort: delete a text whose metadata could not be recorded. If this fails
    /// too, the text stays unreachable until collected; no id points at it.
    async fn forget_text(&self, path: &str) {
        let url = format!("{}/texts/{}", self.upstreams.nosqlsvc, path);
        if let Err(err) = self.client.delete_json::<serde::de::IgnoredAny>(&url).await {
            tracing::warn!(%err, path, "could not delete an orphaned text");
        }
    }
}
