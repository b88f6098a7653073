//! `GET /deletions?since=N`: the deletion log webservers poll to drop cached pastes.

use crate::helpers::spawn_app;

#[tokio::test]
async fn deletes_appear_in_the_log_in_order_and_survive_a_restart() {
    let app = spawn_app().await;
    let (status, first) = app.get("/deletions").await;
    assert_eq!(status, 200);
    assert_eq!(first["reset"], true, "no position yet: start from the head");
    let head = first["next"].as_u64().unwrap();
    let epoch = first["epoch"].as_u64().unwrap();

    let a = app.create("a").await;
    let b = app.create("b").await;
    for meta in [&b, &a] {
        let path = format!("/pastes/{}", meta.paste_id);
        assert_eq!(app.request("DELETE", &path, None).await.0, 200);
    }
    // A delete that finds nothing logs nothing.
    let path = format!("/pastes/{}", a.paste_id);
    assert_eq!(app.request("DELETE", &path, None).await.0, 404);

    let (status, page) = app.get(&format!("/deletions?since={head}")).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = page["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.paste_id.as_str(), a.paste_id.as_str()]);
    assert_eq!(page["next"].as_u64().unwrap(), head + 2);
    assert_eq!(
        (page["reset"].as_bool(), page["more"].as_bool()),
        (Some(false), Some(false))
    );

    let (_, one) = app.get(&format!("/deletions?since={head}&limit=1")).await;
    assert_eq!(one["ids"].as_array().unwrap().len(), 1);
    assert_eq!(one["more"], true);

    // The log and its epoch are in the database: a restarted sqlsvc goes on from there.
    let dir = app.stop().await;
    let app = crate::helpers::spawn_app_in(dir).await;
    let (_, after) = app.get(&format!("/deletions?since={}", head + 2)).await;
    assert_eq!(after["epoch"].as_u64().unwrap(), epoch);
    assert_eq!(
        (
            after["reset"].as_bool(),
            after["ids"].as_array().map(Vec::len)
        ),
        (Some(false), Some(0))
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_queries_are_refused() {
    let app = spawn_app().await;
    for bad in ["since=x", "since=-1", "limit=0", "limit=10001"] {
        let (status, body) = app.get(&format!("/deletions?{bad}")).await;
        assert_eq!((status, body["error"].is_string()), (400, true), "{bad}");
    }
    assert_eq!(app.request("POST", "/deletions", None).await.0, 405);
    app.stop().await;
}
