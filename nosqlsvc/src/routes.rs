//! Parses `(method, path)` once into a `Route`; malformed text paths are rejected here.

use http::Method;

use crate::api::PastePath;
use crate::error::ApiError;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Insert,
    GetMany,
    Get(PastePath),
    Delete(PastePath),
    Health,
}

const ALLOW_POST: &str = "POST";
const ALLOW_GET_DELETE: &str = "GET, DELETE";
const ALLOW_GET: &str = "GET";

impl Route {
    pub(crate) fn parse(method: &Method, path: &str) -> Result<Route, ApiError> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
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
