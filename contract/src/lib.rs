//! The contracts of the internal services, written once and used by both sides:
//! the servers (sqlsvc, nosqlsvc) decode and answer with these types, and the
//! callers (the Read and Write APIs, the webserver) call through these clients.
//!
//! - [`ids`]: [`PasteId`] and [`PastePath`], newtypes with one validator each.
//! - [`meta`]: sqlsvc (paste metadata): wire types and [`MetaClient`].
//! - [`text`]: nosqlsvc (paste texts): wire types and [`TextClient`].
//! - [`error`]: [`CallError`], the one meaning of each answer status.
//!
//! A caller never builds an internal URL nor compares a status number: the clients
//! own the URLs, and every failure arrives as a [`CallError`] variant. The crate
//! links no storage engine (SQLite, redb, MongoDB), so callers do not either.
//!
//! Adding an endpoint: its request/answer types in the service's module (used by the
//! server's handler too), one client method that builds the URL from typed arguments
//! and returns `Result<_, CallError>`, and a test of it in `tests/clients.rs`
//! against a real local server. A status with a new meaning gets a `CallError`
//! variant, so every `match` on it must decide what it means.

pub mod defaults;
pub mod error;
pub mod ids;
pub mod meta;
pub mod text;

pub use error::CallError;
pub use httpkit::{ClientConfig, JsonClient};
pub use ids::{PasteId, PastePath};
pub use meta::MetaClient;
pub use text::TextClient;

/// Where the internal services are: base URLs such as `http://127.0.0.1:5004`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    pub sqlsvc: String,
    pub nosqlsvc: String,
}

impl Upstreams {
    /// Both clients, sharing one connection pool.
    pub fn clients(&self, http: JsonClient) -> (MetaClient, TextClient) {
        (
            MetaClient::new(http.clone(), self.sqlsvc.clone()),
            TextClient::new(http, self.nosqlsvc.clone()),
        )
    }
}

/// One internal service as its clients call it: the pooled HTTP client and the
/// service's base URL. Each typed client holds one and builds every URL with `url`.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) http: JsonClient,
    base: String,
}

impl Endpoint {
    pub(crate) fn new(http: JsonClient, base: impl Into<String>) -> Self {
        Self {
            http,
            base: base.into(),
        }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn url(&self, path: std::fmt::Arguments<'_>) -> String {
        format!("{}{path}", self.base)
    }
}
