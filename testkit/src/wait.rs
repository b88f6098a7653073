//! Waiting for a condition instead of sleeping and hoping: poll until it holds, and
//! fail with a message naming it after a generous deadline (the machine running the
//! tests may be busy; a condition that never holds still fails the test).

use std::future::Future;
use std::time::Duration;

/// The default deadline for [`eventually`]: long enough for a loaded 2-core machine
/// (CI runs three test binaries at once, each starting whole stacks, beside whatever
/// else the machine does), short enough that a broken test ends. Only a failing test
/// ever waits this long.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` every 20 ms until it returns `Some`, and returns that; panics
/// naming `what` after `within`.
pub async fn eventually_within<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`eventually_within`] with the default [`DEADLINE`], for a boolean condition.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_within(what, DEADLINE, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}
