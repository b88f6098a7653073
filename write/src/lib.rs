//! The Write API: create a paste by storing its text in nosqlsvc first and its
//! metadata in sqlsvc second. A crash between the two leaves an unreachable text, never
//! an id that points at nothing; a metadata write that sqlsvc refused deletes the text
//! it orphaned.

use contract::meta::{CreateMeta, Created, Meta};
use contract::text::Inserted;
use contract::{CallError, MetaClient, PasteId, PastePath, TextClient};
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

/// The options of a new paste.
#[derive(Debug, Clone, Default)]
pub struct NewPaste {
    /// Unix seconds after which it is gone; None: never.
    pub expires_at: Option<i64>,
    /// The first read that returns the text removes it.
    pub burn_after_reading: bool,
    /// Not listed.
    pub unlisted: bool,
}

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
        let options = NewPaste {
            expires_at,
            ..NewPaste::default()
        };
        self.create_with(text, options).await.map(|c| c.meta)
    }

    /// Like [`WriteApi::create`], with every option of a new paste; the answer holds
    /// the delete token, handed out this once.
    pub async fn create_with(&self, text: &str, options: NewPaste) -> Result<Created, WriteError> {
        let inserted: Inserted = self.texts.insert(text).await.map_err(WriteError::Text)?;

        let request = CreateMeta {
            paste_path: inserted.paste_path,
            expires_at: options.expires_at,
            size: Some(text.len() as u64),
            burn_after_reading: options.burn_after_reading,
            unlisted: options.unlisted,
        };
        match self.meta.create(&request).await {
            Ok(meta) => Ok(meta),
            Err(err) => {
                // Only an answer from sqlsvc, or a request never sent (connection
                // refused), proves the row was not written; after a timeout or a
                // dropped connection it may have been, and deleting the text then
                // would leave an id pointing at nothing.
                if err.not_applied() {
                    self.forget_text(&request.paste_path).await;
                }
                Err(WriteError::Meta(err))
            }
        }
    }

    /// Deletes the paste `id` if `token` is its delete token: `Ok(true)` when it was
    /// deleted, `Ok(false)` when there is no such live paste or the token is wrong
    /// (sqlsvc answers both alike, on purpose). sqlsvc removes the row and puts its
    /// text in its trash in one transaction; its sweeper deletes the text from
    /// nosqlsvc at once (and again after a crash), so a delete that dies half way
    /// leaves no readable paste and no text forever orphaned.
    pub async fn delete(&self, id: &PasteId, token: &str) -> Result<bool, WriteError> {
        match self.meta.delete(id, Some(token)).await {
            Ok(_) => Ok(true),
            Err(CallError::NotFound) => Ok(false),
            Err(err) => Err(WriteError::Meta(err)),
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
