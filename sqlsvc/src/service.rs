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
use crate::routes::{ListQuery, Route, route};
use crate::stats::Stats;
use crate::writer::CreateJob;

/// Largest `POST /pastes` body.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// Longest `paste_path`.
const MAX_PATH_LEN: usize = 128;

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
            .reader()
            .call(move |conn| db::list_with_seqs(conn, query.before, query.limit, now))
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
        let found = self
            .db
            .reader()
            .call(move |conn| db::get(conn, &id, now))
            .await?;
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

    async fn health(&self) -> Result<Response<Body>, ApiError> {
        let ping = self.db.reader().call(|conn| db::ping(conn));
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

/// Checks the fields of a create against the contract.
fn validate(meta: &CreateMeta, now: i64) -> Result<(), ApiError> {
    let path = &meta.paste_path;
    let path_ok = (1..=MAX_PATH_LEN).contains(&path.len())
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !path_ok {
        return Err(ApiError::BadRequest(format!(
            "paste_path must be 1..={MAX_PATH_LEN} characters of [0-9A-Za-z_-]"
        )));
    }
    if meta.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::BadRequest(
            "expires_at must be in the future".into(),
        ));
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
            paste_path: path.into(),
            expires_at,
            size,
        }
    }

    #[test]
    fn validation() {
        assert!(validate(&meta("ok_path-1", None, Some(1)), 100).is_ok());
        assert!(validate(&meta(&"a".repeat(128), Some(101), None), 100).is_ok());
        assert!(validate(&meta("", None, None), 100).is_err());
        assert!(validate(&meta(&"a".repeat(129), None, None), 100).is_err());
        assert!(validate(&meta("a/b", None, None), 100).is_err());
        assert!(validate(&meta("a.b", None, None), 100).is_err());
        assert!(validate(&meta("a", Some(100), None), 100).is_err());
        assert!(validate(&meta("a", None, Some(u64::MAX)), 100).is_err());
    }
}
