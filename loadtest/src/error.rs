//! The crate's error type and its one exhaustive mapping to process exit codes.

use std::fmt;

/// Why a load test could not run (errors *during* a run are counted, not raised).
#[derive(Debug)]
pub enum LoadError {
    /// A flag or a combination of flags makes no sense; names the flag.
    Config(String),
    /// The target URL cannot be parsed or resolved.
    Target(String),
    /// The stack could not be started or stopped.
    Spawn(String),
    /// Writing a result file (JSON, CSV, SVG) failed.
    Output(String),
    /// The run was interrupted (Ctrl-C) before it produced results.
    Interrupted,
}

impl LoadError {
    /// The process exit code for this error: 2 for usage errors, as clap does.
    pub fn exit_code(&self) -> u8 {
        match self {
            LoadError::Config(_) => 2,
            LoadError::Target(_) => 2,
            LoadError::Spawn(_) => 1,
            LoadError::Output(_) => 1,
            LoadError::Interrupted => 130,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Config(msg) => write!(f, "invalid setting: {msg}"),
            LoadError::Target(msg) => write!(f, "bad target: {msg}"),
            LoadError::Spawn(msg) => write!(f, "stack: {msg}"),
            LoadError::Output(msg) => write!(f, "output: {msg}"),
            LoadError::Interrupted => write!(f, "interrupted"),
        }
    }
}

impl std::error::Error for LoadError {}
