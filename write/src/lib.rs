//! The Write API: create a paste by storing its text in nosqlsvc first and its
//! metadata in sqlsvc second. A crash between the two leaves an unreachable text, never
//! an id that points at nothing; a metadata write that sqlsvc refused deletes the text
//! it orphaned.

use contract::meta::{CreateMeta, Meta};
use contract::text::Inserted;
use contract::{CallError, MetaClient, PastePath, TextClient};
use httpkit::JsonClient;

pub use contract::Upstreams;

/// Why a write failed.
#[derive(Debug)]
pub enum WriteError {
    /// nosqlsvc could not store the text.
    Text(CallError),
    /// sqlsvc could not record the metadata.
    Meta(CallError),
}

impl WriteError {
    /// The failure of the service that failed.
    pub fn upstream(&self) -> &CallError {
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

/// The Write API. Cheap to clone; clones share the client pool.
#[derive(Clone)]
pub struct WriteApi {
    meta: MetaClient,
    texts: TextClient,
}

impl WriteApi {
    pub fn new(client: JsonClient, upstreams: Upstreams) -> Self {
        let (meta, texts) = upstreams.clients(client);
        Self { meta, texts }
    }

    /// Stores `text` and records a new paste for it, expiring at `expires_at` (unix
    /// seconds) if given. Answers once both stores have made the write durable.
    pub async fn create(&self, text: &str, expires_at: Option<i64>) -> Result<Meta, WriteError> {
        let inserted: Inserted = self.texts.insert(text).await.map_err(WriteError::Text)?;

        let request = CreateMeta {
            paste_path: inserted.paste_path,
            expires_at,
            size: Some(text.len() as u64),
        };
        match self.meta.create(&request).await {
            Ok(meta) => Ok(meta),
            Err(err) => {
                // Only an answer from sqlsvc proves the row was not written; after a
                // timeout or a dropped connection it may have been, and deleting the
                // text then would leave an id pointing at nothing.
                if err.answered() {
                    self.forget_text(&request.paste_path).await;
                }
                Err(WriteError::Meta(err))
            }
        }
    }

    /// Best effort: delete a text whose metadata could not be recorded. If this fails
    /// too, the text stays unreachable until collected; no id points at it.
    async fn forget_text(&self, path: &PastePath) {
        if let Err(err) = self.texts.delete(path).await {
            tracing::warn!(%err, %path, "could not delete an orphaned text");
        }
    }
}
