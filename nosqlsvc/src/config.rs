//! The service's typed configuration, validated before the backend is opened.

use std::path::PathBuf;

use crate::error::Error;
use crate::mongo::MongoConfig;

/// Where the service listens by default (the launcher binds).
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:5005";

/// Default request body limit: room for a 512 KiB text even fully JSON-escaped
/// (`\uXXXX` is 6 bytes per byte of text, plus slack).
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Default bound on the embedded store's page cache and write buffer together
/// (redb's own default is 1 GiB, which lets the process grow with the data). Pages
/// it drops are read again through the operating system's file cache.
pub const DEFAULT_EMBEDDED_CACHE_BYTES: usize = contract::defaults::EMBEDDED_CACHE_BYTES;

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which store holds the texts.
    pub backend: BackendConfig,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Limits of the accept loop.
    pub server: httpkit::ServerConfig,
}

/// Which store holds the texts.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// One redb file; its parent directories are created. `cache_bytes` bounds the
    /// store's page cache and write buffer together, whatever the data size.
    Embedded { path: PathBuf, cache_bytes: usize },
    /// A MongoDB server or replica set, through the official driver.
    MongoDb(MongoConfig),
}

impl Config {
    /// The embedded backend at `path` with default limits.
    pub fn embedded(path: impl Into<PathBuf>) -> Self {
        Self {
            backend: BackendConfig::Embedded {
                path: path.into(),
                cache_bytes: DEFAULT_EMBEDDED_CACHE_BYTES,
            },
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            server: httpkit::ServerConfig::default(),
        }
    }

    /// MongoDB at `uri` with default settings and limits.
    pub fn mongodb(uri: impl Into<String>) -> Self {
        Self {
            backend: BackendConfig::MongoDb(MongoConfig::new(uri)),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            server: httpkit::ServerConfig::default(),
        }
    }

    /// Rejects values the service cannot run with, naming the setting.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.max_body_bytes == 0 {
            return Err(Error::InvalidConfig {
                setting: "max_body_bytes",
                reason: "must be greater than 0".into(),
            });
        }
        match &self.backend {
            BackendConfig::Embedded { path, .. } => {
                if path.as_os_str().is_empty() {
                    return Err(Error::InvalidConfig {
                        setting: "backend.path",
                        reason: "must not be empty".into(),
                    });
                }
            }
            BackendConfig::MongoDb(mongo) => {
                for (setting, value) in [
                    ("backend.uri", &mongo.uri),
                    ("backend.database", &mongo.database),
                    ("backend.collection", &mongo.collection),
                ] {
                    if value.is_empty() {
                        return Err(Error::InvalidConfig {
                            setting,
                            reason: "must not be empty".into(),
                        });
                    }
                }
                if mongo.server_selection_timeout.is_zero() {
                    return Err(Error::InvalidConfig {
                        setting: "backend.server_selection_timeout",
                        reason: "must be greater than 0".into(),
                    });
                }
            }
        }
        Ok(())
    }
}
