//! The MongoDB backend (official driver): one client per process, one document
//! `{_id: ObjectId, text: String}` per paste, the path being the ObjectId in hex.
//! The client connects lazily and reconnects by itself, so a server that is down at
//! startup only makes requests fail with 503 until it is back.
//!
//! A crate of its own, not a module of nosqlsvc, for the build: the driver's generic
//! code that this backend instantiates is compiled here, at a lower opt-level (its
//! requests wait on the network) and beside nosqlsvc rather than inside it.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use mongodb::bson::doc;
use mongodb::bson::oid::ObjectId;
use mongodb::error::{ErrorKind, RETRYABLE_ERROR, RETRYABLE_WRITE_ERROR};
use mongodb::options::{Acknowledgment, ClientOptions, WriteConcern};
use mongodb::{Client, Collection};
use serde::{Deserialize, Serialize};

use nosqlsvc_store::{StoreError, TextStore};

/// A boxed operation (see the [`TextStore`] impl).
type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// How the MongoDB backend connects and writes.
#[derive(Debug, Clone)]
pub struct MongoConfig {
    /// Connection string, e.g. `mongodb://127.0.0.1:27017` (options in it apply too,
    /// except those set below).
    pub uri: String,
    /// Database holding the collection.
    pub database: String,
    /// Collection of paste texts.
    pub collection: String,
    /// Most connections the client opens per server.
    pub pool_size: u32,
    /// How long an operation waits for a usable server before failing (503).
    pub server_selection_timeout: Duration,
    /// Acknowledgement asked of every write.
    pub write_concern: MongoWriteConcern,
}

impl MongoConfig {
    /// Defaults: database `pastebin`, collection `texts`, 32 connections, 2 s server
    /// selection, `w: 1, j: true`.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            database: "pastebin".into(),
            collection: "texts".into(),
            pool_size: 32,
            server_selection_timeout: Duration::from_secs(2),
            write_concern: MongoWriteConcern::default(),
        }
    }
}

/// The write concern: acknowledged by `w` nodes, journaled if `journal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MongoWriteConcern {
    pub w: WriteAck,
    pub journal: bool,
}

impl Default for MongoWriteConcern {
    /// `w: 1, j: true`: durable on the primary's journal before we answer.
    fn default() -> Self {
        Self {
            w: WriteAck::Nodes(1),
            journal: true,
        }
    }
}

/// The `w` of a write concern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteAck {
    /// This many nodes (at least 1: unacknowledged writes are not offered).
    Nodes(u32),
    /// A majority of the replica set.
    Majority,
}

/// Why the MongoDB client could not be built (never because the server is down).
#[derive(Debug)]
pub enum MongoSetupError {
    /// The connection string or an option is invalid.
    Options(mongodb::error::Error),
    /// `w: 0` was asked for; writes must be acknowledged.
    UnacknowledgedWrites,
}

impl std::fmt::Display for MongoSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MongoSetupError::Options(err) => write!(f, "invalid MongoDB options: {err}"),
            MongoSetupError::UnacknowledgedWrites => {
                write!(f, "write concern w must be at least 1")
            }
        }
    }
}

impl std::error::Error for MongoSetupError {}

/// One stored paste.
#[derive(Debug, Serialize, Deserialize)]
struct TextDocument {
    #[serde(rename = "_id")]
    id: ObjectId,
    text: String,
    /// Insertion unix seconds while no paste is known to point at the text (see
    /// `TextStore::unsettled`); removed by `settle`. Absent on older documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unsettled: Option<i64>,
}

