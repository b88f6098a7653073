//! The topology's configuration: a TOML file, overridden by environment variables,
//! overridden by flags; validated into `Settings` before anything binds, with errors
//! that name the setting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

/// Every setting, as a flag or an environment variable. Unset ones come from the
/// config file, then from the defaults.
#[derive(Args, Debug, Clone, Default)]
pub struct Overrides {
    /// TOML config file describing the topology (see README: Configuration).
    #[arg(long, env = "PASTEBIN_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Adds N to every port of the stack (balancer 3000, webservers 4000..,
    /// sqlsvc 5004, nosqlsvc 5005, or the ports configured instead); port 0 stays 0.
    #[arg(long, env = "PASTEBIN_PORT_OFFSET", global = true)]
    pub port_offset: Option<u16>,
    /// Directory holding the databases.
    #[arg(long, env = "PASTEBIN_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "PASTEBIN_MAX_BODY_BYTES", global = true)]
    pub max_body_bytes: Option<usize>,
    /// The load balancer's listen address.
    #[arg(long, env = "PASTEBIN_LB_LISTEN", global = true)]
    pub lb_listen: Option<String>,
    /// File listing the webservers (one host:port per line) that the balancer reads
    /// at start and again on SIGHUP.
    #[arg(long, env = "PASTEBIN_LB_BACKENDS_FILE", global = true)]
    pub lb_backends_file: Option<PathBuf>,
    /// How many webservers to run (scales the web tier).
    #[arg(long, env = "PASTEBIN_WEBSERVERS", global = true)]
    pub webservers: Option<usize>,
    /// Host the webservers listen on.
    #[arg(long, env = "PASTEBIN_WEB_HOST", global = true)]
    pub web_host: Option<String>,
    /// Port of the first webserver; webserver i listens on base + i (0: any free port).
    #[arg(long, env = "PASTEBIN_WEB_BASE_PORT", global = true)]
    pub web_base_port: Option<u16>,
    /// Explicit webserver addresses (repeat, or comma-separate in the variable);
    /// replaces the count / host / base port.
    #[arg(
        long = "webserver",
        env = "PASTEBIN_WEBSERVER_ADDRS",
        value_delimiter = ',',
        global = true
    )]
    pub webserver_addrs: Vec<String>,
    /// Public base URL used in links (default: from the request's Host).
    #[arg(long, env = "PASTEBIN_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Bytes of pastes (metadata and text) each webserver caches; 0 turns the cache off.
    #[arg(long, env = "PASTEBIN_CACHE_BYTES", global = true)]
    pub cache_bytes: Option<usize>,
    /// Whether each webserver's cache also takes the pastes the others create, before
    /// their first read there (true or false; default true).
    #[arg(long, env = "PASTEBIN_CACHE_PREFETCH", global = true)]
    pub cache_prefetch: Option<bool>,
    /// Reader connections of sqlsvc (default: one per core, at least 2).
    #[arg(long, env = "PASTEBIN_SQLSVC_READERS", global = true)]
    pub sqlsvc_readers: Option<usize>,
    /// sqlsvc's address (where it listens, and where webservers find it).
    #[arg(long, env = "PASTEBIN_SQLSVC", global = true)]
    pub sqlsvc: Option<String>,
    /// nosqlsvc's address (where it listens, and where webservers find it).
    #[arg(long, env = "PASTEBIN_NOSQLSVC", global = true)]
    pub nosqlsvc: Option<String>,
    /// Bytes of page cache and write buffer nosqlsvc's embedded store may hold.
    #[arg(long, env = "PASTEBIN_NOSQL_CACHE_BYTES", global = true)]
    pub nosql_cache_bytes: Option<usize>,
    /// Where nosqlsvc keeps texts: `embedded` (a file in the data directory) or `mongodb`.
    #[arg(long, env = "PASTEBIN_NOSQL_BACKEND", global = true)]
    pub nosql_backend: Option<String>,
    /// MongoDB connection string (with --nosql-backend mongodb).
    #[arg(long, env = "PASTEBIN_MONGODB_URI", global = true)]
    pub mongodb_uri: Option<String>,
    /// MongoDB database holding the texts.
    #[arg(long, env = "PASTEBIN_MONGODB_DATABASE", global = true)]
    pub mongodb_database: Option<String>,
    /// MongoDB collection of texts.
    #[arg(long, env = "PASTEBIN_MONGODB_COLLECTION", global = true)]
    pub mongodb_collection: Option<String>,
    /// Connections the MongoDB client opens per server, at most.
    #[arg(long, env = "PASTEBIN_MONGODB_POOL_SIZE", global = true)]
    pub mongodb_pool_size: Option<u32>,
    /// Write concern `w`: a number of nodes (at least 1) or `majority`.
    #[arg(long, env = "PASTEBIN_MONGODB_W", global = true)]
    pub mongodb_w: Option<String>,
    /// Write concern `j`: wait for the journal (true or false).
    #[arg(long, env = "PASTEBIN_MONGODB_JOURNAL", global = true)]
    pub mongodb_journal: Option<bool>,
    /// How long an operation waits for a usable MongoDB server before nosqlsvc
    /// answers 503, in milliseconds.
    #[arg(long, env = "PASTEBIN_MONGODB_TIMEOUT_MS", global = true)]
    pub mongodb_timeout_ms: Option<u64>,
    /// Seconds between two runs of sqlsvc's sweeper (expired pastes, texts of removed
    /// pastes, orphaned texts); fractions allowed. Default 60.
    #[arg(long, env = "PASTEBIN_SWEEP_INTERVAL", global = true)]
    pub sweep_interval: Option<f64>,
    /// Seconds a text must have existed, with no paste pointing at it, before the
    /// sweeper deletes it as orphaned (a create that failed between its two steps).
    /// Default 600.
    #[arg(long, env = "PASTEBIN_ORPHAN_GRACE", global = true)]
    pub orphan_grace: Option<f64>,
    /// The longest `expires_in` a create may ask for, in seconds. Default 10 years.
    #[arg(long, env = "PASTEBIN_MAX_EXPIRES_IN", global = true)]
    pub max_expires_in: Option<u64>,
    /// The lifetime, in seconds, of a paste created without `expires_in`. Default:
    /// none (it never expires).
    #[arg(long, env = "PASTEBIN_DEFAULT_EXPIRES_IN", global = true)]
    pub default_expires_in: Option<u64>,
    /// Time one webserver request may spend on store calls, in milliseconds (then
    /// 504); clearly shorter than --lb-response-timeout-ms.
    #[arg(long, env = "PASTEBIN_WEB_STORE_TIMEOUT_MS", global = true)]
    pub web_store_timeout_ms: Option<u64>,
    /// Runtime threads of each webserver (1: a single-threaded runtime). Default:
    /// `pastebin up` shares the machine's cores among the webservers it runs on it
    /// (on emulated hosts: a host's CPU budget, rounded up); a webserver started on
    /// its own uses every core.
    #[arg(long, env = "PASTEBIN_WEB_THREADS", global = true)]
    pub web_threads: Option<usize>,
    /// The CPUs a webserver runs on, e.g. `0`, `0,2` or `0-3` (its threads are
    /// pinned to them). Default: `pastebin up` pins each of the webservers it runs on
    /// one machine to its own share of the cores (see --web-pin-cpus); a webserver
    /// started on its own runs anywhere.
    #[arg(long, env = "PASTEBIN_WEB_CPUS", global = true)]
    pub web_cpus: Option<String>,
    /// The CPUs this one process runs on (for `lb`, `web`, `sqlsvc`, `nosqlsvc`; the
    /// launcher sets it for the processes it pins). Not read from the environment,
    /// so children do not inherit it.
    #[arg(long, global = true)]
    pub cpus: Option<String>,
    /// Whether `pastebin up` pins each webserver it runs to its own share of the
    /// cores when there are several, and with --emulate-hosts runs the webservers'
    /// hosts on half of the cores and the other hosts on the rest (true or false;
    /// default true).
    #[arg(long, env = "PASTEBIN_WEB_PIN_CPUS", global = true)]
    pub web_pin_cpus: Option<bool>,
    /// Time the balancer waits for a webserver's answer, in milliseconds; clearly
    /// shorter than --lb-total-timeout-ms.
    #[arg(long, env = "PASTEBIN_LB_RESPONSE_TIMEOUT_MS", global = true)]
    pub lb_response_timeout_ms: Option<u64>,
    /// Time the balancer spends on one request in all (retries included), in
    /// milliseconds.
    #[arg(long, env = "PASTEBIN_LB_TOTAL_TIMEOUT_MS", global = true)]
    pub lb_total_timeout_ms: Option<u64>,
    /// A client whose forwarding headers (X-Forwarded-For...) the balancer believes:
    /// an address or a CIDR block (repeat, or comma-separate in the variable).
    #[arg(
        long = "lb-trusted-proxy",
        env = "PASTEBIN_LB_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub lb_trusted_proxies: Vec<String>,
}

