//! A paste's whole life, end to end through the balancer: delete with the token (and
//! no oracle without it), burn after reading (and the burn race across webservers),
//! unlisted pastes, view statistics, and the sweeper (expired pastes and orphaned
//! texts deleted for real, also against thousands with readers running).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Answer, Stack};

/// POSTs `body` as JSON through the balancer; asserts 201 and returns the answer.
async fn create(stack: &Stack, body: Value) -> Value {
    let resp = stack.client.post_json(&stack.url("/pastes"), &body).await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    resp.json()
}

/// `DELETE path` through the balancer with `authorization` if given.
async fn delete(stack: &Stack, path: &str, authorization: Option<&str>) -> Answer {
    let mut req = Request::builder()
        .method(Method::DELETE)
        .uri(stack.url(path));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    stack
        .client
        .request(req.body(testkit::client::body("")).unwrap())
        .await
        .unwrap()
}

/// `GET url` with an `Accept` header.
async fn get_accepting(stack: &Stack, url: &str, accept: &str) -> Answer {
    let req = Request::get(url)
        .header("accept", accept)
        .body(testkit::client::body(""))
        .unwrap();
    stack.client.request(req).await.unwrap()
}

/// The paste's text path, straight from sqlsvc.
async fn text_path(stack: &Stack, id: &str) -> String {
    let resp = stack
        .client
        .get(&format!("http://{}/pastes/{id}", stack.sqlsvc.addr))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    resp.json()["paste_path"].as_str().unwrap().to_owned()
}

