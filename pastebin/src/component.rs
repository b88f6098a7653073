//! Running one component in this process: bind, announce the bound address on stdout
//! (so a launcher can use port 0), serve until a signal (or, under a launcher, until
//! standard input closes).

use httpkit::ServerConfig;
use std::io::Read;
use tokio::net::TcpListener;

use launcher::config::{NosqlBackend, Settings};
use launcher::{Kind, LISTENING};

/// The balancer's own checks of the settings (its fixed connect timeout nests in the
/// response timeout, trusted proxies parse), at start, so a bad value is a usage
/// error rather than a balancer that fails on every restart. Here and not in
/// `Settings::load` because the launcher crate does not link the balancer.
pub fn check_balancer(settings: &Settings) -> Result<(), String> {
    let mut lb = lb::Config::new(Vec::new());
    lb.response_timeout = settings.lb_response_timeout;
    lb.retry.budget = settings.lb_total_timeout;
    lb.trusted_proxies.clone_from(&settings.lb_trusted_proxies);
    lb.validate().map_err(|err| {
        format!(
            "load balancer (--lb-response-timeout-ms, --lb-total-timeout-ms, --lb-trusted-proxy, [lb]): {err}"
        )
    })
}

/// Runs `kind` until shutdown.
pub async fn run(
    kind: Kind,
    settings: &Settings,
    listen: Option<String>,
    exit_with_parent: bool,
) -> Result<(), String> {
    let addr = listen.unwrap_or_else(|| match kind {
        Kind::Lb => settings.lb_listen.clone(),
        Kind::Web => settings.webservers[0].clone(),
        Kind::Sqlsvc => settings.sqlsvc.clone(),
        Kind::Nosqlsvc => settings.nosqlsvc.clone(),
    });
    let listener = TcpListener::bind(&addr).await.map_err(|err| {
        let hint = if err.kind() == std::io::ErrorKind::AddrInUse {
            "; another program holds that port: move every port of the stack with \
             --port-offset N (PASTEBIN_PORT_OFFSET, port_offset in the config file)"
        } else {
            ""
        };
        format!("{}: cannot listen on {addr}: {err}{hint}", kind.name())
    })?;
    let local = listener
        .local_addr()
        .map_err(|err| format!("{}: {err}", kind.name()))?;
    // Announced once the component is ready for what its launcher may do next (the
    // balancer's SIGHUP handler, for one).
    let announce = || {
        println!("{LISTENING}{local}");
        tracing::info!(component = kind.name(), addr = %local, "listening");
    };

    let shutdown = shutdown(exit_with_parent);
    let server = ServerConfig::default();
    match kind {
        Kind::Sqlsvc => {
            if let Some(parent) = settings.sqlite_path().parent() {
                create_dir(parent)?;
            }
            let mut sweep = sqlsvc::SweepConfig::new(&settings.nosqlsvc);
            sweep.interval = settings.sweep_interval;
            sweep.orphan_grace = settings.orphan_grace;
            let config = sqlsvc::Config {
                db_path: settings.sqlite_path(),
                readers: settings.sqlsvc_readers,
                server,
                sweeper: Some(sweep),
            };
            announce();
            sqlsvc::run(listener, config, shutdown)
                .await
                .map_err(|err| format!("sqlsvc: {err}"))
        }
        Kind::Nosqlsvc => {
            let backend = match &settings.nosql_backend {
                NosqlBackend::Embedded => {
                    create_dir(&settings.data_dir)?;
                    nosqlsvc::BackendConfig::Embedded {
                        path: settings.text_store_path(),
                        cache_bytes: settings.nosql_cache_bytes,
                    }
                }
                NosqlBackend::MongoDb(m) => {
                    let mut mongo = nosqlsvc::MongoConfig::new(m.uri.clone());
                    mongo.database.clone_from(&m.database);
                    mongo.collection.clone_from(&m.collection);
                    mongo.pool_size = m.pool_size;
                    mongo.server_selection_timeout = std::time::Duration::from_millis(m.timeout_ms);
                    mongo.write_concern = nosqlsvc::MongoWriteConcern {
                        w: match m.w.parse::<u32>() {
                            Ok(n) => nosqlsvc::WriteAck::Nodes(n),
                            Err(_) => nosqlsvc::WriteAck::Majority,
                        },
                        journal: m.journal,
                    };
                    nosqlsvc::BackendConfig::MongoDb(mongo)
                }
            };
            let config = nosqlsvc::Config {
                backend,
                // A text of max_body_bytes, JSON-escaped (up to 6x), or a batch read.
                max_body_bytes: httpkit::limits::text_store_body_bytes(settings.max_body_bytes),
                server,
            };
            announce();
            nosqlsvc::run(listener, config, shutdown)
                .await
                .map_err(|err| format!("nosqlsvc: {err}"))
        }
        Kind::Web => {
            let mut config = web::Config::new(settings.sqlsvc.clone(), settings.nosqlsvc.clone());
            config.max_body_bytes = settings.max_body_bytes;
            config.public_url = settings.public_url.clone();
            config.cache_bytes = settings.cache_bytes;
            config.cache_prefetch = settings.cache_prefetch;
            config.store_timeout = settings.web_store_timeout;
            config.max_expires_in = settings.max_expires_in;
            config.default_expires_in = settings.default_expires_in;
            config.server = server;
            announce();
            web::run(listener, config, shutdown)
                .await
                .map_err(|err| format!("web: {err}"))
        }
        Kind::Lb => {
            let backends = match &settings.lb_backends_file {
                Some(path) => {
                    lb::reload::read_backends_file(path).map_err(|err| format!("lb: {err}"))?
                }
                None => settings.webservers.clone(),
            };
            let mut config = lb::Config::new(backends.clone());
            config.max_body_bytes = settings.max_body_bytes;
            config.server = server;
            config.response_timeout = settings.lb_response_timeout;
            config.retry.budget = settings.lb_total_timeout;
            config
                .trusted_proxies
                .clone_from(&settings.lb_trusted_proxies);
            config.fallback_host = fallback_host(settings.public_url.as_deref(), local);
            match settings.lb_backends_file.clone() {
                Some(path) => {
                    let (tx, reload) = tokio::sync::watch::channel(backends);
                    // Installed before the launcher hears of us: a SIGHUP it sends at
                    // once must reload, not kill, the balancer.
                    let reloader = lb::reload::sighup_reloader(path, tx)
                        .map_err(|err| format!("lb: cannot listen for SIGHUP: {err}"))?;
                    tokio::spawn(reloader);
                    announce();
                    lb::run_with_reload(listener, config, reload, shutdown).await
                }
                None => {
                    announce();
                    lb::run(listener, config, shutdown).await
                }
            }
            .map_err(|err| format!("lb: {err}"))
        }
    }
}

