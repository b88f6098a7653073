//! End-to-end tests of the public API: a whole stack (sqlsvc, nosqlsvc, two
//! webservers, the balancer) in this process, on port 0 listeners, driven over HTTP
//! through the balancer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod create;
mod errors;
mod faults;
mod helpers;
mod lifecycle;
mod list;
mod mapping;
mod pages_lifecycle;
mod read;
