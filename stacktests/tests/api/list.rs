//! Listing pastes: newest first, pages linked with `Link: rel="next"`.

use http::StatusCode;

use crate::helpers::Stack;

/// The URL in a `Link: <URL>; rel="next"` header.
fn next_link(link: Option<&str>) -> Option<String> {
    let link = link?;
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    Some(link[1..link.find('>').unwrap()].to_owned())
}

#[tokio::test]
async fn pages_cover_every_paste_once_newest_first() {
    let stack = Stack::spawn().await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(stack.create(&format!("paste {i}")).await);
    }
    let mut url = stack.url("/pastes?limit=3");
    let mut listed = Vec::new();
    let mut pages = 0;
    loop {
        let resp = stack.client.get(&url).await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
        let page = resp.json();
        let page = page.as_array().unwrap();
        assert!(page.len() <= 3);
        for p in page {
            assert!(p["text"].as_str().unwrap().starts_with("paste "));
            assert!(
                p["url"]
                    .as_str()
                    .unwrap()
                    .ends_with(p["paste_id"].as_str().unwrap())
            );
            listed.push(p["paste_id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        // A paste created between pages must not shift the pages that follow.
        if pages == 1 {
            stack.create("created while paging").await;
        }
        match next_link(resp.header("link")) {
            Some(next) => url = next,
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    created.reverse();
    assert_eq!(listed, created, "every paste once, newest first");

    let first = stack.client.get(&stack.url("/pastes/")).await;
    assert_eq!(first.json().as_array().unwrap().len(), 8);
    assert!(first.header("link").is_none());
    stack.shutdown().await;
}

#[tokio::test]
async fn default_page_size_is_50() {
    let stack = Stack::spawn().await;
    let mut tasks = Vec::new();
    for i in 0..55 {
        let client = stack.client.clone();
        let url = stack.url("/pastes/");
        tasks.push(tokio::spawn(async move {
            let body = serde_json::json!({ "text": format!("p{i}") }).to_string();
            let resp = client
                .send(
                    http::Method::POST,
                    &url,
                    Some(("application/json", body.into())),
                )
                .await;
            assert_eq!(resp.status, StatusCode::CREATED);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let resp = stack.client.get(&stack.url("/pastes")).await;
    assert_eq!(resp.json().as_array().unwrap().len(), 50);
    let next = next_link(resp.header("link")).expect("a next page");
    let rest = stack.client.get(&next).await;
    assert_eq!(rest.json().as_array().unwrap().len(), 5);
    stack.shutdown().await;
}

#[tokio::test]
async fn bad_page_parameters_are_400() {
    let stack = Stack::spawn().await;
    for query in [
        "limit=0",
        "limit=501",
        "limit=ten",
        "cursor=",
        "cursor=%2F",
        "cursor=zzzzzzzz",
    ] {
        stack
            .client
            .get(&stack.url(&format!("/pastes?{query}")))
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        stack
            .client
            .get(&stack.url("/pastes?limit=500"))
            .await
            .status,
        StatusCode::OK
    );
    stack.shutdown().await;
}