/// Paste texts in one MongoDB collection. A clone shares the client and its pool.
#[derive(Clone)]
pub struct MongoStore {
    client: Client,
    texts: Collection<TextDocument>,
    /// Whether the index on `unsettled` is known to exist (made by the first sweep).
    indexed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Runs one driver operation in a task of its own and waits for it. A request whose
/// client hangs up is dropped mid-flight by hyper; the driver must not be: a driver
/// future dropped before it completes closes its pooled connection (the driver's
/// documentation warns against it), so 200 hang-ups meant 200 reconnections to the
/// server while other requests waited for a connection. Detached, the operation
/// finishes and its connection goes back to the pool; only the answer is discarded.
async fn detached<T, F>(operation: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
{
    tokio::spawn(operation)
        .await
        .unwrap_or_else(|err| Err(StoreError::Internal(format!("MongoDB operation: {err}"))))
}

impl MongoStore {
    /// Builds the client (no I/O for `mongodb://` URIs; `mongodb+srv://` resolves DNS).
    /// Boxed here for the same reason as the [`TextStore`] methods below.
    #[inline(never)]
    pub fn connect(
        config: &MongoConfig,
    ) -> impl Future<Output = Result<Self, MongoSetupError>> + Send + use<> {
        let config = config.clone();
        boxed(async move { Self::connect_op(&config).await })
    }

    async fn connect_op(config: &MongoConfig) -> Result<Self, MongoSetupError> {
        let mut options = ClientOptions::parse(&config.uri)
            .await
            .map_err(MongoSetupError::Options)?;
        let w = match config.write_concern.w {
            WriteAck::Nodes(0) => return Err(MongoSetupError::UnacknowledgedWrites),
            WriteAck::Nodes(n) => Acknowledgment::Nodes(n),
            WriteAck::Majority => Acknowledgment::Majority,
        };
        options.write_concern = Some(
            WriteConcern::builder()
                .w(w)
                .journal(config.write_concern.journal)
                .build(),
        );
        options.max_pool_size = Some(config.pool_size.max(1));
        options.server_selection_timeout = Some(config.server_selection_timeout);
        options.app_name.get_or_insert_with(|| "nosqlsvc".into());
        let client = Client::with_options(options).map_err(MongoSetupError::Options)?;
        let texts = client
            .database(&config.database)
            .collection::<TextDocument>(&config.collection);
        Ok(Self {
            client,
            texts,
            indexed: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }
}

/// Server down, no server selected, connection lost, retryable: 503. The rest: 500.
fn classify(err: mongodb::error::Error) -> StoreError {
    let transient = matches!(
        *err.kind,
        ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
            | ErrorKind::Shutdown
    ) || err.contains_label(RETRYABLE_WRITE_ERROR)
        || err.contains_label(RETRYABLE_ERROR);
    if transient {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Internal(err.to_string())
    }
}

/// Seconds since the unix epoch, the unit of `unsettled`.
fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Paths that are not ObjectIds cannot name a document here: they are simply missing.
fn object_id(path: &str) -> Option<ObjectId> {
    ObjectId::parse_str(path).ok()
}

impl MongoStore {
    async fn insert_op(&self, text: String) -> Result<String, StoreError> {
        // ObjectIds are unique by construction (time, per-process random, counter).
        let id = ObjectId::new();
        let texts = self.texts.clone();
        detached(async move {
            texts
                .insert_one(TextDocument {
                    id,
                    text,
                    unsettled: Some(now_unix()),
                })
                .await
                .map_err(classify)
        })
        .await?;
        Ok(id.to_hex())
    }

    async fn get_op(&self, path: &str) -> Result<Option<String>, StoreError> {
        let Some(id) = object_id(path) else {
            return Ok(None);
        };
        let texts = self.texts.clone();
        detached(async move {
            let found = texts.find_one(doc! { "_id": id }).await.map_err(classify)?;
            Ok(found.map(|d| d.text))
        })
        .await
    }

    async fn get_many_op(&self, paths: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let ids: Vec<Option<ObjectId>> = paths.iter().map(|p| object_id(p)).collect();
        let mut wanted: Vec<ObjectId> = ids.iter().flatten().copied().collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(vec![None; paths.len()]);
        }
        let texts = self.texts.clone();
        let found = detached(async move {
            let mut cursor = texts
                .find(doc! { "_id": { "$in": wanted } })
                .await
                .map_err(classify)?;
            let mut found: HashMap<ObjectId, String> = HashMap::new();
            while cursor.advance().await.map_err(classify)? {
                let d = cursor.deserialize_current().map_err(classify)?;
                found.insert(d.id, d.text);
            }
            Ok(found)
        })
        .await?;
        // Back to request order; a path asked twice gets its text twice.
        Ok(ids
            .iter()
            .map(|id| id.and_then(|id| found.get(&id).cloned()))
            .collect())
    }

    async fn delete_op(&self, path: &str) -> Result<bool, StoreError> {
        let Some(id) = object_id(path) else {
            return Ok(false);
        };
        let texts = self.texts.clone();
        detached(async move {
            let result = texts
                .delete_one(doc! { "_id": id })
                .await
                .map_err(classify)?;
            Ok(result.deleted_count > 0)
        })
        .await
    }

    async fn delete_many_op(&self, paths: &[String]) -> Result<u64, StoreError> {
        let ids: Vec<ObjectId> = paths.iter().filter_map(|p| object_id(p)).collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let texts = self.texts.clone();
        detached(async move {
            let result = texts
                .delete_many(doc! { "_id": { "$in": ids } })
                .await
                .map_err(classify)?;
            Ok(result.deleted_count)
        })
        .await
    }

    async fn unsettled_op(&self, before: i64, limit: u32) -> Result<Vec<String>, StoreError> {
        use std::sync::atomic::Ordering;
        let texts = self.texts.clone();
        let indexed = self.indexed.clone();
        detached(async move {
            if !indexed.load(Ordering::Relaxed) {
                // Sparse: only unsettled documents (the few recent ones) are in it.
                let index = mongodb::IndexModel::builder()
                    .keys(doc! { "unsettled": 1 })
                    .options(
                        mongodb::options::IndexOptions::builder()
                            .sparse(true)
                            .build(),
                    )
                    .build();
                match texts.create_index(index).await {
                    Ok(_) => indexed.store(true, Ordering::Relaxed),
                    // The query works without it, only slower; try again next time.
                    Err(err) => tracing::warn!(%err, "cannot create the index on unsettled"),
                }
            }
            let raw = texts.clone_with_type::<mongodb::bson::Document>();
            let mut cursor = raw
                .find(doc! { "unsettled": { "$lt": before } })
                .sort(doc! { "unsettled": 1 })
                .limit(i64::from(limit))
                .projection(doc! { "_id": 1 })
                .await
                .map_err(classify)?;
            let mut out = Vec::new();
            while cursor.advance().await.map_err(classify)? {
                let d = cursor.deserialize_current().map_err(classify)?;
                if let Ok(id) = d.get_object_id("_id") {
                    out.push(id.to_hex());
                }
            }
            Ok(out)
        })
        .await
    }

    async fn settle_op(&self, paths: &[String]) -> Result<u64, StoreError> {
        let ids: Vec<ObjectId> = paths.iter().filter_map(|p| object_id(p)).collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let texts = self.texts.clone();
        detached(async move {
            let result = texts
                .update_many(
                    doc! { "_id": { "$in": ids }, "unsettled": { "$exists": true } },
                    doc! { "$unset": { "unsettled": "" } },
                )
                .await
                .map_err(classify)?;
            Ok(result.modified_count)
        })
        .await
    }

    async fn count_op(&self) -> Result<u64, StoreError> {
        let texts = self.texts.clone();
        detached(async move { texts.count_documents(doc! {}).await.map_err(classify) }).await
    }

    async fn ready_op(&self) -> Result<(), StoreError> {
        let admin = self.client.database("admin");
        detached(async move {
            admin
                .run_command(doc! { "ping": 1 })
                .await
                .map(|_| ())
                .map_err(classify)
        })
        .await
    }

    async fn close_op(self) {
        let Self { client, texts, .. } = self;
        drop(texts);
        // Bounded: a shutdown waits for outstanding cursors and sessions.
        if tokio::time::timeout(Duration::from_secs(5), client.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("MongoDB client did not shut down in time");
        }
    }
}

/// Every method boxes its operation's future here, in a function that is not inlined:
/// the body of an `async fn` is compiled in whichever crate polls it (like a generic
/// function), so without the box this backend and the driver's generic code under it
/// were compiled inside nosqlsvc, at its opt-level 3, on the critical path of a fresh
/// build. The boxed operation owns what it needs (the store's handles are `Arc`s, the
/// paths are copied): one allocation or two per call, on a path that then waits on
/// the network.
impl TextStore for MongoStore {
    #[inline(never)]
    fn insert(&self, text: String) -> impl Future<Output = Result<String, StoreError>> + Send {
        let this = self.clone();
        boxed(async move { this.insert_op(text).await })
    }

    #[inline(never)]
    fn get(&self, path: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        let (this, path) = (self.clone(), path.to_owned());
        boxed(async move { this.get_op(&path).await })
    }

    #[inline(never)]
    fn get_many(
        &self,
        paths: &[String],
    ) -> impl Future<Output = Result<Vec<Option<String>>, StoreError>> + Send {
        let (this, paths) = (self.clone(), paths.to_vec());
        boxed(async move { this.get_many_op(&paths).await })
    }

    #[inline(never)]
    fn delete(&self, path: &str) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let (this, path) = (self.clone(), path.to_owned());
        boxed(async move { this.delete_op(&path).await })
    }

    #[inline(never)]
    fn delete_many(
        &self,
        paths: &[String],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let (this, paths) = (self.clone(), paths.to_vec());
        boxed(async move { this.delete_many_op(&paths).await })
    }

    #[inline(never)]
    fn unsettled(
        &self,
        before: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        let this = self.clone();
        boxed(async move { this.unsettled_op(before, limit).await })
    }

    #[inline(never)]
    fn settle(&self, paths: &[String]) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let (this, paths) = (self.clone(), paths.to_vec());
        boxed(async move { this.settle_op(&paths).await })
    }

    #[inline(never)]
    fn count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let this = self.clone();
        boxed(async move { this.count_op().await })
    }

    #[inline(never)]
    fn ready(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        let this = self.clone();
        boxed(async move { this.ready_op().await })
    }

    #[inline(never)]
    fn close(self) -> impl Future<Output = ()> + Send {
        boxed(self.close_op())
    }
}

/// `future` as a trait object, so that its code is compiled where this is called.
fn boxed<T>(future: impl Future<Output = T> + Send + 'static) -> BoxFuture<T> {
    Box::pin(future)
}
