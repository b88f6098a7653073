//! A MongoDB server that is down at startup: the service starts, reports not ready,
//! answers 503, and recovers by itself once the server is reachable.

use std::time::Duration;

use http::StatusCode;
use nosqlsvc::mongo::{MongoConfig, WriteAck};
use nosqlsvc::{BackendConfig, Config};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::common::TestApp;
use crate::common::client::{get, post_json};
use crate::{DropCollection, mongo_config, test_uri};

/// `host:port` of a plain single-host `mongodb://` URI.
fn upstream_addr(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("mongodb://")?;
    let hosts = rest.split(['/', '?']).next()?;
    let host = hosts.rsplit('@').next()?;
    (!host.contains(',')).then(|| host.to_owned())
}

/// Forwards every connection accepted on `listener` to `upstream`.
async fn proxy(listener: TcpListener, upstream: String) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if let Ok(mut server) = TcpStream::connect(&upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MongoDB/FerretDB: set PASTEBIN_TEST_MONGODB_URI (scripts/test.sh does)"]
async fn down_at_startup_then_recovers() {
    let uri = test_uri();
    let upstream = upstream_addr(&uri)
        .unwrap_or_else(|| panic!("the outage test needs a single-host mongodb:// URI, not {uri}"));
    // A port that refuses connections, and stays ours: the server is "down".
    let down = testkit::Refusing::new();
    let addr = down.addr;
    // A refused connection fails at once whatever the timeouts; once the server is
    // up they must not be so short that a heartbeat or a selection missed on a loaded
    // machine (FerretDB beside two other test binaries) turns the insert after the
    // recovery into a 503.
    let down_uri = format!("mongodb://{addr}/?connectTimeoutMS=5000&heartbeatFrequencyMS=500");
    let settings = MongoConfig {
        server_selection_timeout: Duration::from_secs(2),
        ..mongo_config(down_uri)
    };
    let _cleanup = DropCollection(MongoConfig {
        uri: uri.clone(),
        ..settings.clone()
    });
    let app = TestApp::spawn(Config {
        backend: BackendConfig::MongoDb(settings),
        ..Config::mongodb("unused")
    })
    .await;

    get(&app.url("/healthz"))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);
    post_json(&app.url("/texts"), &json!({ "text": "x" }))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);
    get(&app.url("/texts/0123456789abcdef01234567"))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(!app.is_finished(), "the service must keep running");

    // The server comes up on that address.
    let listener = down.listen();
    let forwarder = tokio::spawn(proxy(listener, upstream));
    testkit::eventually("nosqlsvc recovers once the server is up", || async {
        get(&app.url("/healthz")).await.status == StatusCode::OK
    })
    .await;
    let answer = post_json(&app.url("/texts"), &json!({ "text": "back" })).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let path = answer.json()["paste_path"].as_str().unwrap().to_owned();
    assert_eq!(path.len(), 24, "paths are ObjectId hex");
    let answer = get(&app.url(&format!("/texts/{path}"))).await;
    assert_eq!(answer.json()["text"], "back");
    app.stop().await.unwrap();
    forwarder.abort();
}

#[tokio::test]
async fn bad_settings_fail_startup() {
    let (listener, _) = httpkit::server::bind_ephemeral().await.unwrap();
    let err = nosqlsvc::run(
        listener,
        Config::mongodb("not a uri"),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, nosqlsvc::Error::MongoSetup(_)), "{err:?}");

    let mut settings = MongoConfig::new("mongodb://127.0.0.1:1");
    settings.write_concern.w = WriteAck::Nodes(0);
    let (listener, _) = httpkit::server::bind_ephemeral().await.unwrap();
    let config = Config {
        backend: BackendConfig::MongoDb(settings),
        ..Config::mongodb("unused")
    };
    let err = nosqlsvc::run(listener, config, std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("w must be"), "{err}");
}
