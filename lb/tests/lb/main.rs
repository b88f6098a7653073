//! Integration tests of the balancer over loopback sockets, against in-process fake
//! webservers.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod balancing;
mod defaults;
mod hardening;
mod proxy;
mod support;