/// `pastebin up`'s emulated hosts (see README: Emulated hosts).
#[derive(Args, Debug, Clone, Default)]
pub struct EmulateArgs {
    /// Run every component on an emulated host of its own: its own network namespace
    /// and address (198.18.0.0/15) on a bridge, optionally its own CPU budget. Needs root.
    #[arg(long)]
    pub emulate_hosts: bool,
    /// CPU budget of each emulated host of a role, in cores: web=0.25 (every
    /// webserver host), lb=1, sqlsvc=0.5, nosqlsvc=0.5. Repeat or comma-separate.
    #[arg(long = "host-cpu", value_delimiter = ',', value_name = "ROLE=CORES")]
    pub host_cpu: Vec<String>,
}

/// CPU budgets per emulated host of each role, in cores; `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HostCpu {
    pub lb: Option<f64>,
    pub web: Option<f64>,
    pub sqlsvc: Option<f64>,
    pub nosqlsvc: Option<f64>,
}

impl HostCpu {
    /// The budget of a host running `kind`.
    pub fn of(&self, kind: crate::Kind) -> Option<f64> {
        use crate::Kind;
        match kind {
            Kind::Lb => self.lb,
            Kind::Web => self.web,
            Kind::Sqlsvc => self.sqlsvc,
            Kind::Nosqlsvc => self.nosqlsvc,
        }
    }

    pub fn any(&self) -> bool {
        [self.lb, self.web, self.sqlsvc, self.nosqlsvc]
            .iter()
            .any(Option::is_some)
    }
}

