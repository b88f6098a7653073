//! nosqlsvc with the embedded (redb) backend: the shared conformance suites, plus what
//! is specific to it (file lock, failure mapping through a fake store, throughput).

// Test support code: a panic is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
#[path = "../common/mod.rs"]
mod common;
mod specific;

use common::{ConfigFixture, StoreFixture};
use nosqlsvc::Config;
use nosqlsvc::embedded::{GroupCommit, RedbStore};

/// A fresh redb store in its own temp dir (a nested path, to check dir creation).
async fn redb_store() -> StoreFixture<RedbStore> {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("a/b/texts.redb"), GroupCommit::default())
        .await
        .unwrap();
    StoreFixture {
        store,
        keep: Box::new(dir),
    }
}

/// A service config on a fresh redb file.
async fn redb_config() -> ConfigFixture {
    let dir = tempfile::tempdir().unwrap();
    ConfigFixture {
        config: Config::embedded(dir.path().join("data/texts.redb")),
        keep: Box::new(dir),
    }
}

mod store {
    store_conformance!(super::redb_store());
}

mod http {
    http_conformance!(super::redb_config());
}
