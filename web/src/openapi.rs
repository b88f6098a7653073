//! The OpenAPI 3.1 description of the public API (`web/openapi.json`), served at
//! `GET /openapi.json` by every webserver. A test below holds it to the route table
//! both ways; Schemathesis (`scripts/schemathesis.sh`) holds the running stack to it.

use http::{HeaderValue, Response, header};
use httpkit::{Body, full};

/// The description, as kept in the repository.
pub(crate) const SPEC: &str = include_str!("../openapi.json");

/// `GET /openapi.json`.
pub(crate) fn document() -> Response<Body> {
    let mut resp = Response::new(full(SPEC));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::SPEC;
    use crate::routes::RESOURCES;

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    fn spec() -> Value {
        serde_json::from_str(SPEC).expect("openapi.json is JSON")
    }

    /// (METHOD, path template) of every operation the description lists.
    fn described() -> BTreeSet<(String, String)> {
        let spec = spec();
        let paths = spec["paths"].as_object().expect("paths");
        let mut ops = BTreeSet::new();
        for (path, item) in paths {
            for (key, _) in item.as_object().expect("path item") {
                if METHODS.contains(&key.as_str()) {
                    ops.insert((key.to_uppercase(), path.clone()));
                }
            }
        }
        ops
    }

    /// (METHOD, path template) of every route the webserver serves.
    fn served() -> BTreeSet<(String, String)> {
        RESOURCES
            .iter()
            .flat_map(|r| {
                r.methods
                    .iter()
                    .map(|(m, _)| (m.as_str().to_owned(), r.template.to_owned()))
            })
            .collect()
    }

    #[test]
    fn every_route_is_described_and_every_description_is_a_route() {
        let (described, served) = (described(), served());
        let undocumented: Vec<_> = served.difference(&described).collect();
        let phantom: Vec<_> = described.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from web/openapi.json: {undocumented:?}"
        );
        assert!(
            phantom.is_empty(),
            "web/openapi.json describes routes the webserver does not serve: {phantom:?}"
        );
    }

    #[test]
    fn it_is_openapi_3_1_and_its_references_resolve() {
        let spec = spec();
        assert!(
            spec["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1.")),
            "{}",
            spec["openapi"]
        );
        let mut refs = Vec::new();
        collect_refs(&spec, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').expect("local reference");
            assert!(spec.pointer(pointer).is_some(), "dangling $ref {r}");
        }
    }

    #[test]
    fn every_operation_has_a_unique_id_and_json_errors() {
        let spec = spec();
        let mut ids = BTreeSet::new();
        for (path, item) in spec["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned()), "{id} twice");
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    responses.keys().any(|s| s.starts_with('2')),
                    "{method} {path}: no success answer"
                );
                for status in ["400", "502", "503", "504"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path}: {status} missing"
                    );
                }
            }
        }
    }

    fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => collect_refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
