//! The webservers' paste cache, end to end: repeated reads stop at the webserver,
//! expiry is checked on every hit, an unknown id is not remembered as missing, a
//! delete reaches every webserver through the deletion log, concurrent readers of a
//! cold paste cause one fetch, and the cache keeps to its byte bound. Webservers are
//! addressed directly (not through the balancer) to know which one answers.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Answer as Resp, Stack};

/// Every wait in these tests polls until this deadline.
const DEADLINE: Duration = testkit::wait::DEADLINE;

async fn on_web(stack: &Stack, web: usize, path: &str) -> Resp {
    let url = format!("http://{}{path}", stack.webs[web].addr);
    stack.client.get(&url).await
}

/// Creates a paste through webserver `web` itself (which keeps it in its cache).
async fn create_on(stack: &Stack, web: usize, text: &str) -> String {
    create_json_on(stack, web, &serde_json::json!({ "text": text })).await
}

/// Creates a paste from the JSON `body` through webserver `web` itself.
async fn create_json_on(stack: &Stack, web: usize, body: &Value) -> String {
    let url = format!("http://{}/pastes/", stack.webs[web].addr);
    let resp = stack.client.post_json(&url, body).await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    resp.json()["paste_id"].as_str().unwrap().to_owned()
}

/// A stack whose webservers do not prefetch the pastes the others create, for the
/// tests that need a paste to be cold on one webserver.
async fn spawn_cold(webservers: usize) -> Stack {
    Stack::spawn_tuned(webservers, |c| c.cache_prefetch = false).await
}

async fn cache_stats(stack: &Stack, web: usize) -> Value {
    let resp = on_web(stack, web, "/healthz").await;
    assert_eq!(resp.status, StatusCode::OK);
    resp.json()["cache"].clone()
}

async fn fetches(stack: &Stack, web: usize) -> u64 {
    cache_stats(stack, web).await["fetches"].as_u64().unwrap()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The paste's metadata straight from sqlsvc.
async fn meta(stack: &Stack, id: &str) -> Value {
    let resp = stack
        .client
        .get(&format!("http://{}/pastes/{id}", stack.sqlsvc.addr))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    resp.json()
}

#[tokio::test]
async fn repeated_reads_are_answered_from_memory_even_with_both_stores_stopped() {
    let mut stack = spawn_cold(2).await;
    stack.wait_until_following().await;
    // Created through webserver 1, so webserver 0 has to fetch them.
    let hot = create_on(&stack, 1, "hot paste").await;
    let cold = create_on(&stack, 1, "cold paste").await;
    let before = fetches(&stack, 0).await;
    for _ in 0..5 {
        let resp = on_web(&stack, 0, &format!("/pastes/{hot}")).await;
        assert_eq!(resp.json()["text"], "hot paste");
    }
    assert_eq!(fetches(&stack, 0).await, before + 1, "one fetch, then hits");
    let raw = on_web(&stack, 0, &format!("/pastes/{hot}/raw")).await;
    assert_eq!(raw.text(), "hot paste");
    assert_eq!(
        fetches(&stack, 0).await,
        before + 1,
        "/raw reads the same entry"
    );

    stack.sqlsvc.stop().await;
    stack.nosqlsvc.stop().await;
    let resp = on_web(&stack, 0, &format!("/pastes/{hot}")).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.json()["text"], "hot paste");
    let raw = on_web(&stack, 0, &format!("/pastes/{hot}/raw")).await;
    assert_eq!(raw.text(), "hot paste");
    // What this webserver never read needs sqlsvc.
    on_web(&stack, 0, &format!("/pastes/{cold}"))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);
    // The webserver that created both kept them when it created them, without a
    // read, so it serves both without the stores.
    for (id, text) in [(&hot, "hot paste"), (&cold, "cold paste")] {
        let resp = on_web(&stack, 1, &format!("/pastes/{id}")).await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
        assert_eq!(resp.json()["text"], text);
    }
    assert_eq!(fetches(&stack, 1).await, 0, "webserver 1 never fetched");
    stack.shutdown().await;
}

