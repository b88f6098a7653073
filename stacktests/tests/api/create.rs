//! Creating pastes: JSON and plain-text bodies, links, expiry.

use http::{Method, StatusCode};

use crate::helpers::{MAX_BODY, Stack};

fn is_id(s: &str) -> bool {
    s.len() == 10 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[tokio::test]
async fn json_create_answers_201_with_id_url_and_location() {
    let stack = Stack::spawn().await;
    for path in ["/pastes/", "/pastes"] {
        let resp = stack
            .client
            .send(
                Method::POST,
                &stack.url(path),
                Some((
                    "application/json",
                    r#"{"text": "this is a new paste"}"#.into(),
                )),
            )
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
        let body = resp.json();
        let id = body["paste_id"].as_str().unwrap();
        assert!(is_id(id), "{id}");
        let url = body["url"].as_str().unwrap();
        assert_eq!(url, stack.url(&format!("/pastes/{id}")));
        assert_eq!(resp.header("location"), Some(url));
        let created = body["created_at"].as_str().unwrap();
        assert!(created.ends_with('Z') && created.len() == 20, "{created}");
        assert!(body.get("expires_at").is_none());
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn plain_text_create_answers_the_url_on_a_line() {
    let stack = Stack::spawn().await;
    for content_type in [Some("text/plain"), Some("text/plain; charset=utf-8"), None] {
        let text = "line one\nline two\n";
        let resp = match content_type {
            Some(ct) => {
                stack
                    .client
                    .send(
                        Method::POST,
                        &stack.url("/pastes/"),
                        Some((ct, text.into())),
                    )
                    .await
            }
            None => {
                let req = http::Request::post(stack.url("/pastes/"))
                    .body(testkit::client::body(text))
                    .unwrap();
                stack.client.request(req).await.unwrap()
            }
        };
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
        let body = resp.text();
        assert!(body.ends_with('\n'));
        let url = body.trim_end();
        assert_eq!(resp.header("location"), Some(url));
        assert!(
            resp.header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        let got = stack.client.get(url).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.json()["text"], text);
    }
    stack.shutdown().await;
}

use testkit::time::unix;

/// The longest lifetime a paste may be given (README): ten years.
const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

#[tokio::test]
async fn expires_at_is_creation_plus_expires_in_up_to_the_maximum() {
    let stack = Stack::spawn().await;
    // (Not 1 s: see `a_paste_vanishes_when_it_expires`.)
    for n in [7, 3600, MAX_EXPIRES_IN] {
        let resp = stack
            .client
            .post_json(
                &stack.url("/pastes/"),
                &serde_json::json!({"text": "expiring", "expires_in": n}),
            )
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{n}: {}", resp.text());
        let body = resp.json();
        let created = unix(body["created_at"].as_str().unwrap());
        let expires = unix(body["expires_at"].as_str().unwrap());
        // The webserver counts from its clock when the request arrives and sqlsvc
        // stamps the creation a moment later, so on a busy machine the two may be a
        // few seconds apart (CI runs three test binaries at once on two cores); never
        // later than creation + N.
        let n = n as i64;
        assert!(
            (n - 10..=n).contains(&(expires - created)),
            "expires_in {n}: created {created}, expires {expires}"
        );
        // What the 201 said is what a read says.
        {
            let read = stack.read(body["paste_id"].as_str().unwrap()).await.json();
            assert_eq!(read["expires_at"], body["expires_at"]);
            assert_eq!(read["created_at"], body["created_at"]);
        }
    }
    for (body, query) in [
        (
            format!(r#"{{"text": "x", "expires_in": {}}}"#, MAX_EXPIRES_IN + 1),
            "",
        ),
        (r#"{"text": "x"}"#.to_owned(), "?expires_in=315360001"),
    ] {
        stack
            .send(
                Method::POST,
                &format!("/pastes/{query}"),
                Some(("application/json", &body)),
            )
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    stack
        .send(
            Method::POST,
            "/pastes/?expires_in=315360001",
            Some(("text/plain", "x")),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    stack.shutdown().await;
}

#[tokio::test]
async fn expires_in_in_a_json_body_wins_over_the_query() {
    let stack = Stack::spawn().await;
    let lifetime = |resp: &testkit::Answer| {
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
        let body = resp.json();
        body["expires_at"]
            .as_str()
            .map(|e| unix(e) - unix(body["created_at"].as_str().unwrap()))
    };
    fn json(body: &str) -> Option<(&str, &str)> {
        Some(("application/json", body))
    }
    // Both: the body's.
    let both = stack
        .send(
            Method::POST,
            "/pastes/?expires_in=60",
            json(r#"{"text": "x", "expires_in": 7200}"#),
        )
        .await;
    assert!(
        (7190..=7200).contains(&lifetime(&both).unwrap()),
        "{}",
        both.text()
    );
    // Only the query: the query's, for JSON and for plain text.
    let query = stack
        .send(
            Method::POST,
            "/pastes/?expires_in=7200",
            json(r#"{"text": "x"}"#),
        )
        .await;
    assert!(
        (7190..=7200).contains(&lifetime(&query).unwrap()),
        "{}",
        query.text()
    );
    let plain = stack
        .send(
            Method::POST,
            "/pastes/?expires_in=7200",
            Some(("text/plain", "x")),
        )
        .await;
    assert_eq!(plain.status, StatusCode::CREATED);
    let read = stack.client.get(plain.text().trim_end()).await.json();
    let plain_lifetime =
        unix(read["expires_at"].as_str().unwrap()) - unix(read["created_at"].as_str().unwrap());
    assert!((7190..=7200).contains(&plain_lifetime), "{read}");
    // Neither: never expires.
    let never = stack
        .send(Method::POST, "/pastes/", json(r#"{"text": "x"}"#))
        .await;
    assert_eq!(lifetime(&never), None);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_paste_vanishes_when_it_expires() {
    let stack = Stack::spawn().await;
    let resp = stack
        .send(
            Method::POST,
            "/pastes/",
            // Not 1: the webserver computes the expiry from its clock and sqlsvc refuses
            // one already past, so on a busy machine a 1 s lifetime can be refused
            // (a 500; reported as a bug, see the issue-8 report).
            Some(("application/json", r#"{"text": "brief", "expires_in": 3}"#)),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED);
    let id = resp.json()["paste_id"].as_str().unwrap().to_owned();
    let kept = stack.create("kept").await;
    // Polled: it goes within a generous deadline, whatever the machine's load.
    testkit::eventually("the expired paste answers 404", || async {
        stack.read(&id).await.status == StatusCode::NOT_FOUND
    })
    .await;
    stack.read(&id).await.assert_error(StatusCode::NOT_FOUND);
    let listed = stack.listed().await;
    assert!(!listed.contains(&id), "expired paste still listed");
    assert!(listed.contains(&kept));
    stack.shutdown().await;
}

#[tokio::test]
async fn unicode_and_a_text_at_the_size_limit_round_trip() {
    let stack = Stack::spawn().await;
    let unicode = "héllo wörld — 日本語 — עברית — 😀🚀 — \u{0}nul — \"quotes\" \\ back";
    let id = stack.create(unicode).await;
    let got = stack.client.get(&stack.url(&format!("/pastes/{id}"))).await;
    assert_eq!(got.json()["text"], unicode);

    let exact = "a".repeat(MAX_BODY);
    let resp = stack
        .client
        .send(
            Method::POST,
            &stack.url("/pastes/"),
            Some(("text/plain", exact.clone().into())),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let raw = stack
        .client
        .get(&format!("{}/raw", resp.text().trim_end()))
        .await;
    assert_eq!(raw.body.len(), MAX_BODY);
    assert_eq!(raw.text(), exact);
    stack.shutdown().await;
}

#[tokio::test]
async fn concurrent_creates_get_distinct_ids_and_all_read_back() {
    let stack = Stack::spawn().await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let client = stack.client.clone();
        let url = stack.url("/pastes/");
        tasks.push(tokio::spawn(async move {
            let text = format!("paste number {i}");
            let body = serde_json::json!({ "text": text }).to_string();
            let resp = client
                .send(Method::POST, &url, Some(("application/json", body.into())))
                .await;
            assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
            (resp.json()["paste_id"].as_str().unwrap().to_owned(), text)
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let (id, text) = task.await.unwrap();
        let got = stack.client.get(&stack.url(&format!("/pastes/{id}"))).await;
        assert_eq!(got.json()["text"], text);
        assert!(ids.insert(id), "duplicate id");
    }
    assert_eq!(ids.len(), 100);
    stack.shutdown().await;
}
