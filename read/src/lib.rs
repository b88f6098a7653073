//! The Read API: get one paste, or list a page of pastes, by asking sqlsvc for the
//! metadata and nosqlsvc for the texts. Each webserver keeps the pastes it read in a
//! cache bounded in bytes (`cache`), so repeated reads stop here; expiry is checked
//! on every hit, and deletions arrive by polling sqlsvc's deletion log
//! (`invalidation`). Concurrent reads of one uncached paste share one fetch
//! (`flight`).

pub mod cache;
pub mod flight;
pub mod invalidation;
pub mod prefetch;
pub mod views;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use contract::meta::{Meta, MetaPage, PasteStats};
use contract::text::{TextDoc, Texts};
use contract::{CallError, MetaClient, PasteId, PastePath, TextClient};
use httpkit::JsonClient;
use serde::Serialize;

pub use cache::{Lookup, PasteCache, Ticket};
use flight::Flights;
pub use invalidation::SqlsvcHealth;

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

/// Why a read failed. `Clone`: one fetch's error goes to every reader that waited
/// on it.
#[derive(Debug, Clone)]
pub enum ReadError {
    /// No such paste, or it has expired.
    NotFound,
    /// A cursor sqlsvc did not accept.
    BadCursor(String),
    /// sqlsvc or nosqlsvc failed or could not be reached.
    Upstream(CallError),
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

/// What one fetch gives every reader that waited on it.
type Fetched = Result<Arc<Paste>, ReadError>;

pub use contract::Upstreams;

/// The Read API. Cheap to clone; clones share the client pool, the cache, the
/// fetches under way and what is known of sqlsvc's health.
#[derive(Clone)]
pub struct ReadApi {
    meta: MetaClient,
    texts: TextClient,
    cache: Arc<PasteCache>,
    flights: Arc<Flights<PasteId, Fetched>>,
    health: Arc<SqlsvcHealth>,
    /// Fetches of one paste from the stores (each shared by its concurrent readers).
    fetches: Arc<AtomicU64>,
    /// Pastes cached by following sqlsvc's creations (`prefetch`).
    prefetched: Arc<AtomicU64>,
    /// Misses on new pastes, which hurry the creations poll (`prefetch`).
    behind: Arc<prefetch::Behind>,
    /// Views counted and not yet flushed to sqlsvc.
    views: Arc<views::ViewCounter>,
}

/// Figures of a webserver's cache, for `/healthz`, operators and tests.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: u64,
    pub capacity_bytes: usize,
    /// Fetches of one paste from the stores since start (cache misses, after the
    /// single flight merged concurrent ones).
    pub fetches: u64,
    /// Pastes other webservers created that this one cached before their first
    /// read here (`prefetch`).
    pub prefetched: u64,
    /// Fetches of pastes created in the last seconds that the cache kept: with
    /// prefetching on, each hurried the next creations poll (`prefetch`).
    pub missed_new: u64,
    /// Reads that missed while pastes created elsewhere were being read, waited for
    /// the creations poll, and found their paste in the cache after it (`prefetch`).
    pub joined_polls: u64,
    /// Creations polls started since start (`prefetch`): one every `POLL_INTERVAL`,
    /// more while reads miss on new pastes.
    pub creation_polls: u64,
    /// The deletion-log position applied; None until the first poll answered.
    pub deletion_log_position: Option<u64>,
    /// Whether the deletion-log polls say sqlsvc is down.
    pub sqlsvc_down: bool,
}

impl ReadApi {
    /// A Read API with a cache of `cache_bytes` (0: no cache). Caching is safe only
    /// while `follow_deletions` runs beside it.
    pub fn new(client: JsonClient, upstreams: Upstreams, cache_bytes: usize) -> Self {
        let (meta, texts) = upstreams.clients(client);
        Self {
            meta,
            texts,
            cache: Arc::new(PasteCache::new(cache_bytes)),
            flights: Arc::default(),
            health: Arc::default(),
            fetches: Arc::default(),
            prefetched: Arc::default(),
            behind: Arc::default(),
            views: Arc::default(),
        }
    }

    /// The same Read API (one cache, one view counter, one health) calling the stores
    /// through `client` instead: for tasks that run on a runtime of their own, whose
    /// connections must be that runtime's (a pooled connection is driven by the
    /// runtime that opened it).
    pub fn on_client(&self, client: JsonClient, upstreams: Upstreams) -> Self {
        let (meta, texts) = upstreams.clients(client);
        Self {
            meta,
            texts,
            ..self.clone()
        }
    }

    /// Flushes the view counts to sqlsvc until dropped: the webserver runs it as a
    /// task for as long as it serves.
    pub fn flush_views(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let views = self.views.clone();
        let meta = self.meta.clone();
        async move { views.flush_forever(meta).await }
    }