impl EmulateArgs {
    /// The budgets, when hosts are emulated; `None` when they are not.
    pub fn resolve(&self) -> Result<Option<HostCpu>, ConfigError> {
        if !self.emulate_hosts {
            if !self.host_cpu.is_empty() {
                return Err(ConfigError(
                    "host cpu budgets (--host-cpu) need --emulate-hosts".into(),
                ));
            }
            return Ok(None);
        }
        let mut cpu = HostCpu::default();
        for item in &self.host_cpu {
            let bad = || {
                ConfigError(format!(
                    "host cpu budget (--host-cpu) must be ROLE=CORES with ROLE lb, web, sqlsvc or nosqlsvc and CORES from 0.01 to 1024, not {item:?}"
                ))
            };
            let (role, cores) = item.split_once('=').ok_or_else(bad)?;
            let cores: f64 = cores.trim().parse().map_err(|_| bad())?;
            if !(0.01..=1024.0).contains(&cores) {
                return Err(bad());
            }
            let slot = match role.trim() {
                "lb" => &mut cpu.lb,
                "web" => &mut cpu.web,
                "sqlsvc" => &mut cpu.sqlsvc,
                "nosqlsvc" => &mut cpu.nosqlsvc,
                _ => return Err(bad()),
            };
            *slot = Some(cores);
        }
        Ok(Some(cpu))
    }
}

/// The config file. Every field is optional; see `Settings` for the defaults.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    port_offset: Option<u16>,
    data_dir: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    #[serde(default)]
    lb: LbFile,
    #[serde(default)]
    web: WebFile,
    #[serde(default)]
    sqlsvc: ServiceFile,
    #[serde(default)]
    nosqlsvc: NosqlFile,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct LbFile {
    listen: Option<String>,
    backends_file: Option<PathBuf>,
    response_timeout_ms: Option<u64>,
    total_timeout_ms: Option<u64>,
    trusted_proxies: Option<Vec<String>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct WebFile {
    count: Option<usize>,
    host: Option<String>,
    base_port: Option<u16>,
    addrs: Option<Vec<String>>,
    public_url: Option<String>,
    cache_bytes: Option<usize>,
    cache_prefetch: Option<bool>,
    store_timeout_ms: Option<u64>,
    threads: Option<usize>,
    cpus: Option<String>,
    pin_cpus: Option<bool>,
    max_expires_in: Option<u64>,
    default_expires_in: Option<u64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    listen: Option<String>,
    readers: Option<usize>,
    sweep_interval: Option<f64>,
    orphan_grace: Option<f64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct NosqlFile {
    listen: Option<String>,
    backend: Option<String>,
    cache_bytes: Option<usize>,
    mongodb_uri: Option<String>,
    mongodb_database: Option<String>,
    mongodb_collection: Option<String>,
    mongodb_pool_size: Option<u32>,
    mongodb_w: Option<String>,
    mongodb_journal: Option<bool>,
    mongodb_timeout_ms: Option<u64>,
}

/// Where nosqlsvc keeps the texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NosqlBackend {
    /// A redb file in the data directory.
    Embedded,
    /// A MongoDB deployment (or anything speaking its wire protocol).
    MongoDb(MongoSettings),
}

/// How nosqlsvc uses MongoDB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MongoSettings {
    pub uri: String,
    pub database: String,
    pub collection: String,
    pub pool_size: u32,
    /// `w`: a number of nodes, or `majority`.
    pub w: String,
    pub journal: bool,
    pub timeout_ms: u64,
}

impl MongoSettings {
    /// The same settings as flags, for a child process.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--nosql-backend".into(),
            "mongodb".into(),
            "--mongodb-uri".into(),
            self.uri.clone(),
            "--mongodb-database".into(),
            self.database.clone(),
            "--mongodb-collection".into(),
            self.collection.clone(),
            "--mongodb-pool-size".into(),
            self.pool_size.to_string(),
            "--mongodb-w".into(),
            self.w.clone(),
            "--mongodb-journal".into(),
            self.journal.to_string(),
            "--mongodb-timeout-ms".into(),
            self.timeout_ms.to_string(),
        ]
    }
}

/// The resolved, validated topology.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub max_body_bytes: usize,
    pub lb_listen: String,
    pub webservers: Vec<String>,
    pub public_url: Option<String>,
    pub cache_bytes: usize,
    /// Whether webservers cache the pastes the others create (`read::prefetch`).
    pub cache_prefetch: bool,
    pub sqlsvc: String,
    /// Reader connections of sqlsvc.
    pub sqlsvc_readers: usize,
    pub nosqlsvc: String,
    pub nosql_backend: NosqlBackend,
    /// Bound on the embedded text store's cache and write buffer.
    pub nosql_cache_bytes: usize,
    /// How webserver addresses are numbered, unless they were listed explicitly;
    /// scaling out beyond a listed set is impossible.
    pub web_numbering: Option<WebNumbering>,
    /// A file listing the webservers, one per line, that the balancer re-reads on
    /// SIGHUP (hot reload).
    pub lb_backends_file: Option<PathBuf>,
    /// The nested timeouts, innermost first: a webserver's store calls, the
    /// balancer's wait for a webserver, the balancer's total per request.
    pub web_store_timeout: Duration,
    /// Runtime threads per webserver, if set (else see `Overrides::web_threads`).
    pub web_threads: Option<usize>,
    /// The CPUs every webserver is pinned to, if set.
    pub web_cpus: Option<CpuList>,
    /// Whether `pastebin up` pins its webservers to their share of the cores.
    pub web_pin_cpus: bool,
    /// The CPUs this process runs on (`--cpus`), if set.
    pub cpus: Option<CpuList>,
    pub lb_response_timeout: Duration,
    pub lb_total_timeout: Duration,
    /// Clients whose forwarding headers the balancer believes.
    pub lb_trusted_proxies: Vec<String>,
    /// Time between two runs of sqlsvc's sweeper.
    pub sweep_interval: Duration,
    /// Age at which an unclaimed text counts as orphaned.
    pub orphan_grace: Duration,
    /// The longest `expires_in` a create may ask for, in seconds.
    pub max_expires_in: u64,
    /// The lifetime of a paste created without `expires_in`; None: forever.
    pub default_expires_in: Option<u64>,
}

