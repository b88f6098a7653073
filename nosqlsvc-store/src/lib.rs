//! The storage trait every backend implements (embedded redb, MongoDB), and its errors.

use std::future::Future;

/// Why a storage call failed, classified by what the caller can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The backend cannot be reached or is shutting down; retrying later may work (503).
    Unavailable(String),
    /// The backend failed in a way a retry will not fix (500).
    Internal(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable(msg) => write!(f, "store unavailable: {msg}"),
            StoreError::Internal(msg) => write!(f, "store failure: {msg}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Where paste texts live: `path -> text`, texts never change once written.
///
/// Every method answers only once the backend has made its effect durable.
pub trait TextStore: Send + Sync + 'static {
    /// Stores `text` under a new unique path and returns that path.
    fn insert(&self, text: String) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// The text stored under `path`, if any.
    fn get(&self, path: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// The texts of `paths` in one backend call, in request order, `None` where missing.
    fn get_many(
        &self,
        paths: &[String],
    ) -> impl Future<Output = Result<Vec<Option<String>>, StoreError>> + Send;

    /// Removes the text under `path`; `true` if there was one.
    fn delete(&self, path: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes the texts under `paths` (one backend call or transaction); returns how
    /// many there were.
    fn delete_many(&self, paths: &[String])
    -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Up to `limit` texts inserted before `before` (unix seconds) and not settled
    /// yet, oldest first: the candidates for the orphan sweep. Every insert starts
    /// unsettled; texts stored before this existed count as settled.
    fn unsettled(
        &self,
        before: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Marks `paths` as settled (a paste points at them); returns how many were
    /// unsettled.
    fn settle(&self, paths: &[String]) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// How many texts the store holds now.
    fn count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// `Ok` when the backend can serve requests now.
    fn ready(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Finishes queued work and releases the backend (file locks, connections).
    fn close(self) -> impl Future<Output = ()> + Send;
}
