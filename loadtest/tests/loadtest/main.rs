//! Integration tests of the generator over real sockets on port 0: fake servers that
//! stall, lie or vanish, and a short end-to-end sweep against a spawned stack.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod basics;
mod co;
mod e2e;
mod fakes;
mod mismatch;
