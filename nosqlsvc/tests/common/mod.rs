//! Shared test support: a spawned nosqlsvc, a raw HTTP client, and the backend
//! conformance suites (store level and HTTP level) that every backend runs.
#![allow(dead_code)]

pub mod client;
pub mod conformance;
pub mod http_suite;

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;

use nosqlsvc::Config;
use nosqlsvc::store::TextStore;
use testkit::spawn::Spawned;

/// Upper bound for any single test step that waits on the server.
pub const STEP: Duration = Duration::from_secs(30);

/// Logs only when `RUST_LOG` asks for it.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            httpkit::logging::init_for_tests("warn");
        }
    });
}

/// A store under test plus whatever must live as long as it (a temp dir...).
pub struct StoreFixture<S: TextStore> {
    pub store: S,
    pub keep: Box<dyn Any + Send>,
}

/// A service config under test plus whatever must live as long as it.
pub struct ConfigFixture {
    pub config: Config,
    pub keep: Box<dyn Any + Send>,
}

/// A nosqlsvc running in this process on a port-0 listener.
pub struct TestApp {
    pub addr: SocketAddr,
    server: Spawned<Result<(), nosqlsvc::Error>>,
}

impl TestApp {
    /// Starts `nosqlsvc::run` with `config`; stops when `stop`ped or dropped.
    pub async fn spawn(config: Config) -> TestApp {
        init_tracing();
        let server = testkit::spawn::spawn(move |listener, shutdown| {
            nosqlsvc::run(listener, config, shutdown)
        });
        TestApp {
            addr: server.addr,
            server,
        }
    }

    /// Starts the server over an already opened store.
    pub async fn spawn_store<S: TextStore>(store: S, config: Config) -> TestApp {
        init_tracing();
        let server = testkit::spawn::spawn(move |listener, shutdown| async move {
            nosqlsvc::serve_store(listener, store, config, shutdown).await;
            Ok(())
        });
        TestApp {
            addr: server.addr,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// Shuts down and waits for `run` to return (the store closed).
    pub async fn stop(mut self) -> Result<(), nosqlsvc::Error> {
        self.server.stop().await.expect("stopped twice")
    }

    /// Whether `run` has returned (e.g. failed at startup).
    pub fn is_finished(&self) -> bool {
        self.server.is_finished()
    }
}

/// The conformance suite over a `TextStore`, one `#[tokio::test]` per case.
/// `$make` is an async expression giving a `StoreFixture<_>`; attributes given after
/// it (such as `#[ignore = "why"]` for a backend that needs a server) go on every case.
#[macro_export]
macro_rules! store_conformance {
    ($make:expr $(, #[$attr:meta])*) => {
        $crate::store_conformance!(@case [$(#[$attr])*] $make,
            insert_then_get, get_many_keeps_order_and_missing, delete_removes,
            large_texts, unicode_texts, concurrent_inserts, ready_when_open,
            get_many_full_batch_with_missing, unsettled_settle_and_delete_many);
    };
    (@case [$($attr:tt)*] $make:expr $(,)?) => {};
    (@case [$($attr:tt)*] $make:expr, $name:ident $(, $rest:ident)*) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $($attr)*
        async fn $name() {
                let fixture = $make.await;
                let store = std::sync::Arc::new(fixture.store);
                tokio::time::timeout(
                    $crate::common::STEP,
                    $crate::common::conformance::$name(store.clone()),
                )
                .await
                .expect("conformance case timed out");
                if let Ok(store) = std::sync::Arc::try_unwrap(store) {
                    nosqlsvc::store::TextStore::close(store).await;
                }
                drop(fixture.keep);
        }
        $crate::store_conformance!(@case [$($attr)*] $make $(, $rest)*);
    };
}

/// The HTTP suite against a running nosqlsvc, one `#[tokio::test]` per case.
/// `$make` is an async expression giving a `ConfigFixture`; attributes as for
/// [`store_conformance`].
#[macro_export]
macro_rules! http_conformance {
    ($make:expr $(, #[$attr:meta])*) => {
        $crate::http_conformance!(@case [$(#[$attr])*] $make,
            insert_get_delete, batch_get, bad_inserts, body_over_limit, routing_errors,
            health_ok, unicode_over_http, escaped_large_text, text_at_body_limit,
            concurrent_http_inserts, sweep_endpoints,
            persists_across_restart, survives_clients_hanging_up, survives_truncated_bodies);
    };
    (@case [$($attr:tt)*] $make:expr $(,)?) => {};
    (@case [$($attr:tt)*] $make:expr, $name:ident $(, $rest:ident)*) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $($attr)*
        async fn $name() {
                let fixture = $make.await;
                tokio::time::timeout(
                    std::time::Duration::from_secs(120),
                    $crate::common::http_suite::$name(fixture.config.clone()),
                )
                .await
                .expect("http case timed out");
                drop(fixture.keep);
        }
        $crate::http_conformance!(@case [$($attr)*] $make $(, $rest)*);
    };
}
