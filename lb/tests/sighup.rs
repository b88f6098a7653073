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

/// Whether a file descriptor of this process (the reloader runs here) is open on
/// `path`, from `/proc/self/fd`.
fn open_in_this_process(path: &std::path::Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is needed to see the reloader's open files")
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
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
    tokio::time::timeout(Duration::from_secs(30), rx.changed())
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
    // Each write below opens the FIFO, which waits until the reloader opens it to
    // read. The good file is written only once the reloader has closed the bad one
    // (see below), so anything it published from the bad one is visible by then.
    async fn feed(path: &std::path::Path, text: &'static str) -> std::fs::File {
        let fifo = path.to_owned();
        let mut writer = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new().write(true).open(&fifo)
        });
        let file = match tokio::time::timeout(Duration::from_secs(30), &mut writer).await {
            Ok(opened) => opened.unwrap().unwrap(),
            Err(_) => {
                // Release the blocked writer before failing.
                let _ = std::fs::File::open(path);
                panic!("the SIGHUP was not handled: the backends file was never read");
            }
        };
        (&file).write_all(text.as_bytes()).unwrap();
        file
    }
    hup();
    drop(feed(&path, "http://bad/\n").await); // closed: the reader sees its end
    // Wait until the reloader has closed the bad file. A FIFO opened for writing
    // while a reader still holds it open pairs with *that* reader: the good file's
    // text would be read as the rest of the bad one (both then dropped), and the
    // next SIGHUP's read would wait forever for a writer, blocking a runtime worker
    // and with it this test's timeouts (a CI-like run hung here).
    let fifo = std::fs::canonicalize(&path).unwrap();
    testkit::eventually("the reloader closes the bad file", || async {
        !open_in_this_process(&fifo)
    })
    .await;
    hup();
    let good = feed(&path, "127.0.0.1:4002\n").await;
    assert!(
        !rx.has_changed().unwrap(),
        "a bad file was published: {:?}",
        *rx.borrow()
    );
    drop(good);
    // And it still reloads afterwards.
    tokio::time::timeout(Duration::from_secs(30), rx.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*rx.borrow_and_update(), ["127.0.0.1:4002"]);

    // Dropping the receiver ends the task.
    drop(rx);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap();
}
