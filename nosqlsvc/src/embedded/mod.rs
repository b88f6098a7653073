//! The embedded backend: one redb file, table `texts` (path -> text). Inserts and
//! deletes go through one group-committing writer thread; reads run on the blocking
//! pool in their own read transactions.

mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::store::{StoreError, TextStore};
use writer::{Op, Writer};

/// The texts: text path -> text.
pub(crate) const TEXTS: TableDefinition<&str, &str> = TableDefinition::new("texts");

/// Texts not yet settled, by (insertion unix seconds, path): the orphan sweep reads
/// the oldest first.
pub(crate) const UNSETTLED: TableDefinition<(u64, &str), ()> = TableDefinition::new("unsettled");

/// The same, by path: its insertion seconds, to find its `UNSETTLED` key.
pub(crate) const UNSETTLED_AT: TableDefinition<&str, u64> = TableDefinition::new("unsettled_at");

/// Queued writes waiting for the writer; senders wait (backpressure) when it is full.
const QUEUE_CAPACITY: usize = 4096;

/// Limits of one group commit.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommit {
    /// Most operations committed in one write transaction.
    pub max_ops: usize,
    /// Stop adding inserts to a batch once their texts total this many bytes.
    pub max_bytes: usize,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            max_ops: 256,
            max_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Why the embedded store could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The parent directory of the file could not be created.
    CreateDir(std::io::Error),
    /// redb refused the file (locked by another process, not a redb file, I/O error...).
    Database(redb::Error),
    /// The blocking open task died.
    Join(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::CreateDir(err) => write!(f, "cannot create the directory: {err}"),
            OpenError::Database(err) => write!(f, "cannot open the database: {err}"),
            OpenError::Join(err) => write!(f, "the open task failed: {err}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Paste texts in one redb file. Opening locks the file against other processes.
pub struct RedbStore {
    db: Arc<Database>,
    ops: mpsc::Sender<Op>,
    writer: std::thread::JoinHandle<()>,
    path: PathBuf,
}

impl RedbStore {
    /// Opens (creating if needed, parent directories too) the database at `path` and
    /// starts the writer thread, with the default cache bound
    /// ([`crate::DEFAULT_EMBEDDED_CACHE_BYTES`]).
    pub async fn open(path: &Path, group: GroupCommit) -> Result<Self, OpenError> {
        Self::open_with_cache(path, group, crate::DEFAULT_EMBEDDED_CACHE_BYTES).await
    }

    /// Like [`RedbStore::open`], with the page cache and write buffer bounded by
    /// `cache_bytes` together.
    pub async fn open_with_cache(
        path: &Path,
        group: GroupCommit,
        cache_bytes: usize,
    ) -> Result<Self, OpenError> {
        let owned = path.to_path_buf();
        let db = tokio::task::spawn_blocking(move || open_blocking(&owned, cache_bytes))
            .await
            .map_err(|err| OpenError::Join(err.to_string()))??;
        let db = Arc::new(db);
        let (ops, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer = Writer::new(db.clone(), rx, group);
        let writer = std::thread::Builder::new()
            .name("redb-writer".into())
            .spawn(move || writer.run())
            .map_err(|err| OpenError::Join(err.to_string()))?;
        Ok(Self {
            db,
            ops,
            writer,
            path: path.to_path_buf(),
        })
    }

    /// The file this store uses.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one write and waits for its group commit.
    async fn submit<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.ops.send(op(tx)).await.map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    /// Runs `read` on the blocking pool inside one read transaction.
    ///
    /// Reads may touch the disk (cache misses, large texts), so they stay off the async
    /// workers; one blocking hop costs a few microseconds.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&redb::ReadOnlyTable<&str, &str>) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        let result = tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            let table = txn.open_table(TEXTS)?;
            read(&table)
        })
        .await
        .map_err(|err| StoreError::Internal(format!("read task failed: {err}")))?;
        result.map_err(internal)
    }
}

fn open_blocking(path: &Path, cache_bytes: usize) -> Result<Database, OpenError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(OpenError::CreateDir)?;
    }
    let db = redb::Builder::new()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|err| OpenError::Database(err.into()))?;
    // Create the table up front so read transactions can always open it.
    let txn = db
        .begin_write()
        .map_err(|err| OpenError::Database(err.into()))?;
    txn.open_table(TEXTS)
        .map_err(|err| OpenError::Database(err.into()))?;
    txn.open_table(UNSETTLED)
        .map_err(|err| OpenError::Database(err.into()))?;
    txn.open_table(UNSETTLED_AT)
        .map_err(|err| OpenError::Database(err.into()))?;
    txn.commit()
        .map_err(|err| OpenError::Database(err.into()))?;
    Ok(db)
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the embedded writer has stopped".into())
}

pub(crate) fn internal(err: impl Into<redb::Error>) -> StoreError {
    StoreError::Internal(err.into().to_string())
}

impl TextStore for RedbStore {
    async fn insert(&self, text: String) -> Result<String, StoreError> {
        self.submit(|reply| Op::Insert { text, reply }).await
    }

    async fn get(&self, path: &str) -> Result<Option<String>, StoreError> {
        let path = path.to_owned();
        self.read(move |table| Ok(table.get(path.as_str())?.map(|v| v.value().to_owned())))
            .await
    }

    async fn get_many(&self, paths: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let paths = paths.to_vec();
        self.read(move |table| {
            paths
                .iter()
                .map(|p| Ok(table.get(p.as_str())?.map(|v| v.value().to_owned())))
                .collect()
        })
        .await
    }

    async fn delete(&self, path: &str) -> Result<bool, StoreError> {
        let path = path.to_owned();
        self.submit(|reply| Op::Delete { path, reply }).await
    }

    async fn delete_many(&self, paths: &[String]) -> Result<u64, StoreError> {
        if paths.is_empty() {
            return Ok(0);
        }
        let paths = paths.to_vec();
        self.submit(|reply| Op::DeleteMany { paths, reply }).await
    }

    async fn unsettled(&self, before: i64, limit: u32) -> Result<Vec<String>, StoreError> {
        let db = self.db.clone();
        let before = u64::try_from(before).unwrap_or(0);
        let result = tokio::task::spawn_blocking(move || -> Result<Vec<String>, redb::Error> {
            let txn = db.begin_read()?;
            let table = txn.open_table(UNSETTLED)?;
            let mut out = Vec::new();
            for entry in table.range::<(u64, &str)>(..(before, ""))? {
                if out.len() >= limit as usize {
                    break;
                }
                let (key, _) = entry?;
                out.push(key.value().1.to_owned());
            }
            Ok(out)
        })
        .await
        .map_err(|err| StoreError::Internal(format!("read task failed: {err}")))?;
        result.map_err(internal)
    }

    async fn settle(&self, paths: &[String]) -> Result<u64, StoreError> {
        if paths.is_empty() {
            return Ok(0);
        }
        let paths = paths.to_vec();
        self.submit(|reply| Op::Settle { paths, reply }).await
    }

    async fn count(&self) -> Result<u64, StoreError> {
        self.read(|table| Ok(table.len()?)).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        if self.ops.is_closed() || self.writer.is_finished() {
            return Err(writer_gone());
        }
        self.read(|_| Ok(())).await
    }

    async fn close(self) {
        let Self {
            db, ops, writer, ..
        } = self;
        // The writer drains what is queued, then sees the closed channel and exits.
        drop(ops);
        let joined = tokio::task::spawn_blocking(move || writer.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            tracing::error!("the embedded writer thread panicked");
        }
        drop(db);
    }
}
