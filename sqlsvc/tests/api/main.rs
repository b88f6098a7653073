//! Integration tests of sqlsvc over real sockets: one binary, one module per concern.

// Helpers outside #[test] functions panic on purpose: a failed step fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod concurrency;
mod create;
mod deletions;
mod lifecycle;
mod list;
mod read_delete;
