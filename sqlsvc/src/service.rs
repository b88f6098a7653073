//! The request handler: the shared state (database handles, the create queue, the
//! counters) and one function per route.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use httpkit::{Body, BodyError, Handler, json_response, read_body};
use hyper::body::Incoming;
use tokio::sync::{mpsc, oneshot};

use crate::api::{CreateMeta, Meta, MetaPage, PasteId};
use crate::clock::now_unix;
use crate::cursor;
use crate::db::{self, Db};
use crate::error::ApiError;
use crate::routes::{DeletionsQuery, ListQuery, Route, route};
use crate::stats::Stats;
use crate::writer::CreateJob;

/// Largest `POST /pastes` body.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// How long the health check waits for its query.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything a request needs.
pub(crate) struct Service {
    pub(crate) db: Arc<Db>,
    pub(crate) jobs: mpsc::Sender<CreateJob>,
    pub(crate) stats: Arc<Stats>,
}

impl Handler for Service {
    async fn handle(&self, req: Request<Incoming>, _peer: SocketAddr) -> Response<Body> {
        match self.dispatch(req).await {
            Ok(resp) => resp,
            Err(err) => err.into_response(),
        }
    }
}

impl Service {
    async fn dispatch(&self, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        match route(req.method(), req.uri())? {
            Route::CreatePaste => self.create(req).await,
            Route::ListPastes(query) => self.list(query).await,
            Route::GetPaste(id) => self.get(id).await,
            Route::DeletePaste(id) => self.delete(id).await,
            Route::Deletions(query) => self.deletions(query).await,
            Route::Health => self.health().await,
            Route::Stats => Ok(json_response(StatusCode::OK, &self.stats.snapshot())),
        }
    }

    async fn create(&self, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let bytes = read_body(req, BODY_LIMIT).await.map_err(|err| match err {
            BodyError::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
            BodyError::Read(err) => ApiError::BadRequest(format!("cannot read body: {err}")),
            BodyError::TimedOut { .. } => ApiError::RequestTimeout,
        })?;
        let meta: CreateMeta = serde_json::from_slice(&bytes)
            .map_err(|err| ApiError::BadRequest(format!("invalid JSON: {err}")))?;
        validate(&meta, now_unix())?;
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(CreateJob { meta, reply })
            .await
            .map_err(|_| ApiError::Internal("the writer has stopped".into()))?;
        let created = answer
            .await
            .map_err(|_| ApiError::Internal("the writer dropped a create".into()))??;
        Ok(json_response(StatusCode::CREATED, &created))
    }

    async fn list(&self, query: ListQuery) -> Result<Response<Body>, ApiError> {
        let now = now_unix();
        let (rows, next) = self
            .db
            .read(move |conn| db::list_with_seqs(conn, query.before, query.limit, now))
            .await?;
        let (pastes, cursors) = rows
            .into_iter()
            .map(|(meta, seq)| (meta, cursor::encode(seq)))
            .unzip();
        let page = MetaPage {
            pastes,
            cursors,
            next_cursor: next.map(cursor::encode),
        };
        Ok(json_response(StatusCode::OK, &page))
    }

    async fn get(&self, id: PasteId) -> Result<Response<Body>, ApiError> {
        let now = now_unix();
        let found = self.db.read(move |conn| db::get(conn, &id, now)).await?;
        found_or_404(found)
    }

    async fn delete(&self, id: PasteId) -> Result<Response<Body>, ApiError> {
        let now = now_unix();
        // Runs on the writer's thread, between group-commit batches.
        let deleted = self
            .db
            .writer
            .call(move |conn| db::delete(conn, &id, now))
            .await?;
        found_or_404(deleted)
    }

    async fn deletions(&self, query: DeletionsQuery) -> Result<Response<Body>, ApiError> {
        let page = self
            .db
            .read(move |conn| db::deletions(conn, query.since, query.limit))
            .await?;
        Ok(json_response(StatusCode::OK, &page))
    }

    async fn health(&self) -> Result<Response<Body>, ApiError> {
        let ping = self.db.read(|conn| db::ping(conn));
        match tokio::time::timeout(HEALTH_TIMEOUT, ping).await {
            Ok(Ok(())) => Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"status": "ok"}),
            )),
            Ok(Err(err)) => Err(ApiError::Unavailable(err.to_string())),
            Err(_) => Err(ApiError::Unavailable("health query timed out".into())),
        }
    }
}

fn found_or_404(meta: Option<Meta>) -> Result<Response<Body>, ApiError> {
    match meta {
        Some(meta) => Ok(json_response(StatusCode::OK, &meta)),
        None => Err(ApiError::NotFound("no such paste")),
    }
}

/// How far in the past a create's `expires_at` may be (the caller's delay and clock
/// skew) before it is refused.
const MAX_EXPIRY_LAG_SECS: i64 = 60;

/// Checks the fields of a create against the contract.
fn validate(meta: &CreateMeta, now: i64) -> Result<(), ApiError> {
    // `paste_path` was checked by its type (`contract::ids::PastePath`) as the body
    // was decoded.
    // The caller computed `expires_at` from its own clock a moment ago; on a busy
    // machine (or across hosts) that moment may already be past here, which made a
    // valid `expires_in=1` create fail. Such a row is stored and is simply expired;
    // only a time further back than any plausible delay or skew is a caller's bug.
    if meta
        .expires_at
        .is_some_and(|t| t < now - MAX_EXPIRY_LAG_SECS)
    {
        return Err(ApiError::BadRequest(format!(
            "expires_at is more than {MAX_EXPIRY_LAG_SECS} s in the past"
        )));
    }
    if meta.size.is_some_and(|s| i64::try_from(s).is_err()) {
        return Err(ApiError::BadRequest("size is too large".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(path: &str, expires_at: Option<i64>, size: Option<u64>) -> CreateMeta {
        CreateMeta {
            paste_path: path.parse().unwrap(),
            expires_at,
            size,
        }
    }

    #[test]
    fn validation() {
        assert!(validate(&meta("ok_path-1", None, Some(1)), 100).is_ok());
        assert!(validate(&meta(&"a".repeat(64), Some(101), None), 100).is_ok());
        // Already past by a moment (a slow create): stored, and simply expired.
        assert!(validate(&meta("a", Some(100), None), 100).is_ok());
        assert!(validate(&meta("a", Some(40), None), 100).is_ok());
        assert!(validate(&meta("a", Some(39), None), 100).is_err());
        assert!(validate(&meta("a", None, Some(u64::MAX)), 100).is_err());
    }
}
