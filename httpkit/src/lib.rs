//! What every pastebin server shares: the accept loop, body and JSON helpers, the
//! pooled JSON client that services use to call each other, shutdown and logging.

pub mod body;
pub mod client;
pub mod framing;
pub mod io;
pub mod limits;
pub mod logging;
pub mod server;
pub mod shutdown;
pub mod timeouts;

pub use body::{
    BODY_READ_TIMEOUT, Body, BodyError, closing, empty, error_response, full, json_response,
    nosniff, read_body, read_body_within,
};
pub use client::{ClientConfig, ClientError, JsonClient, error_chain};
pub use server::{Handler, ServerConfig, serve};
pub use shutdown::{BoxFuture, Shutdown, shutdown_signal};

/// The error type boxed bodies carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
