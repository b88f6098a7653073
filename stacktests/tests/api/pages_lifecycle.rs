//! The paste lifecycle as a browser sees it: a burn-after-reading link opens a notice
//! with a Reveal button and burns nothing (nor does `HEAD`); only the reveal (a POST)
//! burns it and shows it once; the home page's form without JavaScript takes the
//! burn and unlisted boxes; a paste page shows its view count.

use http::{Method, Request, StatusCode};
use serde_json::json;

use crate::helpers::{Answer, Stack};

const BROWSER: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

async fn request(stack: &Stack, method: Method, path: &str, accept: &str) -> Answer {
    let req = Request::builder()
        .method(method)
        .uri(stack.url(path))
        .header("accept", accept)
        .body(testkit::client::body(""))
        .unwrap();
    stack.client.request(req).await.unwrap()
}

async fn create_burning(stack: &Stack, text: &str) -> String {
    let resp = stack
        .client
        .post_json(
            &stack.url("/pastes"),
            &json!({ "text": text, "burn_after_reading": true }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    resp.json()["paste_id"].as_str().unwrap().to_owned()
}

fn assert_html(resp: &Answer) {
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        resp.header("content-type")
    );
}

#[tokio::test]
async fn a_burn_link_opened_by_a_browser_shows_a_notice_and_burns_nothing() {
    let stack = Stack::spawn().await;
    let id = create_burning(&stack, "<b>secret</b> once").await;
    let path = format!("/pastes/{id}");
    for _ in 0..3 {
        // A browser, or a chat app's link preview, opening the link.
        let page = request(&stack, Method::GET, &path, BROWSER).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_html(&page);
        assert_eq!(page.header("cache-control"), Some("no-store"));
        assert_eq!(page.header("vary"), Some("Accept"));
        let html = page.text();
        assert!(html.contains("id=\"burn-notice\""), "{html}");
        assert!(
            html.contains(&format!("action=\"/pastes/{id}/reveal\"")),
            "{html}"
        );
        assert!(
            !html.contains("secret"),
            "the text before the reveal: {html}"
        );
        // HEAD never burns, HTML or JSON.
        for accept in [BROWSER, "*/*"] {
            let head = request(&stack, Method::HEAD, &path, accept).await;
            assert_eq!(head.status, StatusCode::OK, "HEAD {accept}");
            assert!(head.body.is_empty());
        }
    }
    // Nothing above burnt it: the JSON API's GET still gets it, and burns it (its
    // behaviour is kept).
    let json = request(&stack, Method::GET, &path, "*/*").await;
    assert_eq!(json.status, StatusCode::OK, "{}", json.text());
    assert_eq!(json.json()["text"], "<b>secret</b> once");
    request(&stack, Method::GET, &path, "*/*")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    let gone = request(&stack, Method::GET, &path, BROWSER).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_html(&gone);
    stack.shutdown().await;
}

#[tokio::test]
async fn only_the_reveal_burns_and_shows_the_text_once() {
    let stack = Stack::spawn().await;
    let id = create_burning(&stack, "<script>alert(1)</script>\nline 2").await;
    let reveal = format!("/pastes/{id}/reveal");
    let shown = stack.send(Method::POST, &reveal, None).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text());
    assert_html(&shown);
    assert_eq!(shown.header("cache-control"), Some("no-store"));
    let csp = shown.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
    let html = shown.text();
    assert!(html.contains("id=\"burnt\""), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(html.contains("<span>line 2</span>"), "{html}");
    assert!(
        !html.contains("/raw\""),
        "a raw link to a burnt paste: {html}"
    );
    // Once: the reveal again, the page, the JSON API and the raw text find nothing.
    let again = stack.send(Method::POST, &reveal, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_html(&again);
    assert!(again.text().contains("burnt after reading"));
    let page = request(&stack, Method::GET, &format!("/pastes/{id}"), BROWSER).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    stack.read(&id).await.assert_error(StatusCode::NOT_FOUND);
    stack
        .client
        .get(&stack.url(&format!("/pastes/{id}/raw")))
        .await
        .assert_error(StatusCode::NOT_FOUND);

    // A paste that does not burn is simply shown by a reveal, and stays.
    let kept = stack.create("stays").await;
    let shown = stack
        .send(Method::POST, &format!("/pastes/{kept}/reveal"), None)
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(!shown.text().contains("id=\"burnt\""));
    assert_eq!(stack.read(&kept).await.status, StatusCode::OK);
    // Not a paste id: 400 (from the router, as JSON); another method: 405.
    let bad = stack.send(Method::POST, "/pastes/bad!/reveal", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let get = stack
        .send(Method::GET, &format!("/pastes/{kept}/reveal"), None)
        .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.header("allow"), Some("POST"));
    stack.shutdown().await;
}

#[tokio::test]
async fn the_form_without_javascript_takes_burn_and_unlisted() {
    let stack = Stack::spawn().await;
    let form = "application/x-www-form-urlencoded";
    let resp = stack
        .send(
            Method::POST,
            "/pastes/",
            Some((
                form,
                "text=a+%26+b&expires_in=3600&burn_after_reading=1&visibility=unlisted",
            )),
        )
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
    let location = resp.header("location").unwrap().to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    assert!(!stack.listed().await.contains(&id));
    let page = request(&stack, Method::GET, &format!("/pastes/{id}"), BROWSER).await;
    assert!(page.text().contains("id=\"burn-notice\""));
    // Unticked boxes are not sent: a public paste that does not burn.
    let resp = stack
        .send(
            Method::POST,
            "/pastes/",
            Some((form, "text=plain&expires_in=")),
        )
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
    let plain = resp
        .header("location")
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(stack.listed().await.contains(&plain));
    let page = request(&stack, Method::GET, &format!("/pastes/{plain}"), BROWSER).await;
    assert!(page.text().contains("<span>plain</span>"));
    // A bad option is a 400 that creates nothing.
    let before = stack.listed().await.len();
    let resp = stack
        .send(
            Method::POST,
            "/pastes/",
            Some((form, "text=x&visibility=secret")),
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(stack.listed().await.len(), before);
    stack.shutdown().await;
}

#[tokio::test]
async fn the_page_shows_the_view_count() {
    let stack = Stack::spawn().await;
    let id = stack.create("count me").await;
    let path = format!("/pastes/{id}");
    // A page waits for its count only briefly (PAGE_VIEWS_TIMEOUT) and is sent
    // without it otherwise, so a page on a loaded machine may lack it: polled.
    let views = |html: &str| -> Option<u64> {
        let (_, rest) = html.split_once("<span id=\"views\">")?;
        Some(rest.split('<').next().unwrap().parse().unwrap())
    };
    let page_views = || async { views(&request(&stack, Method::GET, &path, BROWSER).await.text()) };
    let first = testkit::wait::eventually_within(
        "a page with its view count",
        testkit::wait::DEADLINE,
        page_views,
    )
    .await;
    // Views are flushed in batches: the count rises within a few page loads' time.
    testkit::eventually("the page's view count rises", || async {
        page_views().await.is_some_and(|n| n > first)
    })
    .await;
    // HEAD counts nothing and shows nothing.
    let head = request(&stack, Method::HEAD, &path, BROWSER).await;
    assert_eq!(head.status, StatusCode::OK);
    stack.shutdown().await;
}
