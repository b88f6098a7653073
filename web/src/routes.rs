//! The public routes: one table of (path template, method, operation), from which
//! `(method, path)` is parsed once into a `Route`. The same table is compared, both
//! ways, with the OpenAPI description in `openapi.json`, so a route cannot exist
//! without being described, nor be described without existing.

use contract::PasteId;
use http::Method;

use crate::ApiError;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Index,
    CreatePaste,
    ListPastes,
    GetPaste(PasteId),
    GetRaw(PasteId),
    /// `POST /pastes/{id}/reveal`: a browser's Reveal button on a burn-after-reading
    /// paste (the page, never the link, burns it).
    RevealPaste(PasteId),
    /// `DELETE /pastes/{id}` with `Authorization: Bearer <delete token>`.
    DeletePaste(PasteId),
    /// `GET /pastes/{id}/stats`: its view counts.
    GetStats(PasteId),
    /// `/static/{name}`: the pages' stylesheet and script (unknown names are 404).
    Static,
    Health,
    Ready,
    OpenApi,
}

/// A route before its path parameter is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Index,
    CreatePaste,
    ListPastes,
    GetPaste,
    GetRaw,
    RevealPaste,
    DeletePaste,
    GetStats,
    Static,
    Health,
    Ready,
    OpenApi,
}

/// One path of the API: its template (as written in the OpenAPI description, with
/// `{paste_id}` for the id), the `Allow` header a 405 carries, and what each method
/// does there.
pub(crate) struct Resource {
    pub(crate) template: &'static str,
    pub(crate) allow: &'static str,
    pub(crate) methods: &'static [(Method, Op)],
}

/// Every route the webserver serves. `HEAD` is served wherever `GET` is.
/// A trailing slash is ignored (`/pastes/` is `/pastes`).
pub(crate) static RESOURCES: &[Resource] = &[
    Resource {
        template: "/",
        allow: "GET, HEAD",
        methods: &[(Method::GET, Op::Index), (Method::HEAD, Op::Index)],
    },
    Resource {
        template: "/pastes",
        allow: "GET, HEAD, POST",
        methods: &[
            (Method::GET, Op::ListPastes),
            (Method::HEAD, Op::ListPastes),
            (Method::POST, Op::CreatePaste),
        ],
    },
    Resource {
        template: "/pastes/{paste_id}",
        allow: "GET, HEAD, DELETE",
        methods: &[
            (Method::GET, Op::GetPaste),
            (Method::HEAD, Op::GetPaste),
            (Method::DELETE, Op::DeletePaste),
        ],
    },
    Resource {
        template: "/pastes/{paste_id}/stats",
        allow: "GET, HEAD",
        methods: &[(Method::GET, Op::GetStats), (Method::HEAD, Op::GetStats)],
    },
    Resource {
        template: "/pastes/{paste_id}/reveal",
        allow: "POST",
        methods: &[(Method::POST, Op::RevealPaste)],
    },
    Resource {
        template: "/pastes/{paste_id}/raw",
        allow: "GET, HEAD",
        methods: &[(Method::GET, Op::GetRaw), (Method::HEAD, Op::GetRaw)],
    },
    Resource {
        template: "/static/{name}",
        allow: "GET, HEAD",
        methods: &[(Method::GET, Op::Static), (Method::HEAD, Op::Static)],
    },
    Resource {
        template: "/healthz",
        allow: "GET, HEAD",
        methods: &[(Method::GET, Op::Health), (Method::HEAD, Op::Health)],
    },
    Resource {
        template: "/readyz",
        allow: "GET, HEAD",
        methods: &[(Method::GET, Op::Ready), (Method::HEAD, Op::Ready)],
    },
    Resource {
        template: "/openapi.json",
        allow: "GET, HEAD",
        methods: &[(Method::GET, Op::OpenApi), (Method::HEAD, Op::OpenApi)],
    },
];

