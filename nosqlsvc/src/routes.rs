//! Parses `(method, path)` once into a `Route`; malformed text paths are rejected here.

use http::Method;

use crate::api::{MAX_UNSETTLED_LIMIT, PastePath};
use crate::error::ApiError;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Insert,
    GetMany,
    Get(PastePath),
    Delete(PastePath),
    /// `POST /texts/delete`: many texts at once (the sweeper).
    DeleteMany,
    /// `GET /texts/unsettled?before=T&limit=N`: candidates for the orphan sweep.
    Unsettled {
        before: i64,
        limit: u32,
    },
    /// `POST /texts/settle`: texts a paste points at.
    Settle,
    Health,
    Metrics,
}

const ALLOW_POST: &str = "POST";
const ALLOW_GET_DELETE: &str = "GET, DELETE";
const ALLOW_GET: &str = "GET";

impl Route {
    #[cfg(test)]
    pub(crate) fn parse(method: &Method, path: &str) -> Result<Route, ApiError> {
        Self::parse_with_query(method, path, None)
    }

    pub(crate) fn parse_with_query(
        method: &Method,
        path: &str,
        query: Option<&str>,
    ) -> Result<Route, ApiError> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            // Reserved words, like "batch": generated paths are 16 or 24 characters.
            ["texts", "delete"] => match *method {
                Method::POST => Ok(Route::DeleteMany),
                _ => Err(ApiError::MethodNotAllowed(ALLOW_POST)),
            },
            ["texts", "settle"] => match *method {
                Method::POST => Ok(Route::Settle),
                _ => Err(ApiError::MethodNotAllowed(ALLOW_POST)),
            },
            ["texts", "unsettled"] => match *method {
                Method::GET => unsettled_query(query),
                _ => Err(ApiError::MethodNotAllowed(ALLOW_GET)),
            },
            ["metrics"] => match *method {
                Method::GET => Ok(Route::Metrics),
                _ => Err(ApiError::MethodNotAllowed(ALLOW_GET)),
            },
            ["texts"] | ["texts", ""] => match *method {
                Method::POST => Ok(Route::Insert),
                _ => Err(ApiError::MethodNotAllowed(ALLOW_POST)),
            },
            // "batch" is reserved: generated paths are 16 or 24 characters long.
            ["texts", "batch"] => match *method {
                Method::POST => Ok(Route::GetMany),
                _ => Err(ApiError::MethodNotAllowed(ALLOW_POST)),
            },
            ["texts", p] => {
                let route = match *method {
                    Method::GET => Route::Get,
                    Method::DELETE => Route::Delete,
                    _ => return Err(ApiError::MethodNotAllowed(ALLOW_GET_DELETE)),
                };
                match p.parse::<PastePath>() {
                    Ok(p) => Ok(route(p)),
                    Err(_) => Err(ApiError::BadRequest("malformed text path".into())),
                }
            }
            ["healthz"] => match *method {
                Method::GET => Ok(Route::Health),
                _ => Err(ApiError::MethodNotAllowed(ALLOW_GET)),
            },
            _ => Err(ApiError::UnknownRoute),
        }
    }
}

/// `before` (unix seconds, required) and `limit` (default and most: 1000).
fn unsettled_query(query: Option<&str>) -> Result<Route, ApiError> {
    let mut before = None;
    let mut limit = MAX_UNSETTLED_LIMIT;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "before" => {
                before = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| ApiError::BadRequest("before must be unix seconds".into()))?,
                );
            }
            "limit" => {
                limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_UNSETTLED_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "limit must be an integer in 1..={MAX_UNSETTLED_LIMIT}"
                        ))
                    })?;
            }
            _ => {}
        }
    }
    let before = before.ok_or_else(|| ApiError::BadRequest("before is required".into()))?;
    Ok(Route::Unsettled { before, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(m: Method, p: &str) -> Result<Route, ApiError> {
        Route::parse(&m, p)
    }

    #[test]
    fn routes() {
        assert_eq!(parse(Method::POST, "/texts").unwrap(), Route::Insert);
        assert_eq!(parse(Method::POST, "/texts/").unwrap(), Route::Insert);
        assert_eq!(parse(Method::POST, "/texts/batch").unwrap(), Route::GetMany);
        assert_eq!(
            parse(Method::GET, "/texts/abc_-9").unwrap(),
            Route::Get("abc_-9".parse().unwrap())
        );
        assert_eq!(
            parse(Method::DELETE, "/texts/abc").unwrap(),
            Route::Delete("abc".parse().unwrap())
        );
        assert_eq!(parse(Method::GET, "/healthz").unwrap(), Route::Health);
        assert_eq!(
            parse(Method::POST, "/texts/delete").unwrap(),
            Route::DeleteMany
        );
        assert_eq!(parse(Method::POST, "/texts/settle").unwrap(), Route::Settle);
        assert_eq!(parse(Method::GET, "/metrics").unwrap(), Route::Metrics);
        assert_eq!(
            Route::parse_with_query(&Method::GET, "/texts/unsettled", Some("before=5&limit=7"))
                .unwrap(),
            Route::Unsettled {
                before: 5,
                limit: 7
            }
        );
        for bad in [
            None,
            Some("limit=3"),
            Some("before=x"),
            Some("before=1&limit=0"),
            Some("before=1&limit=1001"),
        ] {
            assert!(matches!(
                Route::parse_with_query(&Method::GET, "/texts/unsettled", bad),
                Err(ApiError::BadRequest(_))
            ));
        }
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse(Method::GET, "/texts"),
            Err(ApiError::MethodNotAllowed("POST"))
        ));
        assert!(matches!(
            parse(Method::PUT, "/texts/abc"),
            Err(ApiError::MethodNotAllowed("GET, DELETE"))
        ));
        assert!(matches!(
            parse(Method::GET, "/texts/a.b"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse(Method::GET, "/texts/a/b"),
            Err(ApiError::UnknownRoute)
        ));
        assert!(matches!(
            parse(Method::GET, "/"),
            Err(ApiError::UnknownRoute)
        ));
        assert!(matches!(
            parse(Method::POST, "/healthz"),
            Err(ApiError::MethodNotAllowed("GET"))
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_path_is_a_route_or_a_4xx_json_error(
            path in "(/[a-zA-Z0-9%._~-]{0,70}){0,3}/?",
            method in proptest::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ) {
            match Route::parse(&method.parse().unwrap(), &path) {
                Ok(Route::Get(p) | Route::Delete(p)) => proptest::prop_assert!(PastePath::is_valid(p.as_str())),
                Ok(_) => {}
                Err(err) => {
                    let resp = err.into_response();
                    proptest::prop_assert!(resp.status().is_client_error(), "{}", resp.status());
                    proptest::prop_assert_eq!(&resp.headers()[http::header::CONTENT_TYPE], "application/json");
                }
            }
        }
    }
}
