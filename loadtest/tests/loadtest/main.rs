//! Integration tests of the generator over real sockets on port 0: fake servers that
//! stall, lie or vanish. (The end-to-end sweep against spawned stacks: tests/e2e.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod basics;
mod co;
mod fakes;
mod mismatch;