/// A positive, finite number of seconds from a setting, or `default`.
fn seconds(name: &str, value: Option<f64>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if v.is_finite() && v > 0.0 && v <= 1e9 => Ok(Duration::from_secs_f64(v)),
        Some(v) => Err(ConfigError(format!(
            "{name} must be a number of seconds greater than 0, not {v}"
        ))),
    }
}

/// Most runtime threads a webserver may be given.
pub const MAX_WEB_THREADS: usize = 256;

/// Highest CPU number a CPU list may name (the kernel's default `cpu_set_t` size).
pub const MAX_CPU: usize = 1023;

/// A set of CPUs, as Linux writes them: `0`, `0,2`, `0-3,6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(Vec<usize>);

impl CpuList {
    /// Parses a list; every number at most [`MAX_CPU`], at least one CPU.
    pub fn parse(text: &str) -> Result<CpuList, String> {
        let number = |n: &str| -> Result<usize, String> {
            match n.trim().parse::<usize>() {
                Ok(cpu) if cpu <= MAX_CPU => Ok(cpu),
                _ => Err(format!(
                    "{n:?} is not a CPU number from 0 to {MAX_CPU} (a list looks like 0,2 or 0-3)"
                )),
            }
        };
        let mut cpus = Vec::new();
        for part in text.split(',') {
            match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (number(lo)?, number(hi)?);
                    if lo > hi {
                        return Err(format!("the range {part:?} runs backwards"));
                    }
                    cpus.extend(lo..=hi);
                }
                None => cpus.push(number(part)?),
            }
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList(cpus))
    }

    /// The CPUs, from a non-empty list of numbers at most [`MAX_CPU`].
    pub fn new(mut cpus: Vec<usize>) -> Option<CpuList> {
        cpus.sort_unstable();
        cpus.dedup();
        (!cpus.is_empty() && cpus.iter().all(|&c| c <= MAX_CPU)).then_some(CpuList(cpus))
    }

    /// The CPU numbers, ascending.
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }
}

