//! The request handler: the shared state (database handles, the create queue, the
//! counters) and one function per route.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use httpkit::{Body, BodyError, Handler, json_response, read_body};
use hyper::body::Incoming;
use tokio::sync::{mpsc, oneshot};

use crate::api::{
    CreateMeta, DeleteRequest, MAX_VIEW_ENTRIES, Meta, MetaPage, PasteId, ViewCounts, random_token,
    valid_month,
};
use crate::clock::now_unix;
use crate::cursor;
use crate::db::{self, Db, Deleter};
use crate::error::ApiError;
use crate::routes::{DeletionsQuery, ListQuery, Route, route};
use crate::stats::Stats;
use crate::sweeper::SweepCounters;
use crate::writer::{CreateJob, NewRow};

/// Largest `POST /pastes` body.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// How long the health check waits for its query.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything a request needs.
pub(crate) struct Service {
    pub(crate) db: Arc<Db>,
    pub(crate) jobs: mpsc::Sender<CreateJob>,
    pub(crate) stats: Arc<Stats>,
    /// What the sweeper removed (zero when it does not run).
    pub(crate) sweep: Arc<SweepCounters>,
    /// Wakes the sweeper, so the text of a deleted or burnt paste goes at once.
    pub(crate) wake_sweeper: Arc<tokio::sync::Notify>,
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
            Route::DeletePaste(id) => self.delete(id, req).await,
            Route::ClaimPaste(id) => self.claim(id).await,
            Route::PasteStats(id) => self.paste_stats(id).await,
            Route::AddViews => self.add_views(req).await,
            Route::Metrics => self.metrics().await,
            Route::Deletions(query) => self.deletions(query).await,
            Route::Creations(query) => self.creations(query).await,
            Route::Health => self.health().await,
            Route::Stats => Ok(json_response(StatusCode::OK, &self.stats.snapshot())),
        }
    }

    async fn create(&self, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let bytes = body(req).await?;
        let meta: CreateMeta = serde_json::from_slice(&bytes)
            .map_err(|err| ApiError::BadRequest(format!("invalid JSON: {err}")))?;
        validate(&meta, now_unix())?;
        let token = random_token().map_err(|err| ApiError::Internal(err.to_string()))?;
        let row = NewRow {
            meta,
            delete_hash: db::token_hash(&token),
        };
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(CreateJob { row, token, reply })
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

    /// `DELETE /pastes/{id}`, with `{"delete_token": ...}` from a paste's owner or no
    /// body from an operator. A wrong token answers exactly like an unknown id.
    async fn delete(
        &self,
        id: PasteId,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, ApiError> {
        let bytes = body(req).await?;
        let who = if bytes.iter().all(u8::is_ascii_whitespace) {
            Deleter::Operator
        } else {
            // No detail from serde: it may quote the token.
            let request: DeleteRequest = serde_json::from_slice(&bytes).map_err(|_| {
                ApiError::BadRequest("the body must be {\"delete_token\": string}".into())
            })?;
            Deleter::Token(request.delete_token)
        };
        let now = now_unix();
        // Runs on the writer's thread, between group-commit batches.
        let deleted = self
            .db
            .writer
            .call(move |conn| db::delete(conn, &id, now, &who))
            .await?;
        if deleted.is_some() {
            self.wake_sweeper.notify_one();
        }
        found_or_404(deleted)
    }

    /// `POST /pastes/{id}/claim`: 200 with the row for the one caller that burnt it,
    /// 404 for everyone else.
    async fn claim(&self, id: PasteId) -> Result<Response<Body>, ApiError> {
        let now = now_unix();
        let claimed = self
            .db
            .writer
            .call(move |conn| db::claim(conn, &id, now))
            .await?;
        if claimed.is_some() {
            self.wake_sweeper.notify_one();
        }
        found_or_404(claimed)
    }

    async fn paste_stats(&self, id: PasteId) -> Result<Response<Body>, ApiError> {
        let now = now_unix();
        match self.db.read(move |conn| db::stats(conn, &id, now)).await? {
            Some(stats) => Ok(json_response(StatusCode::OK, &stats)),
            None => Err(ApiError::NotFound("no such paste")),
        }
    }

    async fn add_views(&self, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let bytes = body(req).await?;
        let counts: ViewCounts = serde_json::from_slice(&bytes)
            .map_err(|err| ApiError::BadRequest(format!("invalid JSON: {err}")))?;
        if counts.views.len() > MAX_VIEW_ENTRIES {
            return Err(ApiError::BadRequest(format!(
                "at most {MAX_VIEW_ENTRIES} entries per batch"
            )));
        }
        if let Some(bad) = counts.views.iter().position(|v| !valid_month(&v.month)) {
            return Err(ApiError::BadRequest(format!(
                "month at index {bad} is not YYYY-MM"
            )));
        }
        let applied = self
            .db
            .writer
            .call(move |conn| db::add_views(conn, &counts.views))
            .await?;
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "applied": applied }),
        ))
    }

    /// `GET /metrics`: how many pastes the store holds, and what the sweeper removed,
    /// in the Prometheus text format.
    async fn metrics(&self) -> Result<Response<Body>, ApiError> {
        let (pastes, trash) = self.db.read(|conn| db::counts(conn)).await?;
        let c = &self.sweep;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        metric(
            "pastebin_pastes",
            "gauge",
            "Pastes in the metadata store now (expired ones not yet swept included).",
            pastes,
        );
        metric(
            "pastebin_text_trash",
            "gauge",
            "Texts of removed pastes waiting for the sweeper to delete them from nosqlsvc.",
            trash,
        );
        metric(
            "pastebin_sweeper_runs_total",
            "counter",
            "Sweeps run.",
            load(&c.runs),
        );
        metric(
            "pastebin_sweeper_expired_pastes_total",
            "counter",
            "Expired pastes the sweeper removed.",
            load(&c.expired),
        );
        metric(
            "pastebin_sweeper_texts_deleted_total",
            "counter",
            "Texts of removed (deleted, burnt, expired) pastes the sweeper deleted from nosqlsvc.",
            load(&c.trash_texts),
        );
        metric(
            "pastebin_sweeper_orphaned_texts_total",
            "counter",
            "Texts orphaned by a failed create that the sweeper deleted from nosqlsvc.",
            load(&c.orphan_texts),
        );
        metric(
            "pastebin_sweeper_errors_total",
            "counter",
            "Sweeps that stopped early on an error (retried by the next).",
            load(&c.errors),
        );
        let mut resp = Response::new(httpkit::full(out));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        Ok(resp)
    }

    async fn deletions(&self, query: DeletionsQuery) -> Result<Response<Body>, ApiError> {
        let page = self
            .db
            .read(move |conn| db::deletions(conn, query.since, query.limit))
            .await?;
        Ok(json_response(StatusCode::OK, &page))
    }

    async fn creations(&self, query: DeletionsQuery) -> Result<Response<Body>, ApiError> {
        let now = now_unix();
        let page = self
            .db
            .read(move |conn| db::creations(conn, query.since, query.limit, now))
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

/// Reads a request body within `BODY_LIMIT`.
async fn body(req: Request<Incoming>) -> Result<bytes::Bytes, ApiError> {
    read_body(req, BODY_LIMIT).await.map_err(|err| match err {
        BodyError::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
        BodyError::Read(err) => ApiError::BadRequest(format!("cannot read body: {err}")),
        BodyError::TimedOut { .. } => ApiError::RequestTimeout,
    })
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
            burn_after_reading: false,
            unlisted: false,
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
