//! The public routes, parsed once from method and path into a `Route`.

use http::Method;
use sqlsvc::api::PasteId;

use crate::ApiError;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Index,
    CreatePaste,
    ListPastes,
    GetPaste(PasteId),
    GetRaw(PasteId),
    Health,
    Ready,
}

impl Route {
    /// Parses `(method, path)`. Unknown paths are 404, known paths with another
    /// method 405 (with the methods they allow), malformed ids 400.
    pub(crate) fn parse(method: &Method, path: &str) -> Result<Route, ApiError> {
        let segments: Vec<&str> = path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split('/')
            .collect();
        let (route, allow) = match segments.as_slice() {
            [""] => (get_or_head(method).then_some(Route::Index), "GET, HEAD"),
            ["healthz"] => (get_or_head(method).then_some(Route::Health), "GET, HEAD"),
            ["readyz"] => (get_or_head(method).then_some(Route::Ready), "GET, HEAD"),
            ["pastes"] => {
                let route = if get_or_head(method) {
                    Some(Route::ListPastes)
                } else if method == Method::POST {
                    Some(Route::CreatePaste)
                } else {
                    None
                };
                (route, "GET, HEAD, POST")
            }
            ["pastes", id] => {
                if !get_or_head(method) {
                    return Err(ApiError::MethodNotAllowed("GET, HEAD"));
                }
                (Some(Route::GetPaste(parse_id(id)?)), "GET, HEAD")
            }
            ["pastes", id, "raw"] => {
                if !get_or_head(method) {
                    return Err(ApiError::MethodNotAllowed("GET, HEAD"));
                }
                (Some(Route::GetRaw(parse_id(id)?)), "GET, HEAD")
            }
            _ => return Err(ApiError::NoRoute),
        };
        route.ok_or(ApiError::MethodNotAllowed(allow))
    }
}

fn get_or_head(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

fn parse_id(raw: &str) -> Result<PasteId, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::BadRequest("malformed paste id: expected 10 characters of [0-9A-Za-z]".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_public_routes() {
        assert_eq!(
            Route::parse(&Method::POST, "/pastes/").unwrap(),
            Route::CreatePaste
        );
        assert_eq!(
            Route::parse(&Method::POST, "/pastes").unwrap(),
            Route::CreatePaste
        );
        assert_eq!(
            Route::parse(&Method::GET, "/pastes").unwrap(),
            Route::ListPastes
        );
        assert_eq!(
            Route::parse(&Method::GET, "/pastes/").unwrap(),
            Route::ListPastes
        );
        assert_eq!(
            Route::parse(&Method::GET, "/healthz").unwrap(),
            Route::Health
        );
        assert_eq!(Route::parse(&Method::GET, "/").unwrap(), Route::Index);
        let id: PasteId = "abcDEF0123".parse().unwrap();
        assert_eq!(
            Route::parse(&Method::GET, "/pastes/abcDEF0123").unwrap(),
            Route::GetPaste(id.clone())
        );
        assert_eq!(
            Route::parse(&Method::GET, "/pastes/abcDEF0123/raw").unwrap(),
            Route::GetRaw(id)
        );
    }

    #[test]
    fn rejects_what_it_does_not_serve() {
        assert!(matches!(
            Route::parse(&Method::GET, "/nope"),
            Err(ApiError::NoRoute)
        ));
        assert!(matches!(
            Route::parse(&Method::DELETE, "/pastes"),
            Err(ApiError::MethodNotAllowed("GET, HEAD, POST"))
        ));
        assert!(matches!(
            Route::parse(&Method::GET, "/pastes/short"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            Route::parse(&Method::GET, "/pastes/abcDEF012!"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            Route::parse(&Method::PUT, "/pastes/abcDEF0123"),
            Err(ApiError::MethodNotAllowed(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_path_is_a_route_or_a_4xx_json_error(
            path in "(/[a-zA-Z0-9%._~!-]{0,12}){0,4}/?",
            method in proptest::sample::select(vec!["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
        ) {
            let method: Method = method.parse().unwrap();
            if let Err(err) = Route::parse(&method, &path) {
                let resp = err.into_response();
                proptest::prop_assert!(resp.status().is_client_error(), "{}", resp.status());
                proptest::prop_assert_eq!(&resp.headers()[http::header::CONTENT_TYPE], "application/json");
            }
        }

        #[test]
        fn any_id_parses_only_if_well_formed(id in ".{0,14}") {
            let ok = id.len() == 10 && id.bytes().all(|b| b.is_ascii_alphanumeric());
            proptest::prop_assert_eq!(parse_id(&id).is_ok(), ok);
        }
    }
}