impl Route {
    /// Parses `(method, path)`. Unknown paths are 404, known paths with another
    /// method 405 (with the methods they allow), malformed ids 400.
    pub(crate) fn parse(method: &Method, path: &str) -> Result<Route, ApiError> {
        let (resource, id) = RESOURCES
            .iter()
            .find_map(|r| matches(r.template, path).map(|id| (r, id)))
            .ok_or(ApiError::NoRoute)?;
        let op = resource
            .methods
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, op)| *op)
            .ok_or(ApiError::MethodNotAllowed(resource.allow))?;
        let id = || parse_id(id.unwrap_or_default());
        Ok(match op {
            Op::Index => Route::Index,
            Op::CreatePaste => Route::CreatePaste,
            Op::ListPastes => Route::ListPastes,
            Op::GetPaste => Route::GetPaste(id()?),
            Op::GetRaw => Route::GetRaw(id()?),
            Op::RevealPaste => Route::RevealPaste(id()?),
            Op::DeletePaste => Route::DeletePaste(id()?),
            Op::GetStats => Route::GetStats(id()?),
            Op::Static => Route::Static,
            Op::Health => Route::Health,
            Op::Ready => Route::Ready,
            Op::OpenApi => Route::OpenApi,
        })
    }
}

/// Whether `path` fits `template`; then the segment standing for `{paste_id}`, if any.
/// Leading and trailing slashes are ignored.
fn matches<'p>(template: &str, path: &'p str) -> Option<Option<&'p str>> {
    let mut want = segments(template);
    let mut have = segments(path);
    let mut id = None;
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(id),
            (Some("{paste_id}"), Some(segment)) => id = Some(segment),
            (Some(w), Some(_)) if w.starts_with('{') => {}
            (Some(w), Some(h)) if w == h => {}
            _ => return None,
        }
    }
}

fn segments(path: &str) -> std::str::Split<'_, char> {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
}

/// Whether `method path` asks for a paste's own URL (`GET` or `HEAD /pastes/{x}`),
/// whatever `x` is: the answers there, errors included, are negotiated by `Accept`.
pub(crate) fn is_paste_url(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && matches("/pastes/{paste_id}", path).is_some()
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
    fn the_paste_url_is_told_apart_whatever_its_id() {
        for path in ["/pastes/AAAAAAAAAA", "/pastes/!!", "/pastes/x/"] {
            assert!(is_paste_url(&Method::GET, path), "{path}");
            assert!(is_paste_url(&Method::HEAD, path), "{path}");
            assert!(!is_paste_url(&Method::DELETE, path), "{path}");
        }
        for path in [
            "/pastes",
            "/pastes/",
            "/pastes/!!/raw",
            "/",
            "/x/AAAAAAAAAA",
        ] {
            assert!(!is_paste_url(&Method::GET, path), "{path}");
        }
    }

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
        assert_eq!(
            Route::parse(&Method::GET, "/openapi.json").unwrap(),
            Route::OpenApi
        );
        assert_eq!(Route::parse(&Method::GET, "/").unwrap(), Route::Index);
        let id: PasteId = "abcDEF0123".parse().unwrap();
        assert_eq!(
            Route::parse(&Method::GET, "/pastes/abcDEF0123").unwrap(),
            Route::GetPaste(id.clone())
        );
        assert_eq!(
            Route::parse(&Method::HEAD, "/pastes/abcDEF0123/raw").unwrap(),
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
            Route::parse(&Method::GET, "/pastes/abcDEF0123/raw/x"),
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

    #[test]
    fn each_allow_header_lists_exactly_the_methods() {
        for r in RESOURCES {
            let listed: Vec<&str> = r.methods.iter().map(|(m, _)| m.as_str()).collect();
            let allow: Vec<&str> = r.allow.split(", ").collect();
            let (mut a, mut b) = (listed.clone(), allow.clone());
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "{}", r.template);
        }
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