/// `expires_at` of a paste, live or not, straight from the database.
fn expires_at(stack: &Stack, id: &str) -> i64 {
    let db = rusqlite::Connection::open(stack.dir.path().join("meta.sqlite3")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.query_row(
        "SELECT expires_at FROM pastes WHERE paste_id = ?1",
        [id],
        |r| r.get(0),
    )
    .unwrap()
}

/// A paste that expires in 2 s, read (so cached) by both webservers while live. On a
/// loaded machine 2 s may pass before both have read it; then another is made.
async fn short_lived_paste_cached_by_both(stack: &Stack) -> String {
    for _ in 0..10 {
        let body = r#"{"text": "short-lived", "expires_in": 2}"#;
        let resp = stack
            .client
            .send(
                Method::POST,
                &stack.url("/pastes/"),
                Some(("application/json", body.into())),
            )
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
        let id = resp.json()["paste_id"].as_str().unwrap().to_owned();
        let mut both = true;
        for web in 0..2 {
            both &= on_web(stack, web, &format!("/pastes/{id}")).await.status == StatusCode::OK;
        }
        if both {
            return id;
        }
    }
    panic!("no short-lived paste could be read twice within its 2 s");
}

#[tokio::test]
async fn an_expired_paste_is_never_served_from_the_cache() {
    let stack = Stack::spawn().await;
    stack.wait_until_following().await;
    let id = short_lived_paste_cached_by_both(&stack).await;
    let expires_at = expires_at(&stack, &id);
    for web in 0..2 {
        assert!(cache_stats(&stack, web).await["entries"].as_u64().unwrap() >= 1);
    }

    // Both webservers are asked until both say 404. A 200 is wrong only if the
    // request was sent in or after the second the paste expires in.
    let deadline = Instant::now() + DEADLINE;
    let mut gone = [false, false];
    while !gone.iter().all(|g| *g) {
        assert!(Instant::now() < deadline, "the paste never expired");
        for (web, gone) in gone.iter_mut().enumerate() {
            let sent = unix_now();
            let resp = on_web(&stack, web, &format!("/pastes/{id}")).await;
            match resp.status {
                StatusCode::OK => {
                    assert!(!*gone, "webserver {web} served it again after a 404");
                    assert!(
                        sent < expires_at,
                        "webserver {web} served the paste at {sent}, expires_at {expires_at}"
                    );
                }
                StatusCode::NOT_FOUND => {
                    assert!(unix_now() >= expires_at, "404 before the expiry");
                    *gone = true;
                }
                other => panic!("unexpected {other}: {}", resp.text()),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn an_unknown_id_is_not_remembered_as_missing() {
    let stack = Stack::spawn().await;
    stack.wait_until_following().await;
    const ID: &str = "NoSuchYet1";
    for _ in 0..3 {
        on_web(&stack, 0, &format!("/pastes/{ID}"))
            .await
            .assert_error(StatusCode::NOT_FOUND);
    }
    // The id now comes to exist (written straight into the database, pointing at the
    // text of a real paste), as a paste created elsewhere would.
    let real = stack.create("now it exists").await;
    let path = meta(&stack, &real).await["paste_path"]
        .as_str()
        .unwrap()
        .to_owned();
    let db = rusqlite::Connection::open(stack.dir.path().join("meta.sqlite3")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute(
        "INSERT INTO pastes (paste_id, paste_path, created_at, seq) \
         VALUES (?1, ?2, 1, (SELECT MAX(seq) + 1 FROM pastes))",
        rusqlite::params![ID, path],
    )
    .unwrap();
    // At once, on the webserver that just answered 404 for it.
    let resp = on_web(&stack, 0, &format!("/pastes/{ID}")).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.json()["text"], "now it exists");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_delete_reaches_every_webserver() {
    let stack = Stack::spawn_with(3).await;
    stack.wait_until_following().await;
    let id = stack.create("doomed").await;
    let kept = stack.create("kept").await;
    for web in 0..3 {
        for paste in [&id, &kept] {
            let resp = on_web(&stack, web, &format!("/pastes/{paste}")).await;
            assert_eq!(resp.status, StatusCode::OK);
        }
        assert!(cache_stats(&stack, web).await["entries"].as_u64().unwrap() >= 2);
    }
    // sqlsvc's internal delete (the public one is another issue's).
    let resp = stack
        .client
        .send(
            Method::DELETE,
            &format!("http://{}/pastes/{id}", stack.sqlsvc.addr),
            None,
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let answered = Instant::now();
    for web in 0..3 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let resp = on_web(&stack, web, &format!("/pastes/{id}")).await;
            if resp.status == StatusCode::NOT_FOUND {
                break;
            }
            assert_eq!(resp.status, StatusCode::OK);
            assert!(Instant::now() < deadline, "webserver {web} kept serving it");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A figure for the reader, not an assertion: the bound is 1 s.
        eprintln!(
            "webserver {web}: deleted paste gone {:?} after the delete answered",
            answered.elapsed()
        );
    }
    for web in 0..3 {
        let resp = on_web(&stack, web, &format!("/pastes/{kept}")).await;
        assert_eq!(resp.json()["text"], "kept");
        on_web(&stack, web, &format!("/pastes/{id}/raw"))
            .await
            .assert_error(StatusCode::NOT_FOUND);
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn concurrent_readers_of_a_cold_paste_cause_one_fetch() {
    let stack = spawn_cold(2).await;
    stack.wait_until_following().await;
    // Created through webserver 1: cold on webserver 0.
    let id = create_on(&stack, 1, "wanted by all").await;
    let before = fetches(&stack, 0).await;
    let url = format!("http://{}/pastes/{id}", stack.webs[0].addr);
    let readers: Vec<_> = (0..64)
        .map(|_| {
            let (client, url) = (stack.client.clone(), url.clone());
            tokio::spawn(async move { client.get(&url).await })
        })
        .collect();
    for reader in readers {
        let resp = reader.await.unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.json()["text"], "wanted by all");
    }
    assert_eq!(fetches(&stack, 0).await, before + 1);
    stack.shutdown().await;
}

#[tokio::test]
async fn the_cache_keeps_to_its_byte_bound() {
    const CAPACITY: usize = 64 * 1024;
    let stack = Stack::spawn_tuned(1, |config| config.cache_bytes = CAPACITY).await;
    stack.wait_until_following().await;
    let mut ids = Vec::new();
    for i in 0..80 {
        ids.push(stack.create(&format!("{i:04}{}", "x".repeat(2000))).await);
    }
    for _ in 0..2 {
        for (i, id) in ids.iter().enumerate() {
            let resp = on_web(&stack, 0, &format!("/pastes/{id}")).await;
            assert_eq!(resp.status, StatusCode::OK);
            assert!(
                resp.json()["text"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{i:04}"))
            );
            let stats = cache_stats(&stack, 0).await;
            let bytes = stats["bytes"].as_u64().unwrap();
            assert!(bytes <= CAPACITY as u64, "{stats}");
        }
    }
    let stats = cache_stats(&stack, 0).await;
    let entries = stats["entries"].as_u64().unwrap();
    assert!(entries > 0 && entries < 80, "{stats}");
    assert_eq!(stats["capacity_bytes"].as_u64().unwrap(), CAPACITY as u64);
    stack.shutdown().await;
}

#[tokio::test]
async fn pastes_created_elsewhere_are_cached_before_their_first_read() {
    let stack = Stack::spawn().await;
    stack.wait_until_following().await;
    let before = cache_stats(&stack, 0).await;
    // Created through webserver 1; webserver 0 learns of them from sqlsvc's
    // creations and fetches their texts in a batch, without a read.
    let plain = create_on(&stack, 1, "made on 1").await;
    let unlisted = create_json_on(
        &stack,
        1,
        &serde_json::json!({ "text": "unlisted on 1", "visibility": "unlisted" }),
    )
    .await;
    let burn = create_json_on(
        &stack,
        1,
        &serde_json::json!({ "text": "burn on 1", "burn_after_reading": true }),
    )
    .await;

    let prefetched = |v: &Value| v["prefetched"].as_u64().unwrap();
    let deadline = Instant::now() + DEADLINE;
    while prefetched(&cache_stats(&stack, 0).await) < prefetched(&before) + 2 {
        assert!(
            Instant::now() < deadline,
            "webserver 0 never prefetched them"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (id, text) in [(&plain, "made on 1"), (&unlisted, "unlisted on 1")] {
        let resp = on_web(&stack, 0, &format!("/pastes/{id}")).await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
        assert_eq!(resp.json()["text"], text);
    }
    let after = cache_stats(&stack, 0).await;
    assert_eq!(after["fetches"], before["fetches"], "both were hits");
    // A burn-after-reading paste is never cached: not prefetched either, so its
    // one read is a fetch (and a claim).
    assert_eq!(prefetched(&after), prefetched(&before) + 2);
    let resp = on_web(&stack, 0, &format!("/pastes/{burn}")).await;
    assert_eq!(resp.json()["text"], "burn on 1");
    assert_eq!(
        fetches(&stack, 0).await,
        before["fetches"].as_u64().unwrap() + 1
    );
    // Webserver 1 created all three and fetches none of its own back.
    assert_eq!(cache_stats(&stack, 1).await["prefetched"], 0);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_paste_kept_at_creation_reads_exactly_as_one_fetched() {
    // Without prefetching, so that webserver 0's read is a fetch (with it, the paste
    // could have been prefetched already, and the comparison would not be with a
    // fetched one).
    let stack = spawn_cold(2).await;
    stack.wait_until_following().await;
    for body in [
        serde_json::json!({ "text": "kept \"at\" creation\n\u{1}é" }),
        serde_json::json!({ "text": "with an expiry", "expires_in": 3600 }),
    ] {
        let url = format!("http://{}/pastes/", stack.webs[1].addr);
        let resp = stack.client.post_json(&url, &body).await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
        let id = resp.json()["paste_id"].as_str().unwrap().to_owned();
        let before = fetches(&stack, 1).await;
        let kept = on_web(&stack, 1, &format!("/pastes/{id}")).await;
        assert_eq!(fetches(&stack, 1).await, before, "served from the cache");
        let before = fetches(&stack, 0).await;
        let fetched = on_web(&stack, 0, &format!("/pastes/{id}")).await;
        assert_eq!(fetches(&stack, 0).await, before + 1, "fetched");
        assert_eq!(kept.status, StatusCode::OK);
        // The same answer, byte for byte, once the links name the same host.
        let url0 = format!("http://{}", stack.webs[0].addr);
        let url1 = format!("http://{}", stack.webs[1].addr);
        assert_eq!(kept.text().replace(&url1, &url0), fetched.text());
        let raw_kept = on_web(&stack, 1, &format!("/pastes/{id}/raw")).await;
        let raw_fetched = on_web(&stack, 0, &format!("/pastes/{id}/raw")).await;
        assert_eq!(raw_kept.text(), raw_fetched.text());
        assert_eq!(raw_kept.text(), body["text"].as_str().unwrap());
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn a_fetch_of_a_new_paste_the_cache_keeps_counts_as_missed_new() {
    // Without prefetching, so that webserver 0's first reads are fetches. With it,
    // each such fetch would also hurry the next creations poll (`read::prefetch`,
    // whose timing is tested there with paused time).
    let stack = spawn_cold(2).await;
    stack.wait_until_following().await;
    let missed_new = |v: &Value| v["missed_new"].as_u64().unwrap();
    let id = create_on(&stack, 1, "new on 1").await;
    let before = cache_stats(&stack, 0).await;
    for _ in 0..2 {
        let resp = on_web(&stack, 0, &format!("/pastes/{id}")).await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    }
    let after = cache_stats(&stack, 0).await;
    assert_eq!(
        after["fetches"].as_u64(),
        before["fetches"].as_u64().map(|n| n + 1)
    );
    assert_eq!(
        missed_new(&after),
        missed_new(&before) + 1,
        "the fetch (not the hit after it) counts as a miss on a new paste"
    );
    // A burn-after-reading paste is never cached: its fetch is not counted.
    let burn = create_json_on(
        &stack,
        1,
        &serde_json::json!({ "text": "burn on 1", "burn_after_reading": true }),
    )
    .await;
    let resp = on_web(&stack, 0, &format!("/pastes/{burn}")).await;
    assert_eq!(resp.json()["text"], "burn on 1");
    let last = cache_stats(&stack, 0).await;
    assert_eq!(
        last["fetches"].as_u64(),
        after["fetches"].as_u64().map(|n| n + 1)
    );
    assert_eq!(missed_new(&last), missed_new(&after));
    stack.shutdown().await;
}
