//! nosqlsvc with the MongoDB backend: the shared conformance suites against the server
//! named by `PASTEBIN_TEST_MONGODB_URI` (MongoDB or FerretDB), plus outage behaviour.
//! Without that variable the tests are SKIPPED, or fail under `CI=true`. The restart
//! test runs a FerretDB of its own (`PASTEBIN_FERRETDB_BIN`, see `restart.rs`).

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

/// The server URI, or `None` after a loud SKIPPED line; fails under `CI=true`.
fn test_uri() -> Option<String> {
    match std::env::var(URI_VAR) {
        Ok(uri) if !uri.is_empty() => Some(uri),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{URI_VAR} is not set, and CI=true requires the MongoDB tests to run");
            }
            // Straight to fd 2, past the test harness's output capture.
            let _ = writeln!(
                std::io::stderr(),
                "*** SKIPPED: MongoDB backend test ({URI_VAR} not set) ***"
            );
            None
        }
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

async fn mongo_store() -> Option<StoreFixture<MongoStore>> {
    let config = mongo_config(test_uri()?);
    let store = MongoStore::connect(&config).await.unwrap();
    Some(StoreFixture {
        store,
        keep: Box::new(DropCollection(config)),
    })
}

async fn mongo_service() -> Option<ConfigFixture> {
    let settings = mongo_config(test_uri()?);
    let config = Config {
        backend: BackendConfig::MongoDb(settings.clone()),
        ..Config::mongodb("unused")
    };
    Some(ConfigFixture {
        config,
        keep: Box::new(DropCollection(settings)),
    })
}

mod store {
    store_conformance!(super::mongo_store());
}

mod http {
    http_conformance!(super::mongo_service());
}
