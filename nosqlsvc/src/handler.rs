//! The HTTP handler: routes each request to the store and turns the outcome into JSON.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use httpkit::{Body, BodyError, json_response};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::api::{
    Affected, Deleted, GetMany, InsertText, Inserted, MAX_BATCH_PATHS, PastePath, Paths, TextDoc,
    Texts,
};
use crate::error::ApiError;
use crate::routes::Route;
use crate::store::{StoreError, TextStore};

/// The server's shared state: the store and the body limit.
pub(crate) struct App<S> {
    store: S,
    max_body_bytes: usize,
    /// Texts deleted by batch deletes (the sweeper's), for `/metrics`.
    swept: AtomicU64,
    /// Texts settled by the sweeper, for `/metrics`.
    settled: AtomicU64,
}

impl<S: TextStore> App<S> {
    pub(crate) fn new(store: S, max_body_bytes: usize) -> Self {
        Self {
            store,
            max_body_bytes,
            swept: AtomicU64::new(0),
            settled: AtomicU64::new(0),
        }
    }

    pub(crate) fn into_store(self) -> S {
        self.store
    }

    async fn route(&self, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        match Route::parse_with_query(req.method(), req.uri().path(), req.uri().query())? {
            Route::DeleteMany => {
                let paths = self.read_paths(req).await?;
                let affected = self.store.delete_many(&paths).await?;
                self.swept.fetch_add(affected, Ordering::Relaxed);
                Ok(json_response(StatusCode::OK, &Affected { affected }))
            }
            Route::Settle => {
                let paths = self.read_paths(req).await?;
                let affected = self.store.settle(&paths).await?;
                self.settled.fetch_add(affected, Ordering::Relaxed);
                Ok(json_response(StatusCode::OK, &Affected { affected }))
            }
            Route::Unsettled { before, limit } => {
                let paths = self.store.unsettled(before, limit).await?;
                Ok(json_response(StatusCode::OK, &Paths { paths }))
            }
            Route::Metrics => {
                let texts = self.store.count().await?;
                let mut out = String::new();
                for (name, kind, help, value) in [
                    (
                        "pastebin_texts",
                        "gauge",
                        "Texts the store holds now.",
                        texts,
                    ),
                    (
                        "pastebin_sweeper_texts_deleted_total",
                        "counter",
                        "Texts deleted by the sweeper's batch deletes (removed and orphaned pastes).",
                        self.swept.load(Ordering::Relaxed),
                    ),
                    (
                        "pastebin_sweeper_texts_settled_total",
                        "counter",
                        "Texts the sweeper found a paste for (no longer orphan candidates).",
                        self.settled.load(Ordering::Relaxed),
                    ),
                ] {
                    out.push_str(&format!(
                        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
                    ));
                }
                let mut resp = Response::new(httpkit::full(out));
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                Ok(resp)
            }
            Route::Insert => {
                let body: InsertText = self.read_json(req).await?;
                if body.text.is_empty() {
                    return Err(ApiError::BadRequest("text must not be empty".into()));
                }
                let path = self.store.insert(body.text).await?;
                let paste_path = PastePath::try_from(path).map_err(|err| {
                    StoreError::Internal(format!("the store made a bad path: {err}"))
                })?;
                Ok(json_response(StatusCode::CREATED, &Inserted { paste_path }))
            }
            Route::GetMany => {
                let body: GetMany = self.read_json(req).await?;
                if body.paths.len() > MAX_BATCH_PATHS {
                    return Err(ApiError::BadRequest(format!(
                        "at most {MAX_BATCH_PATHS} paths per batch"
                    )));
                }
                if let Some(bad) = body.paths.iter().position(|p| !PastePath::is_valid(p)) {
                    return Err(ApiError::BadRequest(format!(
                        "malformed path at index {bad}"
                    )));
                }
                let texts = self.store.get_many(&body.paths).await?;
                Ok(json_response(StatusCode::OK, &Texts { texts }))
            }
            Route::Get(paste_path) => match self.store.get(paste_path.as_str()).await? {
                Some(text) => Ok(json_response(StatusCode::OK, &TextDoc { paste_path, text })),
                None => Err(ApiError::TextNotFound),
            },
            Route::Delete(path) => match self.store.delete(path.as_str()).await? {
                true => Ok(json_response(StatusCode::OK, &Deleted { deleted: true })),
                false => Err(ApiError::TextNotFound),
            },
            Route::Health => {
                // Not ready is not ready, whatever the cause: always 503 here.
                self.store.ready().await.map_err(|err| match err {
                    StoreError::Unavailable(msg) | StoreError::Internal(msg) => {
                        StoreError::Unavailable(msg)
                    }
                })?;
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::json!({ "status": "ok" }),
                ))
            }
        }
    }

    /// A `{"paths": [...]}` body of at most `MAX_BATCH_PATHS` valid paths.
    async fn read_paths(&self, req: Request<Incoming>) -> Result<Vec<String>, ApiError> {
        let body: Paths = self.read_json(req).await?;
        if body.paths.len() > MAX_BATCH_PATHS {
            return Err(ApiError::BadRequest(format!(
                "at most {MAX_BATCH_PATHS} paths per batch"
            )));
        }
        if let Some(bad) = body.paths.iter().position(|p| !PastePath::is_valid(p)) {
            return Err(ApiError::BadRequest(format!(
                "malformed path at index {bad}"
            )));
        }
        Ok(body.paths)
    }

    /// Reads the body within the limit and decodes it as JSON.
    async fn read_json<T: DeserializeOwned>(&self, req: Request<Incoming>) -> Result<T, ApiError> {
        let bytes: Bytes = httpkit::read_body(req, self.max_body_bytes)
            .await
            .map_err(|err| match err {
                BodyError::TooLarge { limit } => ApiError::TooLarge { limit },
                BodyError::Read(err) => {
                    ApiError::BadRequest(format!("could not read the body: {err}"))
                }
                BodyError::TimedOut { .. } => ApiError::RequestTimeout,
            })?;
        parse_json(&bytes)
    }
}

/// Decodes a JSON object body; anything else is 400.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would also accept a struct as a JSON array; the protocol says object.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::BadRequest(format!("invalid JSON body: {err}")))
}

impl<S: TextStore> httpkit::Handler for App<S> {
    async fn handle(&self, req: Request<Incoming>, _peer: SocketAddr) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let resp = self
            .route(req)
            .await
            .unwrap_or_else(ApiError::into_response);
        tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: DeserializeOwned>(
        bytes: &[u8],
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        if let Err(err) = parse_json::<T>(bytes) {
            let resp = err.into_response();
            proptest::prop_assert!(resp.status().is_client_error(), "{}", resp.status());
            proptest::prop_assert_eq!(
                &resp.headers()[http::header::CONTENT_TYPE],
                "application/json"
            );
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn any_body_is_a_request_or_a_4xx_json_error(
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..128),
            text in ".{0,40}",
            paths in proptest::collection::vec(".{0,10}", 0..5),
        ) {
            let shaped = [
                serde_json::json!({ "text": text }).to_string(),
                serde_json::json!({ "paths": paths }).to_string(),
                serde_json::json!({ "paths": text }).to_string(),
                format!("[{}]", serde_json::json!(text)),
            ];
            for bytes in shaped.iter().map(String::as_bytes).chain([&junk[..]]) {
                check::<InsertText>(bytes)?;
                check::<GetMany>(bytes)?;
            }
        }
    }
}
