//! `reload_on_sighup`: a SIGHUP re-reads the backends file and publishes the list. In
//! its own test binary, because the signal goes to the whole test process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::sync::watch;

#[tokio::test]
async fn sighup_rereads_the_backends_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backends");
    std::fs::write(&path, "127.0.0.1:4000\n").unwrap();
    let initial = lb::reload::read_backends_file(&path).unwrap();
    let (tx, mut rx) = watch::channel(initial);
    let task = tokio::spawn(lb::reload::reload_on_sighup(path.clone(), tx));
    // Let the task install its handler before the signal is sent.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let hup = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };

    std::fs::write(&path, "127.0.0.1:4000\n127.0.0.1:4001 # new\n").unwrap();
    hup();
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        *rx.borrow_and_update(),
        ["127.0.0.1:4000", "127.0.0.1:4001"]
    );

    // A bad file keeps the current list: nothing is sent.
    std::fs::write(&path, "http://bad/\n").unwrap();
    hup();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.changed())
            .await
            .is_err()
    );

    // Dropping the receiver ends the task.
    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
