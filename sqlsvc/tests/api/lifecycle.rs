//! Startup, clean shutdown and persistence across restarts.

use crate::helpers::{spawn_app, spawn_app_in};

#[tokio::test]
async fn data_survives_a_restart() {
    let app = spawn_app().await;
    let kept = app.create("kept").await;
    let deleted = app.create("deleted").await;
    let path = format!("/pastes/{}", deleted.paste_id);
    assert_eq!(app.request("DELETE", &path, None).await.0, 200);
    let db_path = app.db_path.clone();
    let dir = app.stop().await;
    // A clean close checkpoints the WAL into the main file and removes it.
    assert!(db_path.exists());
    assert!(!db_path.with_extension("db-wal").exists());

    let app = spawn_app_in(dir).await;
    let (status, body) = app.get(&format!("/pastes/{}", kept.paste_id)).await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::to_value(&kept).unwrap());
    assert_eq!(app.get(&path).await.0, 404);
    // New rows still sort after the old ones.
    let newer = app.create("newer").await;
    let (_, page) = app.get("/pastes").await;
    let ids: Vec<_> = page["pastes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["paste_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [newer.paste_id.to_string(), kept.paste_id.to_string()]);
    app.stop().await;
}

#[tokio::test]
async fn startup_failures_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = |db_path| sqlsvc::Config {
        db_path,
        readers: sqlsvc::default_readers(),
        server: httpkit::ServerConfig::default(),
        sweeper: None,
    };

    // The parent "directory" is a file.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let (listener, _) = httpkit::server::bind_ephemeral().await.unwrap();
    let err = sqlsvc::run(listener, config(file.join("db.sqlite")), async {})
        .await
        .unwrap_err();
    assert!(matches!(err, sqlsvc::Error::CreateDir { .. }), "{err}");

    // Not a database.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, "this is not a database. ".repeat(200)).unwrap();
    let (listener, _) = httpkit::server::bind_ephemeral().await.unwrap();
    let err = sqlsvc::run(listener, config(garbage), async {})
        .await
        .unwrap_err();
    assert!(matches!(err, sqlsvc::Error::Open { .. }), "{err}");

    // A schema from the future.
    let newer = dir.path().join("newer.db");
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    let (listener, _) = httpkit::server::bind_ephemeral().await.unwrap();
    let err = sqlsvc::run(listener, config(newer), async {})
        .await
        .unwrap_err();
    assert!(matches!(err, sqlsvc::Error::Migration(_)), "{err}");
    assert!(err.to_string().contains("newer"), "{err}");
}
