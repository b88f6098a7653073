//! Reading pastes: JSON, raw, not found, and the balancer spreading requests.

use std::collections::HashSet;

use http::StatusCode;

use crate::helpers::Stack;

#[tokio::test]
async fn get_returns_the_paste_as_json_and_raw() {
    let stack = Stack::spawn().await;
    let id = stack.create("<b>hello</b>").await;
    let resp = stack.client.get(&stack.url(&format!("/pastes/{id}"))).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let body = resp.json();
    assert_eq!(body["paste_id"], id.as_str());
    assert_eq!(body["text"], "<b>hello</b>");
    assert!(body["created_at"].is_string());
    assert_eq!(body["url"], stack.url(&format!("/pastes/{id}")));

    let raw = stack
        .client
        .get(&stack.url(&format!("/pastes/{id}/raw")))
        .await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.text(), "<b>hello</b>");
    assert_eq!(
        raw.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(raw.header("x-content-type-options"), Some("nosniff"));
    stack.shutdown().await;
}

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let stack = Stack::spawn().await;
    stack
        .client
        .get(&stack.url("/pastes/AAAAAAAAAA"))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    for bad in [
        "/pastes/short",
        "/pastes/toolongid123",
        "/pastes/abc%20defgh",
        "/pastes/abcdefghi!",
    ] {
        stack
            .client
            .get(&stack.url(bad))
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn the_balancer_reaches_every_webserver() {
    let stack = Stack::spawn().await;
    let mut seen = HashSet::new();
    for _ in 0..10 {
        let resp = stack.client.get(&stack.url("/healthz")).await;
        assert_eq!(resp.status, StatusCode::OK);
        // Through the balancer: an opaque instance, never an address or a pid.
        assert!(resp.json().get("addr").is_none(), "{:?}", resp.json());
        assert!(resp.json().get("pid").is_none(), "{:?}", resp.json());
        seen.insert(resp.json()["instance"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), stack.webs.len());
    let ready = stack.client.get(&stack.url("/readyz")).await;
    assert_eq!(ready.status, StatusCode::OK);
    stack.shutdown().await;
}

#[tokio::test]
async fn every_service_answers_healthz() {
    let stack = Stack::spawn().await;
    stack.assert_all_healthy().await;
    stack.shutdown().await;
}

#[tokio::test]
async fn the_index_page_is_html() {
    let stack = Stack::spawn().await;
    let resp = stack.client.get(&stack.url("/")).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(resp.text().contains("<form"));
    stack.shutdown().await;
}

/// The paste's own URL: JSON to curl and scripts, a page to browsers (by `Accept`
/// and its q-values), `Vary: Accept` on both, the same for `HEAD`; every answer
/// carries the security headers, HTML the strict CSP.
#[tokio::test]
async fn a_paste_url_answers_json_or_a_page_by_accept() {
    use bytes::Bytes;
    use http::{Method, Request};

    const BROWSER: &str =
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
    let stack = Stack::spawn().await;
    let text = "<script>alert(1)</script>\n\u{202e}two & \"three\"";
    let id = stack.create(text).await;
    let url = stack.url(&format!("/pastes/{id}"));
    let cases = [
        (Some(BROWSER), true),
        (Some("text/html"), true),
        (Some("*/*"), false),
        (Some("application/json"), false),
        (Some("application/json, text/html;q=0.9"), false),
        (Some("text/html;q=0, */*"), false),
        (None, false),
    ];
    for (accept, html) in cases {
        for method in [Method::GET, Method::HEAD] {
            let mut req = Request::builder().method(method.clone()).uri(&url);
            if let Some(accept) = accept {
                req = req.header("accept", accept);
            }
            let resp = stack
                .client
                .request(req.body(testkit::client::body(Bytes::new())).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status, StatusCode::OK, "{method} {accept:?}");
            let content_type = resp.header("content-type").unwrap();
            let want = if html {
                "text/html"
            } else {
                "application/json"
            };
            assert!(
                content_type.starts_with(want),
                "{method} {accept:?}: {content_type}"
            );
            assert_eq!(resp.header("vary"), Some("Accept"), "{method} {accept:?}");
            assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
            assert_eq!(resp.header("referrer-policy"), Some("no-referrer"));
            let csp = resp.header("content-security-policy").unwrap();
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            if method == Method::HEAD {
                assert!(resp.body.is_empty());
                continue;
            }
            if html {
                assert!(
                    csp.contains("script-src 'self'") && !csp.contains("unsafe"),
                    "{csp}"
                );
                let page = resp.text();
                assert!(
                    page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                    "{page}"
                );
                assert!(!page.contains("<script>alert"), "{page}");
                assert!(page.contains("two &amp; &quot;three&quot;"), "{page}");
                assert!(page.contains("id=\"L2\""), "{page}");
                assert!(page.contains("<time datetime=\""), "{page}");
                assert!(
                    !page.contains("style=") && !page.contains("<style"),
                    "{page}"
                );
                // Its stylesheet and script are served, cached for good.
                for asset in page
                    .split('"')
                    .filter(|s| s.starts_with("/static/app."))
                    .collect::<HashSet<_>>()
                {
                    let resp = stack.client.get(&stack.url(asset)).await;
                    assert_eq!(resp.status, StatusCode::OK, "{asset}");
                    assert_eq!(
                        resp.header("cache-control"),
                        Some("public, max-age=31536000, immutable")
                    );
                }
            } else {
                assert_eq!(resp.json()["text"], text);
            }
        }
    }
    // A browser asking for a paste that is not there gets a page with the status.
    let req = Request::builder()
        .uri(stack.url("/pastes/AAAAAAAAAA"))
        .header("accept", BROWSER)
        .body(testkit::client::body(Bytes::new()))
        .unwrap();
    let resp = stack.client.request(req).await.unwrap();
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    // A malformed id too: the error page with its 400, negotiated like any answer
    // on that URL; curl's `*/*` keeps the JSON error.
    for bad in ["/pastes/!!", "/pastes/short"] {
        let req = Request::builder()
            .uri(stack.url(bad))
            .header("accept", BROWSER)
            .body(testkit::client::body(Bytes::new()))
            .unwrap();
        let resp = stack.client.request(req).await.unwrap();
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            resp.header("content-type")
                .unwrap()
                .starts_with("text/html"),
            "{bad}: {}",
            resp.text()
        );
        assert!(resp.text().contains("This is not a paste link."), "{bad}");
        assert_eq!(resp.header("vary"), Some("Accept"), "{bad}");
        let req = Request::builder()
            .uri(stack.url(bad))
            .header("accept", "*/*")
            .body(testkit::client::body(Bytes::new()))
            .unwrap();
        stack
            .client
            .request(req)
            .await
            .unwrap()
            .assert_error(StatusCode::BAD_REQUEST);
    }
    stack
        .client
        .get(&stack.url("/static/app.0000000000000000.js"))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    // The download, and the form without JavaScript (303 to the paste's page).
    let resp = stack.client.get(&format!("{url}/raw?download=1")).await;
    assert_eq!(
        resp.header("content-disposition"),
        Some(format!("attachment; filename=\"{id}.txt\"").as_str())
    );
    let resp = stack
        .client
        .send(
            Method::POST,
            &stack.url("/pastes/"),
            Some((
                "application/x-www-form-urlencoded",
                Bytes::from_static(b"text=a%3Cb%3E%0D%0Ac+d&expires_in=600"),
            )),
        )
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
    let location = resp.header("location").unwrap().to_owned();
    let created = stack.client.get(&location).await.json();
    assert_eq!(created["text"], "a<b>\nc d");
    assert!(created["expires_at"].is_string());
    stack.shutdown().await;
}
