//! nosqlsvc with the MongoDB backend: the shared conformance suites against the server
//! named by `PASTEBIN_TEST_MONGODB_URI` (MongoDB or FerretDB), plus outage behaviour.
//! The tests that need that server are `#[ignore]`d with the reason, so a plain
//! `cargo test` lists them as ignored, never as passed; `scripts/test.sh` starts
//! FerretDB and runs them with `--ignored` (and under `CI=true` fails if it cannot).
//! Run by hand without the variable, they fail. The restart test runs a FerretDB of
//! its own (`PASTEBIN_FERRETDB_BIN`, see `restart.rs`).

// Test support code: a panic is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
#[path = "../common/mod.rs"]
mod common;
mod outage;
mod restart;

use std::io::Write;
use std::time::Duration;

use common::{ConfigFixture, StoreFixture};
use mongodb::Client;
use mongodb::bson::Document;
use mongodb::options::ClientOptions;
use nosqlsvc::mongo::{MongoConfig, MongoStore};
use nosqlsvc::{BackendConfig, Config};

const URI_VAR: &str = "PASTEBIN_TEST_MONGODB_URI";

/// The server URI. The tests calling this are `#[ignore]`d; asked to run without a
/// server, they fail rather than pass having run nothing.
fn test_uri() -> String {
    match std::env::var(URI_VAR) {
        Ok(uri) if !uri.is_empty() => uri,
        _ => panic!(
            "{URI_VAR} is not set: start FerretDB (scripts/ferretdb.sh) or run scripts/test.sh"
        ),
    }
}

/// Settings for a fresh collection of its own, so tests never see each other's data.
fn mongo_config(uri: String) -> MongoConfig {
    let suffix = nosqlsvc::paths::new_path().unwrap().replace('-', "_");
    MongoConfig {
        database: "nosqlsvc_test".into(),
        collection: format!("texts_{suffix}"),
        server_selection_timeout: Duration::from_secs(5),
        ..MongoConfig::new(uri)
    }
}

/// Drops a test's collection when the test is over (passed or panicking), so the
/// server does not fill up with test data. Best effort, bounded in time.
struct DropCollection(MongoConfig);

impl Drop for DropCollection {
    fn drop(&mut self) {
        let settings = self.0.clone();
        // Its own thread and runtime: this may run inside the test's runtime.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut options = ClientOptions::parse(&settings.uri).await.ok()?;
                options.server_selection_timeout = Some(Duration::from_secs(2));
                let client = Client::with_options(options).ok()?;
                let dropped = tokio::time::timeout(
                    Duration::from_secs(5),
                    client
                        .database(&settings.database)
                        .collection::<Document>(&settings.collection)
                        .drop(),
                )
                .await;
                let _ = tokio::time::timeout(Duration::from_secs(2), client.shutdown()).await;
                dropped.ok()?.ok()
            })
        });
        if dropper.join().ok().flatten().is_none() {
            let _ = writeln!(
                std::io::stderr(),
                "warning: could not drop test collection {}",
                self.0.collection
            );
        }
    }
}

async fn mongo_store() -> StoreFixture<MongoStore> {
    let config = mongo_config(test_uri());
    let store = MongoStore::connect(&config).await.unwrap();
    StoreFixture {
        store,
        keep: Box::new(DropCollection(config)),
    }
}

async fn mongo_service() -> ConfigFixture {
    let settings = mongo_config(test_uri());
    let config = Config {
        backend: BackendConfig::MongoDb(settings.clone()),
        ..Config::mongodb("unused")
    };
    ConfigFixture {
        config,
        keep: Box::new(DropCollection(settings)),
    }
}

mod store {
    store_conformance!(
        super::mongo_store(),
        #[ignore = "needs MongoDB/FerretDB: set PASTEBIN_TEST_MONGODB_URI (scripts/test.sh does)"]
    );
}

mod http {
    http_conformance!(
        super::mongo_service(),
        #[ignore = "needs MongoDB/FerretDB: set PASTEBIN_TEST_MONGODB_URI (scripts/test.sh does)"]
    );
}
