//! The correctness checks under load: a server that alters texts or answers creates
//! wrongly is caught; an honest one gives no mismatch.

use std::time::Duration;

use loadtest::{ErrorKind, Kind, Mix, Workload};

use crate::fakes::{self, FakePastebin, Lie};

fn mix() -> Workload {
    Workload::Pastebin(Mix {
        verify_ratio: 1.0,
        list_share: 0.1,
        ..Mix::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_server_passes_every_check() {
    let server = fakes::start(FakePastebin::new(Lie::None)).await;
    let result = fakes::run(
        &server.url,
        &fakes::plan(mix(), 4, Duration::from_millis(1500)),
    )
    .await;
    let s = &result.stats;
    assert_eq!(s.errors.total(), 0, "{:?}", s.mismatch_samples);
    assert!(s.verified > 0, "{}", s.verified);
    assert!(s.kind(Kind::Write).unwrap().requests > 0);
    assert!(s.kind(Kind::List).unwrap().requests > 0);
    let reads = s.kind(Kind::Read).unwrap().requests as f64;
    let writes = s.kind(Kind::Write).unwrap().requests as f64;
    assert!(
        (5.0..20.0).contains(&(reads / writes)),
        "read:write {}",
        reads / writes
    );
    assert!(result.keys_created > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_texts_are_counted_as_mismatches() {
    let server = fakes::start(FakePastebin::new(Lie::AlterText)).await;
    let result = fakes::run(
        &server.url,
        &fakes::plan(mix(), 4, Duration::from_millis(600)),
    )
    .await;
    let s = &result.stats;
    assert!(s.verified > 0);
    // Every verified read is wrong, and nothing else is.
    assert_eq!(s.errors.get(ErrorKind::Mismatch), s.verified);
    assert_eq!(s.errors.total(), s.verified);
    assert!(
        s.mismatch_samples[0].contains("differs"),
        "{:?}",
        s.mismatch_samples
    );
}

#[tokio::test]
async fn malformed_create_answers_are_mismatches() {
    let server = fakes::start(FakePastebin::new(Lie::BadCreate)).await;
    let result = fakes::run(
        &server.url,
        &fakes::plan(mix(), 2, Duration::from_millis(300)),
    )
    .await;
    let s = &result.stats;
    let writes = s.kind(Kind::Write).unwrap().requests;
    // No paste is ever known, so every request but the list calls is a write.
    assert!(writes > 5);
    assert_eq!(s.errors.get(ErrorKind::Mismatch), writes);
    assert_eq!(result.keys_created, 0);
}
