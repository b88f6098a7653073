//! `GET /pastes`: keyset pagination, limits and cursors.

use std::collections::HashSet;

use serde_json::Value;
use sqlsvc::api::MetaPage;

use crate::helpers::{TestApp, spawn_app};

async fn page(app: &TestApp, query: &str) -> MetaPage {
    let (status, body) = app.get(&format!("/pastes{query}")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

#[tokio::test]
async fn empty_listing() {
    let app = spawn_app().await;
    let (status, body) = app.get("/pastes").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({"pastes": [], "cursors": [], "next_cursor": Value::Null})
    );
    app.stop().await;
}

#[tokio::test]
async fn pages_are_stable_while_pastes_are_inserted() {
    let app = spawn_app().await;
    let mut originals = Vec::new();
    for i in 0..25 {
        originals.push(app.create(&format!("orig{i}")).await.paste_id);
    }
    originals.reverse(); // newest first

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=10&cursor={c}"),
            None => "?limit=10".to_owned(),
        };
        let p = page(&app, &query).await;
        assert!(p.pastes.len() <= 10);
        seen.extend(p.pastes.into_iter().map(|m| m.paste_id));
        pages += 1;
        // New pastes arrive between pages; they are newer than the cursor.
        for i in 0..3 {
            app.create(&format!("new{pages}_{i}")).await;
        }
        match p.next_cursor {
            Some(c) => {
                assert!(
                    c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                    "{c}"
                );
                cursor = Some(c);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, originals, "no duplicates, no misses, newest first");

    // A fresh listing now starts with the newest insert.
    let first = page(&app, "?limit=1").await;
    assert_eq!(first.pastes[0].paste_path.as_str(), "new3_2");
    assert!(first.next_cursor.is_some());
    app.stop().await;
}

#[tokio::test]
async fn an_exact_last_page_has_no_cursor() {
    let app = spawn_app().await;
    let mut ids = HashSet::new();
    for i in 0..4 {
        ids.insert(app.create(&format!("p{i}")).await.paste_id);
    }
    let first = page(&app, "?limit=2").await;
    let second = page(
        &app,
        &format!("?limit=2&cursor={}", first.next_cursor.unwrap()),
    )
    .await;
    assert_eq!(second.pastes.len(), 2);
    assert_eq!(second.next_cursor, None);
    let all = page(&app, "").await; // default limit 50
    assert_eq!(all.pastes.len(), 4);
    assert_eq!(
        all.pastes
            .into_iter()
            .map(|m| m.paste_id)
            .collect::<HashSet<_>>(),
        ids
    );
    assert_eq!(page(&app, "?limit=500").await.pastes.len(), 4);
    app.stop().await;
}

#[tokio::test]
async fn bad_limits_and_cursors_are_400() {
    let app = spawn_app().await;
    for query in [
        "?limit=0",
        "?limit=501",
        "?limit=-1",
        "?limit=ten",
        "?limit=",
        "?cursor=garbage",
        "?cursor=s0",
        "?cursor=",
        "?cursor=s%31",
        "?limit=5&cursor=sZZ",
    ] {
        let (status, body) = app.get(&format!("/pastes{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"].is_string());
    }
    app.stop().await;
}

#[tokio::test]
async fn every_row_has_a_cursor_continuing_right_after_it() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.create(&format!("p{i}")).await;
    }
    let first = page(&app, "?limit=5").await;
    assert_eq!(first.cursors.len(), 5);
    // Cut after the second row: the rest follows from its cursor.
    let rest = page(&app, &format!("?limit=5&cursor={}", first.cursors[1])).await;
    let ids = |p: &MetaPage| {
        p.pastes
            .iter()
            .map(|m| m.paste_id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&rest), ids(&first)[2..]);
    // Cursors reveal no count: none holds a small hex number.
    for cursor in &first.cursors {
        assert_eq!(cursor.len(), 49, "{cursor}");
    }
    app.stop().await;
}