/// The text path of a paste row, live or expired, straight from sqlsvc's database;
/// `None` once the row is gone.
fn stored_text_path(stack: &Stack, id: &str) -> Option<String> {
    use rusqlite::OptionalExtension;
    let db = rusqlite::Connection::open(stack.dir.path().join("meta.sqlite3")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.query_row(
        "SELECT paste_path FROM pastes WHERE paste_id = ?1",
        [id],
        |r| r.get(0),
    )
    .optional()
    .unwrap()
}

/// Whether nosqlsvc still holds the text at `path`.
async fn text_exists(stack: &Stack, path: &str) -> bool {
    let resp = stack
        .client
        .get(&format!("http://{}/texts/{path}", stack.nosqlsvc.addr))
        .await;
    match resp.status {
        StatusCode::OK => true,
        StatusCode::NOT_FOUND => false,
        other => panic!("nosqlsvc answered {other}: {}", resp.text()),
    }
}

/// One value of a `/metrics` answer.
pub async fn metric(client: &testkit::Client, addr: std::net::SocketAddr, name: &str) -> u64 {
    let resp = client.get(&format!("http://{addr}/metrics")).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let text = resp.text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

fn month_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    read::views::month_of(secs)
}

#[tokio::test]
async fn a_delete_with_the_token_removes_paste_text_and_statistics() {
    let stack = Stack::spawn().await;
    let created = create(&stack, json!({ "text": "to be deleted" })).await;
    let id = created["paste_id"].as_str().unwrap().to_owned();
    let token = created["delete_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32, "{created}");
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(created["visibility"], "public");
    assert_eq!(created["burn_after_reading"], false);
    let other = create(&stack, json!({ "text": "another" })).await;
    let other_token = other["delete_token"].as_str().unwrap();
    let path = text_path(&stack, &id).await;
    assert_eq!(stack.read(&id).await.status, StatusCode::OK);

    // Every wrong way answers exactly what an unknown id answers.
    let unknown = delete(
        &stack,
        "/pastes/ZZZZZZZZZZ",
        Some(&format!("Bearer {token}")),
    )
    .await;
    unknown.assert_error(StatusCode::NOT_FOUND);
    let wrong_token = format!("Bearer {}", "A".repeat(32));
    let others = format!("Bearer {other_token}");
    let basic = format!("Basic {token}");
    let with_junk = format!("Bearer {token}!");
    for auth in [
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer "),
        Some(wrong_token.as_str()),
        Some(others.as_str()),
        Some(basic.as_str()),
        Some(with_junk.as_str()),
    ] {
        let resp = delete(&stack, &format!("/pastes/{id}"), auth).await;
        assert_eq!(resp.status, unknown.status, "{auth:?}");
        assert_eq!(resp.body, unknown.body, "{auth:?}");
        assert_eq!(
            resp.header("content-type"),
            unknown.header("content-type"),
            "{auth:?}"
        );
    }
    assert_eq!(stack.read(&id).await.status, StatusCode::OK);
    assert!(text_exists(&stack, &path).await);

    let resp = delete(
        &stack,
        &format!("/pastes/{id}"),
        Some(&format!("bearer {token}")),
    )
    .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.text());
    assert!(resp.body.is_empty());
    // Gone from every webserver within the deletion log's bound, text included.
    testkit::eventually("the deleted paste is 404 everywhere", || async {
        let mut all = true;
        for web in &stack.webs {
            let r = stack.client.get(&web.url(&format!("/pastes/{id}"))).await;
            all &= r.status == StatusCode::NOT_FOUND;
        }
        all
    })
    .await;
    testkit::eventually("the sweeper deletes its text", || async {
        !text_exists(&stack, &path).await
    })
    .await;
    stack
        .client
        .get(&stack.url(&format!("/pastes/{id}/stats")))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    let again = delete(
        &stack,
        &format!("/pastes/{id}"),
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!((again.status, again.body), (unknown.status, unknown.body));
    // The other paste is untouched.
    let other_id = other["paste_id"].as_str().unwrap();
    assert_eq!(stack.read(other_id).await.json()["text"], "another");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_plain_text_create_answers_its_token_in_a_header() {
    let stack = Stack::spawn().await;
    let resp = stack
        .send(
            Method::POST,
            "/pastes?visibility=unlisted&burn_after_reading=false",
            Some(("text/plain", "plain text")),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let (id, token) = resp.created_plain();
    assert!(!stack.listed().await.contains(&id));
    let resp = delete(
        &stack,
        &format!("/pastes/{id}"),
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    // A JSON create has no such header: the token is in the body.
    let resp = stack
        .client
        .post_json(&stack.url("/pastes"), &json!({ "text": "x" }))
        .await;
    assert!(resp.header("x-delete-token").is_none());
    stack.shutdown().await;
}

#[tokio::test]
async fn unlisted_pastes_are_readable_by_id_and_never_listed() {
    let stack = Stack::spawn().await;
    let public = create(&stack, json!({ "text": "public", "visibility": "public" })).await;
    let unlisted = create(
        &stack,
        json!({ "text": "hidden", "visibility": "unlisted" }),
    )
    .await;
    assert_eq!(unlisted["visibility"], "unlisted");
    let (public, unlisted) = (
        public["paste_id"].as_str().unwrap(),
        unlisted["paste_id"].as_str().unwrap(),
    );
    let listed = stack.listed().await;
    assert!(listed.contains(&public.to_owned()));
    assert!(!listed.contains(&unlisted.to_owned()));
    assert_eq!(stack.read(unlisted).await.json()["text"], "hidden");
    let raw = stack
        .client
        .get(&stack.url(&format!("/pastes/{unlisted}/raw")))
        .await;
    assert_eq!(raw.text(), "hidden");
    stack
        .client
        .post_json(
            &stack.url("/pastes"),
            &json!({ "text": "x", "visibility": "private" }),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_burn_after_reading_paste_is_read_once_and_never_by_head_or_listing() {
    let stack = Stack::spawn().await;
    let created = create(
        &stack,
        json!({ "text": "read me once", "burn_after_reading": true }),
    )
    .await;
    assert_eq!(created["burn_after_reading"], true);
    let id = created["paste_id"].as_str().unwrap().to_owned();
    let path = text_path(&stack, &id).await;
    for _ in 0..3 {
        let head = stack
            .send(Method::HEAD, &format!("/pastes/{id}"), None)
            .await;
        assert_eq!(head.status, StatusCode::OK);
        let head = stack
            .send(Method::HEAD, &format!("/pastes/{id}/raw"), None)
            .await;
        assert_eq!(head.status, StatusCode::OK);
    }
    assert!(!stack.listed().await.contains(&id));
    let first = stack.read(&id).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json()["text"], "read me once");
    for path in [format!("/pastes/{id}"), format!("/pastes/{id}/raw")] {
        for web in &stack.webs {
            stack
                .client
                .get(&web.url(&path))
                .await
                .assert_error(StatusCode::NOT_FOUND);
        }
    }
    testkit::eventually("the burnt text is deleted", || async {
        !text_exists(&stack, &path).await
    })
    .await;

    // The raw text burns it as well, and so does the page's Reveal button (opening
    // the page only shows a notice: pages_lifecycle.rs).
    for how in ["raw", "html"] {
        let created = create(
            &stack,
            json!({ "text": "once more", "burn_after_reading": true }),
        )
        .await;
        let id = created["paste_id"].as_str().unwrap();
        let resp = if how == "raw" {
            stack
                .client
                .get(&stack.url(&format!("/pastes/{id}/raw")))
                .await
        } else {
            stack
                .send(Method::POST, &format!("/pastes/{id}/reveal"), None)
                .await
        };
        assert_eq!(resp.status, StatusCode::OK, "{how}");
        assert!(resp.text().contains("once more"), "{how}");
        stack.read(id).await.assert_error(StatusCode::NOT_FOUND);
    }
    stack.shutdown().await;
}

/// 50 concurrent GETs of one burn-after-reading paste, spread over both webservers
/// (half straight to each, so both really take part): exactly one gets the text.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_burn_race_has_exactly_one_winner_across_webservers() {
    let stack = Arc::new(Stack::spawn().await);
    for round in 0..5 {
        let text = format!("secret {round}");
        let created = create(&stack, json!({ "text": text, "burn_after_reading": true })).await;
        let id = created["paste_id"].as_str().unwrap().to_owned();
        let start = Arc::new(tokio::sync::Barrier::new(50));
        let readers: Vec<_> = (0..50)
            .map(|i| {
                let (stack, id, start) = (stack.clone(), id.clone(), start.clone());
                tokio::spawn(async move {
                    let web = &stack.webs[i % 2];
                    let url = if i % 3 == 0 {
                        web.url(&format!("/pastes/{id}/raw"))
                    } else {
                        web.url(&format!("/pastes/{id}"))
                    };
                    start.wait().await;
                    stack.client.get(&url).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for reader in readers {
            let resp = reader.await.unwrap();
            match resp.status {
                StatusCode::OK => winners.push(resp.text()),
                StatusCode::NOT_FOUND => {}
                other => panic!("round {round}: {other}: {}", resp.text()),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert!(winners[0].contains(&text));
    }
    Arc::try_unwrap(stack).ok().unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_racing_reads_serves_the_whole_text_or_404_then_only_404() {
    let stack = Arc::new(Stack::spawn().await);
    let text = "racing ".repeat(500);
    let created = create(&stack, json!({ "text": text })).await;
    let id = created["paste_id"].as_str().unwrap().to_owned();
    let token = created["delete_token"].as_str().unwrap().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..8)
        .map(|i| {
            let (stack, id, stop, reads, text) = (
                stack.clone(),
                id.clone(),
                stop.clone(),
                reads.clone(),
                text.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let web = &stack.webs[i % 2];
                    let resp = stack
                        .client
                        .get(&web.url(&format!("/pastes/{id}/raw")))
                        .await;
                    match resp.status {
                        StatusCode::OK => assert_eq!(resp.text(), text),
                        StatusCode::NOT_FOUND => {}
                        other => panic!("{other}: {}", resp.text()),
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    testkit::eventually("readers are reading", || async {
        reads.load(Ordering::Relaxed) > 50
    })
    .await;
    let resp = delete(
        &stack,
        &format!("/pastes/{id}"),
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    // Once a webserver says 404, it never serves the paste again.
    testkit::eventually("every webserver stops serving it", || async {
        let mut gone = true;
        for web in &stack.webs {
            gone &= stack
                .client
                .get(&web.url(&format!("/pastes/{id}")))
                .await
                .status
                == StatusCode::NOT_FOUND;
        }
        gone
    })
    .await;
    let after = reads.load(Ordering::Relaxed);
    testkit::eventually("more reads after the delete", || async {
        reads.load(Ordering::Relaxed) > after + 50
    })
    .await;
    for web in &stack.webs {
        stack
            .client
            .get(&web.url(&format!("/pastes/{id}/raw")))
            .await
            .assert_error(StatusCode::NOT_FOUND);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    Arc::try_unwrap(stack).ok().unwrap().shutdown().await;
}

#[tokio::test]
async fn every_get_counts_a_view_and_head_does_not() {
    let stack = Stack::spawn().await;
    let created = create(&stack, json!({ "text": "count me" })).await;
    let id = created["paste_id"].as_str().unwrap().to_owned();
    let stats_url = stack.url(&format!("/pastes/{id}/stats"));
    let stats = stack.client.get(&stats_url).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text());
    assert_eq!(stats.json(), json!({ "views": 0, "monthly": {} }));
    // 4 JSON (the later ones from the webservers' caches), 2 raw, 1 page; 3 HEADs.
    for _ in 0..4 {
        assert_eq!(stack.read(&id).await.status, StatusCode::OK);
    }
    for _ in 0..2 {
        let raw = stack
            .client
            .get(&stack.url(&format!("/pastes/{id}/raw")))
            .await;
        assert_eq!(raw.status, StatusCode::OK);
    }
    let page = get_accepting(&stack, &stack.url(&format!("/pastes/{id}")), "text/html").await;
    assert_eq!(page.status, StatusCode::OK);
    for _ in 0..3 {
        let head = stack
            .send(Method::HEAD, &format!("/pastes/{id}"), None)
            .await;
        assert_eq!(head.status, StatusCode::OK);
    }
    let last_read = std::time::Instant::now();
    let want = json!({ "views": 7, "monthly": { month_now(): 7 } });
    // Issue 9: "a count shows in the stats within 2 s". A webserver flushes its
    // counts every FLUSH_INTERVAL, so a count shows within that and one `POST /views`
    // round trip; the interval is held to a quarter of the 2 s here, which leaves
    // 1.5 s for the round trip. The wait itself is polled with the generous default
    // deadline, not 2 s: on the shared 2-core CI machine three test binaries and
    // their servers run at once, and a 2 s bound on wall time would fail on load,
    // not on a wrong flush. The time it took is printed as a figure.
    assert!(
        read::views::FLUSH_INTERVAL * 4 <= Duration::from_secs(2),
        "views are flushed every {:?}: too seldom for a count to show within 2 s",
        read::views::FLUSH_INTERVAL
    );
    testkit::eventually("the views show in the stats", || async {
        stack.client.get(&stats_url).await.json()["views"].as_u64() >= Some(7)
    })
    .await;
    eprintln!(
        "the views showed in the stats {:?} after the last read",
        last_read.elapsed()
    );
    assert_eq!(stack.client.get(&stats_url).await.json(), want);
    stack
        .client
        .get(&stack.url("/pastes/ZZZZZZZZZZ/stats"))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    stack
        .client
        .get(&stack.url("/pastes/bad/stats"))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    stack.shutdown().await;
}

#[tokio::test]
async fn the_sweeper_deletes_expired_pastes_and_their_texts() {
    let stack = Stack::spawn().await;
    let kept = create(&stack, json!({ "text": "kept" })).await;
    let mut doomed = Vec::new();
    for i in 0..20 {
        let c = create(
            &stack,
            json!({ "text": format!("short {i}"), "expires_in": 1 }),
        )
        .await;
        let id = c["paste_id"].as_str().unwrap().to_owned();
        // Straight from the database: sqlsvc's own GET hides the paste once its second
        // is over, which on a loaded machine can come before this line; the sweeper may
        // even have removed the row already (then the metrics below cover its text).
        let path = stored_text_path(&stack, &id);
        doomed.push((id, path));
    }
    let c = &stack.client;
    // The sweeper counts what nosqlsvc deleted once nosqlsvc has answered, so its
    // counters may lag nosqlsvc's own count by a moment: all are waited for together.
    testkit::eventually("the expired pastes are swept and counted", || async {
        metric(c, stack.sqlsvc.addr, "pastebin_pastes").await == 1
            && metric(c, stack.nosqlsvc.addr, "pastebin_texts").await == 1
            && metric(
                c,
                stack.sqlsvc.addr,
                "pastebin_sweeper_expired_pastes_total",
            )
            .await
                >= 20
            && metric(c, stack.sqlsvc.addr, "pastebin_sweeper_texts_deleted_total").await >= 20
    })
    .await;
    for (id, path) in &doomed {
        stack.read(id).await.assert_error(StatusCode::NOT_FOUND);
        if let Some(path) = path {
            assert!(!text_exists(&stack, path).await);
        }
    }
    let kept = kept["paste_id"].as_str().unwrap();
    assert_eq!(stack.read(kept).await.json()["text"], "kept");
    stack.shutdown().await;
}

#[tokio::test]
async fn texts_orphaned_by_a_failed_create_are_swept_after_the_grace_period() {
    let stack = Stack::spawn_full(
        2,
        |_| {},
        |sweep| sweep.orphan_grace = Duration::from_secs(2),
    )
    .await;
    // A create that died between its two steps: a text no row points at.
    let orphan = stack
        .client
        .post_json(
            &format!("http://{}/texts", stack.nosqlsvc.addr),
            &json!({ "text": "nobody's" }),
        )
        .await;
    assert_eq!(orphan.status, StatusCode::CREATED);
    let orphan = orphan.json()["paste_path"].as_str().unwrap().to_owned();
    let kept = create(&stack, json!({ "text": "somebody's" })).await;
    let kept = kept["paste_id"].as_str().unwrap();
    let kept_path = text_path(&stack, kept).await;
    assert!(text_exists(&stack, &orphan).await);
    testkit::eventually("the orphaned text is deleted", || async {
        !text_exists(&stack, &orphan).await
    })
    .await;
    let c = &stack.client;
    // The sweeper adds to its counter once nosqlsvc has answered the delete, which
    // the wait above may have seen first: the counter is waited for too, then must
    // be exactly one.
    let orphaned = || {
        metric(
            c,
            stack.sqlsvc.addr,
            "pastebin_sweeper_orphaned_texts_total",
        )
    };
    testkit::eventually("the sweeper counts the orphaned text", || async {
        orphaned().await >= 1
    })
    .await;
    assert_eq!(orphaned().await, 1);
    // The paste's own text, as old, was settled, not deleted.
    testkit::eventually("the paste's text is settled", || async {
        metric(
            c,
            stack.nosqlsvc.addr,
            "pastebin_sweeper_texts_settled_total",
        )
        .await
            >= 1
    })
    .await;
    assert!(text_exists(&stack, &kept_path).await);
    assert_eq!(stack.read(kept).await.json()["text"], "somebody's");
    stack.shutdown().await;
}

/// Thousands of expired pastes swept in bounded batches while readers keep reading
/// the live ones: no read fails, and in the end only the live pastes and texts are
/// left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweeper_against_thousands_of_expired_pastes_with_readers_running() {
    let stack = Arc::new(Stack::spawn_full(2, |_| {}, |sweep| sweep.batch = 200).await);
    let live: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..20 {
            let c = create(&stack, json!({ "text": format!("live {i}") })).await;
            ids.push(c["paste_id"].as_str().unwrap().to_owned());
        }
        ids
    };
    const EXPIRED: usize = 3000;
    let creators: Vec<_> = (0..8)
        .map(|t| {
            let stack = stack.clone();
            tokio::spawn(async move {
                for i in (t..EXPIRED).step_by(8) {
                    // A 5xx (a store timing out under the machine's load) is retried:
                    // whatever it left is expired or orphaned, and swept as well.
                    for attempt in 0.. {
                        let resp = stack
                            .client
                            .post_json(
                                &stack.url("/pastes"),
                                &json!({ "text": format!("gone {i}"), "expires_in": 1, "visibility": "unlisted" }),
                            )
                            .await;
                        if resp.status == StatusCode::CREATED {
                            break;
                        }
                        assert!(
                            resp.status.is_server_error() && attempt < 5,
                            "{}: {}",
                            resp.status,
                            resp.text()
                        );
                    }
                }
            })
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (stack, live, stop, reads) =
                (stack.clone(), live.clone(), stop.clone(), reads.clone());
            tokio::spawn(async move {
                let mut n = r;
                while !stop.load(Ordering::Relaxed) {
                    let id = &live[n % live.len()];
                    n += 1;
                    let resp = stack.read(id).await;
                    assert_eq!(resp.status, StatusCode::OK, "{id}: {}", resp.text());
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for c in creators {
        c.await.unwrap();
    }
    let c = &stack.client;
    testkit::wait::eventually_within(
        "every expired paste and its text are swept",
        // Generous: under the MongoDB rerun FerretDB deletes one document at a time,
        // beside two other test binaries on a 2-core machine.
        Duration::from_secs(300),
        || async {
            // The sweeper's counter is added to once the writer has answered, so it
            // may lag the row count by a moment: waited for with it.
            (metric(c, stack.sqlsvc.addr, "pastebin_pastes").await == live.len() as u64
                && metric(c, stack.nosqlsvc.addr, "pastebin_texts").await == live.len() as u64
                && metric(
                    c,
                    stack.sqlsvc.addr,
                    "pastebin_sweeper_expired_pastes_total",
                )
                .await
                    >= EXPIRED as u64)
                .then_some(())
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert!(reads.load(Ordering::Relaxed) > 0);
    let ids: HashSet<String> = stack.listed().await.into_iter().collect();
    assert_eq!(ids, live.iter().cloned().collect());
    Arc::try_unwrap(stack).ok().unwrap().shutdown().await;
}
