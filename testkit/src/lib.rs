//! Test scaffolding, written once and used by every crate's tests (a dev-dependency
//! only, never shipped): an HTTP client whose answers carry `json()` and
//! `assert_error()`, raw socket exchanges for what a client library hides, a server
//! task on a port-0 listener stopped by a oneshot, the launcher's announcement
//! reader, the `pastebin` binary and whole stacks (`pastebin up`) started as real
//! processes, addresses that refuse connections without racing other tests for the
//! port, polling with generous deadlines instead of sleeps, and fake webservers.

// Test support: a panic is how a failed check is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod announce;
pub mod client;
pub mod fake;
pub mod needs;
pub mod net;
pub mod procs;
pub mod raw;
pub mod spawn;
pub mod stack;
pub mod time;
pub mod wait;

pub use client::{Answer, Client};
pub use net::Refusing;
pub use spawn::Spawned;
pub use stack::{Launch, Process, Stack};
pub use wait::eventually;