/// The host links name when a request names none: the public URL's, else the
/// balancer's own address unless it listens on every interface (then such a request
/// gets 400 rather than a link nobody can use).
fn fallback_host(public_url: Option<&str>, local: std::net::SocketAddr) -> Option<String> {
    if let Some(url) = public_url {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let host = rest.split('/').next().unwrap_or("");
        return lb::usable_host(host).then(|| host.to_owned());
    }
    (!local.ip().is_unspecified()).then(|| local.to_string())
}

fn create_dir(dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|err| format!("cannot create data directory {}: {err}", dir.display()))
}

/// SIGINT/SIGTERM, or standard input closing when `exit_with_parent` is set.
async fn shutdown(exit_with_parent: bool) {
    {
        let parent_gone = async {
            if !exit_with_parent {
                return std::future::pending::<()>().await;
            }
            // A plain thread, not the runtime's blocking pool: a read blocked on stdin
            // would keep the runtime from shutting down.
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let spawned = std::thread::Builder::new()
                .name("parent-watch".into())
                .spawn(move || {
                    let mut stdin = std::io::stdin().lock();
                    let mut buf = [0u8; 64];
                    loop {
                        match stdin.read(&mut buf) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(err) => {
                                tracing::warn!(%err, "reading stdin failed");
                                break;
                            }
                        }
                    }
                    let _ = tx.send(());
                });
            if let Err(err) = spawned {
                tracing::warn!(%err, "cannot watch the launcher; not exiting with it");
                return std::future::pending::<()>().await;
            }
            let _ = rx.await;
            tracing::info!("launcher is gone; shutting down");
        };
        tokio::select! {
            () = httpkit::shutdown_signal() => {}
            () = parent_gone => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_balancer;
    use launcher::config::{Overrides, Settings};

    fn check(over: &Overrides) -> Result<(), String> {
        check_balancer(&Settings::load(over).map_err(|err| err.0)?)
    }

    #[test]
    fn the_balancers_own_checks_run_at_start() {
        check(&Overrides::default()).unwrap();
        // The balancer's connect timeout (1 s) must nest in its response timeout.
        let over = Overrides {
            web_store_timeout_ms: Some(500),
            lb_response_timeout_ms: Some(1_000),
            lb_total_timeout_ms: Some(3_000),
            ..Overrides::default()
        };
        let err = check(&over).unwrap_err();
        assert!(
            err.contains("connect_timeout") && err.contains("--lb-response-timeout-ms"),
            "{err}"
        );
        let over = Overrides {
            lb_trusted_proxies: vec!["not an ip".into()],
            ..Overrides::default()
        };
        let err = check(&over).unwrap_err();
        assert!(err.contains("--lb-trusted-proxy"), "{err}");
    }
}