    /// Flushes the view counts once (at shutdown).
    pub async fn flush_views_once(&self) {
        self.views.flush(&self.meta).await;
    }

    /// Counts one view of `id` (flushed with the others; no store call here).
    pub fn count_view(&self, id: &PasteId) {
        self.views.count(id);
    }

    /// Reads a paste for a reader who gets its text (a `GET`): like [`ReadApi::get`],
    /// and a burn-after-reading paste is claimed in sqlsvc first, so exactly one
    /// reader, on whatever webserver, gets its text; every other gets `NotFound`.
    pub async fn read(&self, id: &PasteId) -> Result<Arc<Paste>, ReadError> {
        let paste = self.get(id).await?;
        if !paste.meta.burn_after_reading {
            return Ok(paste);
        }
        let claimed = self.meta.claim(id).await.map_err(not_found_or)?;
        // Never cached (`may_cache`), but a reset or a race must not bring it back.
        self.forget(&claimed.paste_id);
        Ok(paste)
    }

    /// The view counts of a live paste.
    pub async fn stats(&self, id: &PasteId) -> Result<PasteStats, ReadError> {
        self.meta.stats(id).await.map_err(not_found_or)
    }

    /// The cache's figures now.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            entries: self.cache.len(),
            bytes: self.cache.bytes(),
            capacity_bytes: self.cache.capacity_bytes(),
            fetches: self.fetches.load(Ordering::Relaxed),
            prefetched: self.prefetched.load(Ordering::Relaxed),
            missed_new: self.behind.count(),
            joined_polls: self.behind.joined(),
            creation_polls: self.behind.polls(),
            deletion_log_position: self.health.position(),
            sqlsvc_down: self.health.is_down(),
        }
    }

    /// Follows sqlsvc's deletion log until dropped: the webserver runs it as a task
    /// for as long as it serves.
    pub fn follow_deletions(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        invalidation::follow(self.meta.clone(), self.cache.clone(), self.health.clone())
    }

    /// Caches the pastes other webservers create, before their first read here,
    /// until dropped (see `prefetch`): the webserver runs it as a task beside
    /// `follow_deletions`, whose deletion log keeps what it caches right.
    pub fn follow_creations(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        prefetch::follow(
            self.meta.clone(),
            self.texts.clone(),
            self.cache.clone(),
            self.health.clone(),
            self.prefetched.clone(),
            self.behind.clone(),
        )
    }

    /// The cache, for its figures and for tests.
    pub fn cache(&self) -> &PasteCache {
        &self.cache
    }

    /// Whether the deletion-log polls say sqlsvc is down.
    pub fn sqlsvc_down(&self) -> bool {
        self.health.is_down()
    }

    /// Drops a paste this webserver has just deleted (or burnt) from its cache, and
    /// keeps fetches under way from putting it back. The delete handler calls this
    /// before answering, so the webserver that deleted a paste never serves it again.
    pub fn forget(&self, id: &PasteId) {
        self.cache.forget([id], Instant::now());
    }

    /// What the cache alone can say about `id`, without waiting: the paste, or
    /// `NotFound` for a cached paste that has expired; None when it is not cached (then
    /// `get` asks the stores). The hot path of a read: no timer, no task, no lock
    /// beyond the cache shard's.
    pub fn cached(&self, id: &PasteId) -> Option<Result<Arc<Paste>, ReadError>> {
        match self.cache.lookup(id, now_unix()) {
            Lookup::Live(paste) => Some(Ok(paste)),
            Lookup::Expired => Some(Err(ReadError::NotFound)),
            Lookup::Miss => None,
        }
    }

    /// A ticket to take before writing a paste that `remember_created` will keep.
    pub fn ticket(&self) -> Ticket {
        self.cache.ticket(Instant::now())
    }

    /// Keeps a paste this webserver has just created (stored in both services, the
    /// create answered by sqlsvc), so that its first read here is a hit. `ticket` is
    /// taken before the write: the same fence as a fetch's, so a reset of the cache
    /// meanwhile refuses it. Returns whether it was kept.
    pub fn remember_created(&self, meta: Meta, text: Arc<str>, ticket: Ticket) -> bool {
        self.cache
            .insert(Arc::new(Paste { meta, text }), ticket, Instant::now())
    }

    /// One paste by id: from the cache when it holds it (and it has not expired),
    /// else fetched once for all concurrent readers and cached.
    pub async fn get(&self, id: &PasteId) -> Result<Arc<Paste>, ReadError> {
        if let Some(cached) = self.cached(id) {
            return cached;
        }
        if self.behind.worth_joining() {
            // Reads of pastes created elsewhere are missing: the poll brings this one
            // with the others, or the fetch below does (see `prefetch`).
            self.behind.join_next_poll().await;
            if let Some(cached) = self.cached(id) {
                self.behind.joined_and_found();
                return cached;
            }
        }
        let this = self.clone();
        let key = id.clone();
        self.flights
            .run(
                id,
                move || async move { this.fetch_and_cache(&key).await },
                || {
                    Err(ReadError::Upstream(CallError::Unavailable(
                        "the fetch was abandoned".into(),
                    )))
                },
            )
            .await
    }

    /// Metadata from sqlsvc, then the text from nosqlsvc; kept in the cache unless a
    /// delete (or a reset) came in meanwhile.
    async fn fetch_and_cache(&self, id: &PasteId) -> Fetched {
        if self.health.is_down() {
            return Err(sqlsvc_down());
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let ticket = self.cache.ticket(Instant::now());
        let meta: Meta = self.meta.get(id).await.map_err(|err| match err {
            CallError::NotFound => ReadError::NotFound,
            other => ReadError::Upstream(other),
        })?;
        let doc: TextDoc = match self.texts.get(&meta.paste_path).await {
            Ok(doc) => doc,
            Err(CallError::NotFound) => {
                // Text first, then metadata, so this only happens if a text was
                // lost or deleted under a live row.
                tracing::warn!(paste_id = %id, path = %meta.paste_path, "metadata points at a missing text");
                return Err(ReadError::NotFound);
            }
            Err(err) => return Err(ReadError::Upstream(err)),
        };
        let paste = Arc::new(Paste {
            meta,
            text: Arc::from(doc.text),
        });
        if self.cache.insert(paste.clone(), ticket, Instant::now()) {
            // A paste the creations poll brings (one the cache keeps), created so
            // lately that the poll should have brought it: the pastes created beside
            // it would miss too, so poll sooner.
            self.behind.missed(paste.meta.created_at, now_unix());
        }
        Ok(paste)
    }

    /// A page of pastes, newest first. The texts of the page come in one batch call.
    pub async fn list(&self, limit: u32, cursor: Option<&str>) -> Result<Page, ReadError> {
        if self.health.is_down() {
            return Err(sqlsvc_down());
        }
        let ticket = self.cache.ticket(Instant::now());
        let page: MetaPage = self
            .meta
            .list(limit, cursor)
            .await
            .map_err(|err| match err {
                CallError::Invalid { message, .. } => ReadError::BadCursor(message),
                other => ReadError::Upstream(other),
            })?;

        let now = now_unix();
        let mut texts: Vec<Option<Arc<str>>> = page
            .pastes
            .iter()
            .map(|m| match self.cache.lookup(&m.paste_id, now) {
                Lookup::Live(p) => Some(p.text.clone()),
                Lookup::Expired | Lookup::Miss => None,
            })
            .collect();
        let missing: Vec<PastePath> = page
            .pastes
            .iter()
            .zip(&texts)
            .filter(|(_, t)| t.is_none())
            .map(|(m, _)| m.paste_path.clone())
            .collect();
        if !missing.is_empty() {
            let fetched: Texts = self
                .texts
                .get_many(&missing)
                .await
                .map_err(ReadError::Upstream)?;
            let mut fetched = fetched.texts.into_iter();
            for (meta, slot) in page.pastes.iter().zip(texts.iter_mut()) {
                if slot.is_none() {
                    *slot = fetched.next().flatten().map(|text| {
                        let paste = Arc::new(Paste {
                            meta: meta.clone(),
                            text: Arc::from(text),
                        });
                        self.cache.insert(paste.clone(), ticket, Instant::now());
                        paste.text.clone()
                    });
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
        // Not ready while reads that need sqlsvc fail fast: a webserver answers
        // /readyz 200 only once its deletion-log polls reach sqlsvc again (within a
        // poll interval of sqlsvc's return), never while it would 503 those reads.
        if self.health.is_down() {
            return Err(sqlsvc_down());
        }
        self.meta.health().await.map_err(ReadError::Upstream)?;
        self.texts.health().await.map_err(ReadError::Upstream)
    }
}

/// The clock of expiry, in unix seconds, as sqlsvc counts it.
fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The answer while the deletion-log polls say sqlsvc is not answering.
fn sqlsvc_down() -> ReadError {
    ReadError::Upstream(CallError::Unavailable(
        "sqlsvc is not answering (deletion-log polls fail)".into(),
    ))
}

fn not_found_or(err: CallError) -> ReadError {
    match err {
        CallError::NotFound => ReadError::NotFound,
        other => ReadError::Upstream(other),
    }
}
