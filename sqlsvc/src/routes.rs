//! Routing: `(method, path, query)` parsed once into a `Route`, so ids, limits and
//! cursors are validated in one place before any handler runs.

use http::{Method, Uri};

use crate::api::PasteId;
use crate::cursor;
use crate::error::ApiError;

/// Page size when `limit` is absent.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
/// Largest page size accepted.
pub(crate) const MAX_LIMIT: u32 = 500;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    CreatePaste,
    ListPastes(ListQuery),
    GetPaste(PasteId),
    DeletePaste(PasteId),
    /// `POST /pastes/{id}/claim`: the atomic burn of a burn-after-reading paste.
    ClaimPaste(PasteId),
    /// `GET /pastes/{id}/stats`: its view counts.
    PasteStats(PasteId),
    /// `POST /views`: a webserver's batch of view counts.
    AddViews,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `GET /deletions?since=N&limit=M`: the deletion log after position N.
    Deletions(DeletionsQuery),
    /// `GET /creations?since=N&limit=M`: the cacheable pastes created after
    /// insertion number N (same query shape as the deletion log).
    Creations(DeletionsQuery),
    Health,
    Stats,
}

/// The query of `GET /pastes`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pub(crate) limit: u32,
    /// Rows with a `seq` below this one (from the cursor); None = from the newest.
    pub(crate) before: Option<i64>,
}

/// Deletions per page when `limit` is absent, and the most accepted.
pub(crate) const DEFAULT_DELETIONS_LIMIT: u32 = 1000;
pub(crate) const MAX_DELETIONS_LIMIT: u32 = 10_000;

/// The query of `GET /deletions` and `GET /creations`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DeletionsQuery {
    /// The caller's log position; None = it has none yet.
    pub(crate) since: Option<u64>,
    pub(crate) limit: u32,
}

/// Parses a request line into a `Route`; unknown paths are 404, known paths with
/// another method 405.
pub(crate) fn route(method: &Method, uri: &Uri) -> Result<Route, ApiError> {
    let path = uri.path();
    match path {
        "/pastes" | "/pastes/" => match *method {
            Method::POST => Ok(Route::CreatePaste),
            Method::GET => Ok(Route::ListPastes(list_query(uri.query())?)),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
        },
        "/deletions" => match *method {
            Method::GET => Ok(Route::Deletions(deletions_query(uri.query())?)),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        },
        "/creations" => match *method {
            Method::GET => Ok(Route::Creations(deletions_query(uri.query())?)),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        },
        "/healthz" => match *method {
            Method::GET => Ok(Route::Health),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        },
        "/stats" => match *method {
            Method::GET => Ok(Route::Stats),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        },
        "/metrics" => match *method {
            Method::GET => Ok(Route::Metrics),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        },
        "/views" => match *method {
            Method::POST => Ok(Route::AddViews),
            _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        },
        _ => {
            if let Some((raw, action)) = path
                .strip_prefix("/pastes/")
                .and_then(|rest| rest.split_once('/'))
                .filter(|(_, action)| matches!(*action, "claim" | "stats"))
            {
                let (want, allow) = if action == "claim" {
                    (Method::POST, "POST")
                } else {
                    (Method::GET, "GET")
                };
                if *method != want {
                    return Err(ApiError::MethodNotAllowed { allow });
                }
                let id = raw
                    .parse::<PasteId>()
                    .map_err(|err| ApiError::BadRequest(err.to_string()))?;
                return Ok(if action == "claim" {
                    Route::ClaimPaste(id)
                } else {
                    Route::PasteStats(id)
                });
            }
            let Some(raw) = path.strip_prefix("/pastes/").filter(|r| !r.contains('/')) else {
                return Err(ApiError::NotFound("no such route"));
            };
            let wants_get = match *method {
                Method::GET => true,
                Method::DELETE => false,
                _ => {
                    return Err(ApiError::MethodNotAllowed {
                        allow: "GET, DELETE",
                    });
                }
            };
            let id = raw
                .parse::<PasteId>()
                .map_err(|err| ApiError::BadRequest(err.to_string()))?;
            Ok(if wants_get {
                Route::GetPaste(id)
            } else {
                Route::DeletePaste(id)
            })
        }
    }
}

/// Parses `limit` and `cursor`; other parameters are ignored, the last of a repeated
/// one wins. Values are not percent-decoded: valid ones never need it.
fn list_query(query: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut limit = DEFAULT_LIMIT;
    let mut before = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "limit" => {
                limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!("limit must be an integer in 1..={MAX_LIMIT}"))
                    })?;
            }
            "cursor" => {
                before = Some(
                    cursor::decode(value)
                        .ok_or_else(|| ApiError::BadRequest("malformed cursor".into()))?,
                );
            }
            _ => {}
        }
    }
    Ok(ListQuery { limit, before })
}