impl std::fmt::Display for CpuList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(usize::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// Webserver i listens on `host:(base_port + i)`, or on `host:0` when the base is 0.
#[derive(Debug, Clone)]
pub struct WebNumbering {
    pub host: String,
    pub base_port: u16,
}

impl WebNumbering {
    /// The address of webserver `i`, if its port exists.
    pub fn addr(&self, i: usize) -> Option<String> {
        let port = if self.base_port == 0 {
            Some(0)
        } else {
            u16::try_from(i)
                .ok()
                .and_then(|i| self.base_port.checked_add(i))
        };
        port.map(|p| join_host_port(&self.host, p))
    }
}

/// The most reader connections sqlsvc opens (each is a thread).
pub const MAX_SQLSVC_READERS: usize = 64;

/// The most webservers one launcher runs.
pub const MAX_WEBSERVERS: usize = 64;

/// A setting that is wrong, named as the user would write it.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Settings {
    /// File (if any), then environment and flags (already merged by clap), then
    /// defaults; then validation.
    pub fn load(over: &Overrides) -> Result<Settings, ConfigError> {
        let file = match &over.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let port_offset = over.port_offset.or(file.port_offset).unwrap_or(0);
        let mut web_numbering = None;
        let webservers = if !over.webserver_addrs.is_empty() {
            over.webserver_addrs.clone()
        } else if let (Some(addrs), None) = (&file.web.addrs, over.webservers) {
            addrs.clone()
        } else {
            let count = over.webservers.or(file.web.count).unwrap_or(2);
            if count == 0 || count > MAX_WEBSERVERS {
                return Err(ConfigError(format!(
                    "webservers (--webservers, PASTEBIN_WEBSERVERS, [web] count) must be from 1 to {MAX_WEBSERVERS}, not {count}"
                )));
            }
            let host = over
                .web_host
                .clone()
                .or(file.web.host)
                .unwrap_or_else(|| "127.0.0.1".into());
            let base = over.web_base_port.or(file.web.base_port).unwrap_or(4000);
            let numbering = WebNumbering {
                host,
                base_port: base,
            };
            let addrs = (0..count)
                .map(|i| {
                    numbering.addr(i).ok_or_else(|| {
                        ConfigError(format!(
                            "web base port (--web-base-port, [web] base_port) {base} + {count} webservers runs past port 65535"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
            web_numbering = Some(numbering);
            addrs
        };
        let nosql_backend = match over
            .nosql_backend
            .clone()
            .or_else(|| file.nosqlsvc.backend.clone())
            .as_deref()
            .unwrap_or("embedded")
        {
            "embedded" => NosqlBackend::Embedded,
            "mongodb" => {
                let f = &file.nosqlsvc;
                let mongo = MongoSettings {
                    uri: over.mongodb_uri.clone().or_else(|| f.mongodb_uri.clone()).ok_or_else(|| {
                        ConfigError(
                            "mongodb uri (--mongodb-uri, PASTEBIN_MONGODB_URI, [nosqlsvc] mongodb_uri) is required with the mongodb backend".into(),
                        )
                    })?,
                    database: over
                        .mongodb_database
                        .clone()
                        .or_else(|| f.mongodb_database.clone())
                        .unwrap_or_else(|| "pastebin".into()),
                    collection: over
                        .mongodb_collection
                        .clone()
                        .or_else(|| f.mongodb_collection.clone())
                        .unwrap_or_else(|| "texts".into()),
                    pool_size: over.mongodb_pool_size.or(f.mongodb_pool_size).unwrap_or(32),
                    w: over.mongodb_w.clone().or_else(|| f.mongodb_w.clone()).unwrap_or_else(|| "1".into()),
                    journal: over.mongodb_journal.or(f.mongodb_journal).unwrap_or(true),
                    timeout_ms: over.mongodb_timeout_ms.or(f.mongodb_timeout_ms).unwrap_or(2000),
                };
                let w_ok = mongo.w == "majority" || mongo.w.parse::<u32>().is_ok_and(|n| n >= 1);
                if !w_ok {
                    return Err(ConfigError(format!(
                        "mongodb write concern w (--mongodb-w, PASTEBIN_MONGODB_W, [nosqlsvc] mongodb_w) must be a number of nodes from 1 or \"majority\", not {:?}",
                        mongo.w
                    )));
                }
                if mongo.pool_size == 0 || mongo.timeout_ms == 0 {
                    return Err(ConfigError(
                        "mongodb pool size (--mongodb-pool-size) and timeout (--mongodb-timeout-ms) must be at least 1".into(),
                    ));
                }
                NosqlBackend::MongoDb(mongo)
            }
            other => {
                return Err(ConfigError(format!(
                    "nosql backend (--nosql-backend, PASTEBIN_NOSQL_BACKEND, [nosqlsvc] backend) must be embedded or mongodb, not {other:?}"
                )));
            }
        };
        let mut settings = Settings {
            data_dir: over
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("data")),
            max_body_bytes: over
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(512 * 1024),
            lb_listen: over
                .lb_listen
                .clone()
                .or(file.lb.listen)
                .unwrap_or_else(|| "127.0.0.1:3000".into()),
            webservers,
            public_url: over.public_url.clone().or(file.web.public_url),
            cache_bytes: over
                .cache_bytes
                .or(file.web.cache_bytes)
                .unwrap_or(64 * 1024 * 1024),
            cache_prefetch: over
                .cache_prefetch
                .or(file.web.cache_prefetch)
                .unwrap_or(true),
            sqlsvc_readers: over
                .sqlsvc_readers
                .or(file.sqlsvc.readers)
                .unwrap_or_else(contract::defaults::sqlsvc_readers),
            sqlsvc: over
                .sqlsvc
                .clone()
                .or(file.sqlsvc.listen)
                .unwrap_or_else(|| "127.0.0.1:5004".into()),
            nosqlsvc: over
                .nosqlsvc
                .clone()
                .or(file.nosqlsvc.listen)
                .unwrap_or_else(|| "127.0.0.1:5005".into()),
            nosql_backend,
            nosql_cache_bytes: over
                .nosql_cache_bytes
                .or(file.nosqlsvc.cache_bytes)
                .unwrap_or(contract::defaults::EMBEDDED_CACHE_BYTES),
            web_numbering,
            lb_backends_file: over.lb_backends_file.clone().or(file.lb.backends_file),
            web_threads: over.web_threads.or(file.web.threads),
            web_cpus: match over.web_cpus.clone().or(file.web.cpus) {
                Some(list) => Some(CpuList::parse(&list).map_err(|err| {
                    ConfigError(format!(
                        "web CPUs (--web-cpus, PASTEBIN_WEB_CPUS, [web] cpus): {err}"
                    ))
                })?),
                None => None,
            },
            web_pin_cpus: over.web_pin_cpus.or(file.web.pin_cpus).unwrap_or(true),
            cpus: match &over.cpus {
                Some(list) => Some(
                    CpuList::parse(list).map_err(|err| ConfigError(format!("--cpus: {err}")))?,
                ),
                None => None,
            },
            web_store_timeout: Duration::from_millis(
                over.web_store_timeout_ms
                    .or(file.web.store_timeout_ms)
                    .unwrap_or(5_000),
            ),
            lb_response_timeout: Duration::from_millis(
                over.lb_response_timeout_ms
                    .or(file.lb.response_timeout_ms)
                    .unwrap_or(10_000),
            ),
            lb_total_timeout: Duration::from_millis(
                over.lb_total_timeout_ms
                    .or(file.lb.total_timeout_ms)
                    .unwrap_or(15_000),
            ),
            lb_trusted_proxies: if over.lb_trusted_proxies.is_empty() {
                file.lb.trusted_proxies.unwrap_or_default()
            } else {
                over.lb_trusted_proxies.clone()
            },
            sweep_interval: seconds(
                "sweep interval (--sweep-interval, PASTEBIN_SWEEP_INTERVAL, [sqlsvc] sweep_interval)",
                over.sweep_interval.or(file.sqlsvc.sweep_interval),
                contract::defaults::SWEEP_INTERVAL,
            )?,
            orphan_grace: seconds(
                "orphan grace (--orphan-grace, PASTEBIN_ORPHAN_GRACE, [sqlsvc] orphan_grace)",
                over.orphan_grace.or(file.sqlsvc.orphan_grace),
                contract::defaults::ORPHAN_GRACE,
            )?,
            max_expires_in: over
                .max_expires_in
                .or(file.web.max_expires_in)
                .unwrap_or(contract::defaults::MAX_EXPIRES_IN),
            default_expires_in: over.default_expires_in.or(file.web.default_expires_in),
        };
        settings.shift_ports(port_offset)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Moves every non-zero port up by `offset`, so one setting moves a whole stack
    /// out of another's way.
    fn shift_ports(&mut self, offset: u16) -> Result<(), ConfigError> {
        if offset == 0 {
            return Ok(());
        }
        let too_far = |addr: &str| {
            ConfigError(format!(
                "port offset (--port-offset, PASTEBIN_PORT_OFFSET, port_offset) {offset} moves {addr} past port 65535"
            ))
        };
        for addr in [&mut self.lb_listen, &mut self.sqlsvc, &mut self.nosqlsvc]
            .into_iter()
            .chain(self.webservers.iter_mut())
        {
            *addr = shift_port(addr, offset).ok_or_else(|| too_far(addr))?;
        }
        if let Some(numbering) = &mut self.web_numbering
            && numbering.base_port != 0
        {
            numbering.base_port = numbering
                .base_port
                .checked_add(offset)
                .ok_or_else(|| too_far("the web base port"))?;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_addr(
            "lb listen (--lb-listen, PASTEBIN_LB_LISTEN, [lb] listen)",
            &self.lb_listen,
        )?;
        check_addr(
            "sqlsvc (--sqlsvc, PASTEBIN_SQLSVC, [sqlsvc] listen)",
            &self.sqlsvc,
        )?;
        check_addr(
            "nosqlsvc (--nosqlsvc, PASTEBIN_NOSQLSVC, [nosqlsvc] listen)",
            &self.nosqlsvc,
        )?;
        if self.webservers.is_empty() || self.webservers.len() > MAX_WEBSERVERS {
            return Err(ConfigError(format!(
                "webserver list (--webserver, [web] addrs) must hold 1 to {MAX_WEBSERVERS} addresses"
            )));
        }
        for addr in &self.webservers {
            check_addr("webserver address (--webserver, [web] addrs)", addr)?;
        }
        httpkit::limits::check_body_limit(self.max_body_bytes).map_err(|msg| {
            ConfigError(format!(
                "max body bytes (--max-body-bytes, PASTEBIN_MAX_BODY_BYTES, max_body_bytes) {msg}"
            ))
        })?;
        self.check_timeouts()?;
        // The balancer's own checks (its fixed connect timeout nests in the response
        // timeout, trusted proxies parse) are the `pastebin` binary's, which links the
        // balancer: `check_balancer` there, right after this.
        if !(1..=MAX_SQLSVC_READERS).contains(&self.sqlsvc_readers) {
            return Err(ConfigError(format!(
                "sqlsvc readers (--sqlsvc-readers, PASTEBIN_SQLSVC_READERS, [sqlsvc] readers) must be from 1 to {MAX_SQLSVC_READERS}, not {}",
                self.sqlsvc_readers
            )));
        }
        if let Some(t) = self.web_threads
            && !(1..=MAX_WEB_THREADS).contains(&t)
        {
            return Err(ConfigError(format!(
                "web threads (--web-threads, PASTEBIN_WEB_THREADS, [web] threads) must be from 1 to {MAX_WEB_THREADS}, not {t}"
            )));
        }
        if self.max_expires_in == 0 {
            return Err(ConfigError(
                "max expires in (--max-expires-in, PASTEBIN_MAX_EXPIRES_IN, [web] max_expires_in) must be at least 1 second".into(),
            ));
        }
        if let Some(d) = self.default_expires_in
            && !(1..=self.max_expires_in).contains(&d)
        {
            return Err(ConfigError(format!(
                "default expires in (--default-expires-in, PASTEBIN_DEFAULT_EXPIRES_IN, [web] default_expires_in) must be from 1 to the maximum ({}), not {d}",
                self.max_expires_in
            )));
        }
        if let Some(url) = &self.public_url {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && !url.contains(char::is_whitespace);
            if !ok {
                return Err(ConfigError(format!(
                    "public url (--public-url, PASTEBIN_PUBLIC_URL, [web] public_url) must start with http:// or https://, not {url:?}"
                )));
            }
        }
        Ok(())
    }

    /// Timeouts nest, each clearly shorter than the one outside it: MongoDB's server
    /// selection < a webserver's store calls < the balancer's wait for a webserver <
    /// the balancer's total. So the innermost fires first, each tier answers the one
    /// above it, and no healthy tier is blamed for a slow store.
    fn check_timeouts(&self) -> Result<(), ConfigError> {
        const STORE: &str = "web store timeout (--web-store-timeout-ms, [web] store_timeout_ms)";
        const RESPONSE: &str =
            "lb response timeout (--lb-response-timeout-ms, [lb] response_timeout_ms)";
        const TOTAL: &str = "lb total timeout (--lb-total-timeout-ms, [lb] total_timeout_ms)";
        for (name, value) in [
            (STORE, self.web_store_timeout),
            (RESPONSE, self.lb_response_timeout),
            (TOTAL, self.lb_total_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError(format!("{name} must be greater than 0")));
            }
        }
        let mut chain = Vec::new();
        if let NosqlBackend::MongoDb(mongo) = &self.nosql_backend {
            chain.push((
                "mongodb timeout (--mongodb-timeout-ms, [nosqlsvc] mongodb_timeout_ms)",
                Duration::from_millis(mongo.timeout_ms),
            ));
        }
        chain.extend([
            (STORE, self.web_store_timeout),
            (RESPONSE, self.lb_response_timeout),
            (TOTAL, self.lb_total_timeout),
        ]);
        for pair in chain.windows(2) {
            let ((inner_name, inner), (outer_name, outer)) = (pair[0], pair[1]);
            httpkit::timeouts::check_nested(inner_name, inner, outer_name, outer)
                .map_err(ConfigError)?;
        }
        Ok(())
    }

    /// The SQLite file of sqlsvc.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("meta.sqlite3")
    }

    /// The embedded text store's file.
    pub fn text_store_path(&self) -> PathBuf {
        self.data_dir.join("texts.redb")
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ConfigError(format!("config file {}: {err}", path.display())))?;
    toml::from_str(&text)
        .map_err(|err| ConfigError(format!("config file {}: {err}", path.display())))
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `addr` with its port moved up by `offset`; unchanged if it has no numeric port
/// (validation names it then) or its port is 0; `None` past port 65535.
fn shift_port(addr: &str, offset: u16) -> Option<String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Some(addr.to_owned());
    };
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Some(addr.to_owned()),
        Ok(port) => port.checked_add(offset).map(|p| format!("{host}:{p}")),
    }
}

/// `host:port` with a non-empty host and a numeric port.
fn check_addr(name: &str, addr: &str) -> Result<(), ConfigError> {
    let ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "{name} must be host:port, not {addr:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_linux_writes_them() {
        let cpus = |t: &str| CpuList::parse(t).map(|l| l.cpus().to_vec());
        assert_eq!(cpus("0"), Ok(vec![0]));
        assert_eq!(cpus("2,0"), Ok(vec![0, 2]));
        assert_eq!(cpus("0-3,6,1"), Ok(vec![0, 1, 2, 3, 6]));
        assert_eq!(cpus(" 1 - 2 "), Ok(vec![1, 2]));
        for bad in [
            "",
            "a",
            "3-1",
            "0,,1",
            "-1",
            "1024",
            "0-99999999999999999999",
        ] {
            assert!(cpus(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(CpuList::parse("0-2,5").unwrap().to_string(), "0,1,2,5");
        assert_eq!(CpuList::new(vec![]), None);
        let over = Overrides {
            web_cpus: Some("x".into()),
            ..Overrides::default()
        };
        let err = Settings::load(&over).unwrap_err().to_string();
        assert!(err.contains("--web-cpus"), "{err}");
    }

    #[test]
    fn defaults_describe_the_documented_topology() {
        let s = Settings::load(&Overrides::default()).unwrap();
        assert_eq!(s.lb_listen, "127.0.0.1:3000");
        assert_eq!(s.webservers, ["127.0.0.1:4000", "127.0.0.1:4001"]);
        assert_eq!(s.sqlsvc, "127.0.0.1:5004");
        assert_eq!(s.nosqlsvc, "127.0.0.1:5005");
        assert_eq!(s.max_body_bytes, 512 * 1024);
    }

    #[test]
    fn one_offset_moves_every_port() {
        let over = Overrides {
            port_offset: Some(100),
            ..Overrides::default()
        };
        let s = Settings::load(&over).unwrap();
        assert_eq!(s.lb_listen, "127.0.0.1:3100");
        assert_eq!(s.webservers, ["127.0.0.1:4100", "127.0.0.1:4101"]);
        assert_eq!(s.sqlsvc, "127.0.0.1:5104");
        assert_eq!(s.nosqlsvc, "127.0.0.1:5105");
        // Webservers added by scaling follow the moved base.
        assert_eq!(
            s.web_numbering.unwrap().addr(5).as_deref(),
            Some("127.0.0.1:4105")
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "port_offset = 7\n[lb]\nlisten = \"[::1]:8000\"\n[web]\nbase_port = 0\n",
        )
        .unwrap();
        let over = Overrides {
            config: Some(path),
            ..Overrides::default()
        };
        let s = Settings::load(&over).unwrap();
        assert_eq!(s.lb_listen, "[::1]:8007");
        assert!(
            s.webservers.iter().all(|a| a == "127.0.0.1:0"),
            "port 0 stays 0"
        );

        let over = Overrides {
            port_offset: Some(65000),
            ..Overrides::default()
        };
        assert!(
            Settings::load(&over)
                .unwrap_err()
                .0
                .contains("--port-offset")
        );
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "data_dir = \"/x\"\n[web]\ncount = 3\nbase_port = 0\n[lb]\nlisten = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        let over = Overrides {
            config: Some(path.clone()),
            webservers: Some(4),
            ..Overrides::default()
        };
        let s = Settings::load(&over).unwrap();
        assert_eq!(s.webservers.len(), 4);
        assert!(s.webservers.iter().all(|a| a == "127.0.0.1:0"));
        assert_eq!(s.data_dir, PathBuf::from("/x"));
        assert_eq!(s.lb_listen, "127.0.0.1:0");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let over = Overrides {
            webservers: Some(0),
            ..Overrides::default()
        };
        assert!(
            Settings::load(&over)
                .unwrap_err()
                .0
                .contains("--webservers")
        );
        let over = Overrides {
            lb_listen: Some("nonsense".into()),
            ..Overrides::default()
        };
        assert!(Settings::load(&over).unwrap_err().0.contains("--lb-listen"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[web]\ncuont = 3\n").unwrap();
        let over = Overrides {
            config: Some(path),
            ..Overrides::default()
        };
        assert!(Settings::load(&over).unwrap_err().0.contains("cuont"));
    }

    #[test]
    fn host_cpu_budgets_parse_and_need_emulation() {
        let args = |emulate: bool, cpu: &[&str]| EmulateArgs {
            emulate_hosts: emulate,
            host_cpu: cpu.iter().map(|s| (*s).to_owned()).collect(),
        };
        assert_eq!(args(false, &[]).resolve().unwrap(), None);
        let cpu = args(true, &["web=0.25", "lb=1", "sqlsvc=0.5"])
            .resolve()
            .unwrap()
            .unwrap();
        assert_eq!(
            cpu,
            HostCpu {
                lb: Some(1.0),
                web: Some(0.25),
                sqlsvc: Some(0.5),
                nosqlsvc: None
            }
        );
        assert!(cpu.any());
        assert!(!args(true, &[]).resolve().unwrap().unwrap().any());
        assert!(
            args(false, &["web=1"])
                .resolve()
                .unwrap_err()
                .0
                .contains("--emulate-hosts")
        );
        for bad in [
            "web", "web=0", "web=-1", "web=x", "db=1", "web=2000", "web=NaN",
        ] {
            assert!(
                args(true, &[bad])
                    .resolve()
                    .unwrap_err()
                    .0
                    .contains("--host-cpu"),
                "{bad}"
            );
        }
    }

    #[test]
    fn mongodb_settings_are_checked_and_passed_on() {
        let over = Overrides {
            nosql_backend: Some("mongodb".into()),
            ..Overrides::default()
        };
        assert!(
            Settings::load(&over)
                .unwrap_err()
                .0
                .contains("--mongodb-uri")
        );
        let over = Overrides {
            nosql_backend: Some("mongodb".into()),
            mongodb_uri: Some("mongodb://db:27017/".into()),
            mongodb_w: Some("majority".into()),
            ..Overrides::default()
        };
        let NosqlBackend::MongoDb(mongo) = Settings::load(&over).unwrap().nosql_backend else {
            panic!("not mongodb");
        };
        assert_eq!(
            (mongo.pool_size, mongo.journal, mongo.timeout_ms),
            (32, true, 2000)
        );
        let args = mongo.to_args();
        assert!(
            args.windows(2)
                .any(|w| w[0] == "--mongodb-w" && w[1] == "majority")
        );
        for bad in ["0", "two", ""] {
            let over = Overrides {
                nosql_backend: Some("mongodb".into()),
                mongodb_uri: Some("mongodb://db/".into()),
                mongodb_w: Some(bad.into()),
                ..Overrides::default()
            };
            assert!(
                Settings::load(&over).unwrap_err().0.contains("--mongodb-w"),
                "{bad}"
            );
        }
        let over = Overrides {
            nosql_backend: Some("cassandra".into()),
            ..Overrides::default()
        };
        assert!(
            Settings::load(&over)
                .unwrap_err()
                .0
                .contains("--nosql-backend")
        );
    }

    #[test]
    fn sqlsvc_readers_from_file_flag_and_default() {
        assert!(
            Settings::load(&Overrides::default())
                .unwrap()
                .sqlsvc_readers
                >= 2
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[sqlsvc]\nreaders = 3\n").unwrap();
        let mut over = Overrides {
            config: Some(path),
            ..Overrides::default()
        };
        assert_eq!(Settings::load(&over).unwrap().sqlsvc_readers, 3);
        over.sqlsvc_readers = Some(5);
        assert_eq!(Settings::load(&over).unwrap().sqlsvc_readers, 5);
        over.sqlsvc_readers = Some(0);
        let err = Settings::load(&over).unwrap_err().0;
        assert!(err.contains("--sqlsvc-readers"), "{err}");
    }

    #[test]
    fn timeouts_must_nest() {
        let over = Overrides {
            web_store_timeout_ms: Some(10_000),
            ..Overrides::default()
        };
        let err = Settings::load(&over).unwrap_err().0;
        assert!(
            err.contains("--web-store-timeout-ms") && err.contains("--lb-response-timeout-ms"),
            "{err}"
        );
        let over = Overrides {
            lb_response_timeout_ms: Some(15_000),
            ..Overrides::default()
        };
        let err = Settings::load(&over).unwrap_err().0;
        assert!(err.contains("--lb-total-timeout-ms"), "{err}");
        let over = Overrides {
            nosql_backend: Some("mongodb".into()),
            mongodb_uri: Some("mongodb://db/".into()),
            mongodb_timeout_ms: Some(5_000),
            ..Overrides::default()
        };
        let err = Settings::load(&over).unwrap_err().0;
        assert!(err.contains("--mongodb-timeout-ms"), "{err}");
        let over = Overrides {
            web_store_timeout_ms: Some(1_000),
            lb_response_timeout_ms: Some(2_000),
            lb_total_timeout_ms: Some(3_000),
            ..Overrides::default()
        };
        Settings::load(&over).unwrap();
    }

    #[test]
    fn body_limit_is_checked() {
        let over = Overrides {
            max_body_bytes: Some(httpkit::limits::MAX_BODY_BYTES + 1),
            ..Overrides::default()
        };
        assert!(
            Settings::load(&over)
                .unwrap_err()
                .0
                .contains("--max-body-bytes")
        );
    }
}
