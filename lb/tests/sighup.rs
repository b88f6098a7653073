//! `sighup_reloader`: a SIGHUP re-reads the backends file and publishes the list. In
//! its own test binary, because the signal goes to the whole test process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::time::Duration;

use tokio::sync::watch;

fn hup() {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_backends_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backends");
    std::fs::write(&path, "127.0.0.1:4000\n").unwrap();
    let initial = lb::reload::read_backends_file(&path).unwrap();
    let (tx, mut rx) = watch::channel(initial);

    // The handler is installed when `sighup_reloader` returns: a SIGHUP sent before
    // the loop is first polled is neither lost nor fatal.
    let reloader = lb::reload::sighup_reloader(path.clone(), tx).unwrap();
    std::fs::write(&path, "127.0.0.1:4000\n127.0.0.1:4001 # new\n").unwrap();
    hup();
    let task = tokio::spawn(reloader);
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        *rx.borrow_and_update(),
        ["127.0.0.1:4000", "127.0.0.1:4001"]
    );

    // A bad file keeps the current list. The file is a FIFO, so the test knows when
    // the reloader reads it: opening it for writing waits for the reader.
    std::fs::remove_file(&path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    hup();
    let fifo = path.clone();
    let mut writer = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(&fifo)?;
        f.write_all(b"http://bad/\n")
    });
    match tokio::time::timeout(Duration::from_secs(5), &mut writer).await {
        Ok(written) => written.unwrap().unwrap(),
        Err(_) => {
            // Release the blocked writer before failing.
            let _ = std::fs::File::open(&path);
            panic!("the SIGHUP was not handled: the backends file was never read");
        }
    }
    // The reloader has read the bad file; had it sent anything, it would be now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !rx.has_changed().unwrap(),
        "a bad file was published: {:?}",
        *rx.borrow()
    );

    // And it still reloads afterwards.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "127.0.0.1:4002\n").unwrap();
    hup();
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*rx.borrow_and_update(), ["127.0.0.1:4002"]);

    // Dropping the receiver ends the task.
    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