/// Parses `since` and `limit` of `GET /deletions` (and `/creations`); other
/// parameters are ignored.
fn deletions_query(query: Option<&str>) -> Result<DeletionsQuery, ApiError> {
    let mut out = DeletionsQuery {
        since: None,
        limit: DEFAULT_DELETIONS_LIMIT,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "since" => {
                out.since = Some(value.parse::<u64>().map_err(|_| {
                    ApiError::BadRequest("since must be a non-negative integer".into())
                })?);
            }
            "limit" => {
                out.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_DELETIONS_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "limit must be an integer in 1..={MAX_DELETIONS_LIMIT}"
                        ))
                    })?;
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: Method, uri: &str) -> Result<Route, ApiError> {
        route(&method, &uri.parse().unwrap())
    }

    #[test]
    fn parses_the_routes() {
        assert_eq!(r(Method::POST, "/pastes").unwrap(), Route::CreatePaste);
        assert_eq!(
            r(
                Method::GET,
                &format!("/pastes?limit=7&cursor={}&x=y", cursor::encode(0x1f))
            )
            .unwrap(),
            Route::ListPastes(ListQuery {
                limit: 7,
                before: Some(31)
            })
        );
        assert_eq!(
            r(Method::GET, "/pastes").unwrap(),
            Route::ListPastes(ListQuery {
                limit: DEFAULT_LIMIT,
                before: None
            })
        );
        let id: PasteId = "abcDEF0123".parse().unwrap();
        assert_eq!(
            r(Method::GET, "/pastes/abcDEF0123").unwrap(),
            Route::GetPaste(id.clone())
        );
        assert_eq!(
            r(Method::DELETE, "/pastes/abcDEF0123").unwrap(),
            Route::DeletePaste(id)
        );
        assert_eq!(r(Method::GET, "/healthz").unwrap(), Route::Health);
        assert_eq!(
            r(Method::POST, "/pastes/abcDEF0123/claim").unwrap(),
            Route::ClaimPaste("abcDEF0123".parse().unwrap())
        );
        assert_eq!(
            r(Method::GET, "/pastes/abcDEF0123/stats").unwrap(),
            Route::PasteStats("abcDEF0123".parse().unwrap())
        );
        assert_eq!(r(Method::POST, "/views").unwrap(), Route::AddViews);
        assert_eq!(r(Method::GET, "/metrics").unwrap(), Route::Metrics);
        assert_eq!(
            r(Method::GET, "/deletions?since=7&limit=3").unwrap(),
            Route::Deletions(DeletionsQuery {
                since: Some(7),
                limit: 3
            })
        );
        assert_eq!(
            r(Method::GET, "/deletions").unwrap(),
            Route::Deletions(DeletionsQuery {
                since: None,
                limit: DEFAULT_DELETIONS_LIMIT
            })
        );
    }

    #[test]
    fn rejects_bad_requests() {
        let status = |m, u| r(m, u).unwrap_err().status().as_u16();
        assert_eq!(status(Method::GET, "/nope"), 404);
        assert_eq!(status(Method::GET, "/pastes/abcDEF0123/x"), 404);
        assert_eq!(status(Method::PUT, "/pastes"), 405);
        assert_eq!(status(Method::POST, "/pastes/abcDEF0123"), 405);
        assert_eq!(status(Method::GET, "/pastes/short"), 400);
        assert_eq!(status(Method::GET, "/pastes?limit=0"), 400);
        assert_eq!(status(Method::GET, "/pastes?limit=501"), 400);
        assert_eq!(status(Method::GET, "/pastes?limit=x"), 400);
        assert_eq!(status(Method::GET, "/pastes?cursor=zz"), 400);
        assert_eq!(status(Method::GET, "/pastes?cursor="), 400);
        assert_eq!(status(Method::GET, "/deletions?since=-1"), 400);
        assert_eq!(status(Method::GET, "/deletions?limit=0"), 400);
        assert_eq!(status(Method::POST, "/deletions"), 405);
        assert_eq!(
            r(Method::GET, "/creations?since=7&limit=3").unwrap(),
            Route::Creations(DeletionsQuery {
                since: Some(7),
                limit: 3
            })
        );
        assert_eq!(status(Method::GET, "/creations?since=x"), 400);
        assert_eq!(status(Method::DELETE, "/creations"), 405);
        assert_eq!(status(Method::GET, "/pastes/abcDEF0123/claim"), 405);
        assert_eq!(status(Method::POST, "/pastes/abcDEF0123/stats"), 405);
        assert_eq!(status(Method::POST, "/pastes/short/claim"), 400);
        assert_eq!(status(Method::GET, "/views"), 405);
    }

    proptest::proptest! {
        #[test]
        fn any_request_line_is_a_route_or_a_4xx_json_error(
            path in "(/[a-zA-Z0-9%._~-]{0,12}){0,3}/?",
            query in proptest::option::of("[a-z=&0-9%_-]{0,40}"),
            method in proptest::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ) {
            let uri = match &query {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            let Ok(uri) = uri.parse::<http::Uri>() else { return Ok(()) };
            if let Err(err) = route(&method.parse().unwrap(), &uri) {
                let resp = err.into_response();
                proptest::prop_assert!(resp.status().is_client_error(), "{}", resp.status());
                proptest::prop_assert_eq!(&resp.headers()[http::header::CONTENT_TYPE], "application/json");
            }
        }
    }
}
