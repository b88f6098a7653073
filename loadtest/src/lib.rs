//! loadtest: a load generator for the pastebin stack that people can trust as they
//! trust wrk: keep-alive HTTP/1.1 (its own wrk-like client loop, `wire`), closed and open loop (latencies corrected
//! for coordinated omission), HdrHistogram percentiles, correctness checks under load,
//! and scale sweeps over a stack it launches itself.

pub mod check;
pub mod dist;
pub mod error;
pub mod keys;
pub mod plan;
pub mod progress;
pub mod run;
pub mod stats;
pub mod target;
pub mod text;
pub mod wire;

pub use error::LoadError;
pub use plan::{Mix, RunPlan, Workload};
pub use run::{RunResult, run};
pub use stats::{ErrorKind, Kind, Percentiles, Stats};
pub use target::Target;

pub mod app;
pub mod cli;
pub mod hello;
pub mod hosts;
pub mod report;
pub mod stack;
pub mod sweep;
