//! Real processes started by tests: the `pastebin` binary found (or built), any
//! process whose stderr goes to a temporary file shown only if the test fails and
//! which is stopped with everything it started when dropped ([`Process`]), and a
//! whole stack — `pastebin up` on a config with port 0 everywhere in a temporary
//! directory, its announced URL read back ([`Launch`], [`Stack`]).

use std::ffi::{OsStr, OsString};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::announce::Announcements;

/// Longest a launcher may take to stop once asked (it drains the balancer, then the
/// webservers, then the stores; on a busy machine).
pub const STOP_LIMIT: Duration = Duration::from_secs(60);

/// How long a dropped [`Process`] is given to stop on SIGTERM before everything it
/// started is killed (a launcher with emulated hosts removes them when it stops).
const DROP_GRACE: Duration = Duration::from_secs(20);

/// The `pastebin` binary of this build: `target/<profile>/pastebin`, next to the
/// test binary's `deps/` directory (`PASTEBIN_BIN` overrides it). Built with cargo
/// when it is missing or older than a source file of the workspace, so a test never
/// runs an old binary; `cargo test --workspace` has built it already, and then this
/// only looks.
pub fn pastebin_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("PASTEBIN_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("the test binary's path");
        // target/<profile>/deps/<test binary>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("a test binary lives in target/<profile>/deps")
            .to_path_buf();
        let bin = profile_dir.join("pastebin");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("testkit sits in the workspace");
        if !is_fresh(&bin) {
            build_pastebin(&profile_dir, workspace);
        }
        assert!(bin.is_file(), "no pastebin binary at {}", bin.display());
        bin
    })
    .clone()
}

/// Whether `bin` exists and is newer than every source file it was built from, as
/// listed by the dep-info file cargo writes beside it (`pastebin.d`); without that
/// file, whether it exists.
fn is_fresh(bin: &Path) -> bool {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return false;
    };
    let Ok(dep_info) = std::fs::read_to_string(bin.with_extension("d")) else {
        return true;
    };
    // "target/release/pastebin: /src/a.rs /src/b.rs ...", spaces in names escaped.
    let Some((_, sources)) = dep_info.lines().next().and_then(|l| l.split_once(": ")) else {
        return true;
    };
    let sources = sources.replace("\\ ", "\0");
    sources
        .split_whitespace()
        .map(|source| PathBuf::from(source.replace('\0', " ")))
        .all(|source| {
            std::fs::metadata(&source)
                .and_then(|m| m.modified())
                // A source gone since: cargo decides.
                .is_ok_and(|modified| modified <= built)
        })
}

fn build_pastebin(profile_dir: &Path, workspace: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build", "-p", "pastebin", "--bin", "pastebin"];
    if profile_dir.ends_with("release") {
        args.push("--release");
    }
    eprintln!(
        "testkit: the pastebin binary in {} is missing or older than the sources; running `cargo {}`",
        profile_dir.display(),
        args.join(" ")
    );
    let status = std::process::Command::new(cargo)
        .args(&args)
        .current_dir(workspace)
        .status()
        .expect("run cargo to build the pastebin binary");
    assert!(status.success(), "building the pastebin binary failed");
}

/// A child process of a test. Its stderr (its logs and those of any process it
/// starts) goes to a temporary file that is printed only if the test fails (this is
/// dropped while panicking), so passing tests stay quiet and a failing one shows
/// what the processes said. Dropped while still running, it gets SIGTERM and a
/// grace period, then it and every process group its children lead are killed.
pub struct Process {
    child: Child,
    log: std::fs::File,
    what: String,
}

impl Process {
    /// Spawns `cmd` (named `what` in reports) with stdout piped (for its
    /// announcements), stdin piped (a component started with `--exit-with-parent`
    /// exits when it closes, even if the test is killed) and stderr to the log.
    pub fn spawn(mut cmd: Command, what: &str) -> Process {
        let log = tempfile::tempfile().expect("a temporary file for stderr");
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.try_clone().expect("clone the stderr file"))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot spawn {what}: {err}"));
        Process {
            child,
            log,
            what: what.to_owned(),
        }
    }

    /// Its pid; panics once it has been waited for.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process has exited")
    }

    /// Announcements on its stdout (takes the pipe).
    pub fn announcements(&mut self) -> Announcements {
        Announcements::of(&mut self.child)
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        let mut log = &self.log;
        let mut text = String::new();
        let _ = log.rewind();
        let _ = log.read_to_string(&mut text);
        text
    }

    /// Sends `signal` (e.g. `"TERM"`) and waits up to [`STOP_LIMIT`] for the exit,
    /// which must be clean.
    pub async fn stop_with(&mut self, signal: &str) {
        crate::procs::signal(self.pid(), signal);
        let status = tokio::time::timeout(STOP_LIMIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not stop within {STOP_LIMIT:?}", self.what))
            .expect("wait for the process");
        assert!(status.success(), "{} stopped with {status}", self.what);
    }

    /// Its exit status, waited for up to `limit`.
    pub async fn exit_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {limit:?}", self.what))
            .expect("wait for the process")
    }

    /// SIGKILL, and reaped: the process alone (what it started is left to notice).
    pub async fn kill_9(&mut self) {
        self.child.kill().await.expect("kill the process");
    }
}

impl std::ops::Deref for Process {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let (Ok(None), Some(pid)) = (self.child.try_wait(), self.child.id()) {
            // Still running: a test that failed half-way, or that did not stop it.
            // SIGTERM first (a launcher then stops its children in order and removes
            // emulated hosts), then whatever is left is killed.
            let children = crate::procs::children(pid);
            crate::procs::signal_quietly(pid, "TERM");
            let deadline = Instant::now() + DROP_GRACE;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                crate::procs::kill_tree(pid);
                let _ = self.child.start_kill();
            }
            for (child, _) in children {
                if crate::procs::alive(child) {
                    crate::procs::signal_group(child, "KILL");
                    crate::procs::signal_quietly(child, "KILL");
                }
            }
        }
        if std::thread::panicking() {
            // eprintln!, not a raw write: the test harness captures it with the failure.
            eprintln!(
                "---- stderr of {} (pid {:?}), shown because the test failed ----\n{}---- end ----",
                self.what,
                self.child.id(),
                self.log()
            );
        }
    }
}

/// The `pastebin` binary with `args` (a component, `pastebin scale`...), logs at
/// `RUST_LOG=warn`: see [`Process`].
pub fn spawn_pastebin<I, S>(args: I) -> Process
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(pastebin_binary());
    cmd.args(args).env("RUST_LOG", "warn");
    Process::spawn(cmd, "pastebin")
}

/// How to start a whole stack: `pastebin up` over a config file with port 0
/// everywhere (but see [`Launch::fixed_ports`] for a test that kills a child), in a
/// temporary directory of its own unless [`Launch::in_dir`] names one. Two
/// webservers unless told.
pub struct Launch {
    bin: PathBuf,
    dir: Option<PathBuf>,
    webservers: usize,
    config: String,
    args: Vec<OsString>,
    up_args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    nosql_from_env: Option<String>,
    fixed_ports: bool,
}

/// Webserver ports set aside from the base port by [`Launch::fixed_ports`]: as many
/// webservers as a test may scale to.
const FIXED_WEB_PORTS: u16 = 8;

impl Default for Launch {
    fn default() -> Self {
        Self::new()
    }
}

impl Launch {
    pub fn new() -> Launch {
        Launch {
            bin: pastebin_binary(),
            dir: None,
            webservers: 2,
            config: String::new(),
            args: Vec::new(),
            up_args: Vec::new(),
            env: Vec::new(),
            nosql_from_env: None,
            fixed_ports: false,
        }
    }

    /// sqlsvc, nosqlsvc and the webservers on ports outside the kernel's ephemeral
    /// range instead of port 0 (the balancer stays on port 0), and their addresses
    /// known to the [`Stack`] ([`Stack::sqlsvc`], [`Stack::nosqlsvc`]). For a test that
    /// kills one of them: the launcher restarts a child on the address it had, and a
    /// port-0 port is free for anyone in between, so a parallel test could be handed
    /// it (a listener of its own, or an outgoing connection's source port) and the
    /// restarted child could not bind it, or worse, this stack's callers would reach
    /// the other test's server.
    pub fn fixed_ports(mut self) -> Launch {
        self.fixed_ports = true;
        self
    }

    /// How many webservers (the config's `[web] count`).
    pub fn webservers(mut self, n: usize) -> Launch {
        self.webservers = n;
        self
    }

    /// The config file and the data directory (`<dir>/data`) go in `dir`, which
    /// outlives the stack (a second stack on the same data, a restart).
    pub fn in_dir(mut self, dir: &Path) -> Launch {
        self.dir = Some(dir.to_owned());
        self
    }

    /// Top-level lines added to the config file (e.g. `max_paste_bytes = 1024`).
    pub fn config(mut self, lines: &str) -> Launch {
        self.config.push_str(lines);
        self.config.push('\n');
        self
    }

    /// Global options, before `up` (e.g. `--nosql-backend`).
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Launch {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Options of `up` itself (e.g. `--emulate-hosts`).
    pub fn up_arg(mut self, arg: impl AsRef<OsStr>) -> Launch {
        self.up_args.push(arg.as_ref().to_owned());
        self
    }

    /// An environment variable for the launcher (the config's environment layer).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Launch {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Under `PASTEBIN_TEST_NOSQL=mongodb` (scripts/test.sh, with FerretDB), nosqlsvc
    /// runs on the MongoDB server at `PASTEBIN_TEST_MONGODB_URI`, in `database` and a
    /// collection of this stack's own; otherwise on the embedded store.
    pub fn nosql_from_env(mut self, database: &str) -> Launch {
        self.nosql_from_env = Some(database.to_owned());
        self
    }

    /// Starts the launcher and waits for the URL it announces (within
    /// [`crate::announce::ANNOUNCE_LIMIT`]).
    pub async fn start(self) -> Stack {
        let (temp, dir) = match &self.dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("pastebin-stack-")
                    .tempdir()
                    .expect("a temporary directory");
                let dir = temp.path().to_owned();
                (Some(temp), dir)
            }
        };
        let data_dir = dir.join("data");
        let config = dir.join("pastebin.toml");
        let (sqlsvc, nosqlsvc, web_base) = if self.fixed_ports {
            let port = crate::net::port_outside_ephemeral_range;
            (
                Some(format!("127.0.0.1:{}", port())),
                Some(format!("127.0.0.1:{}", port())),
                crate::net::ports_outside_ephemeral_range(
                    FIXED_WEB_PORTS.max(u16::try_from(self.webservers).unwrap_or(u16::MAX)),
                ),
            )
        } else {
            (None, None, 0)
        };
        let any = "127.0.0.1:0".to_owned();
        std::fs::write(
            &config,
            format!(
                "data_dir = {data_dir:?}\n{}[lb]\nlisten = \"127.0.0.1:0\"\n[web]\ncount = {}\nbase_port = {web_base}\n[sqlsvc]\nlisten = {:?}\n[nosqlsvc]\nlisten = {:?}\n",
                self.config,
                self.webservers,
                sqlsvc.as_ref().unwrap_or(&any),
                nosqlsvc.as_ref().unwrap_or(&any),
            ),
        )
        .expect("write the config file");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config").arg(&config).args(&self.args);
        if let Some(database) = &self.nosql_from_env
            && std::env::var("PASTEBIN_TEST_NOSQL").as_deref() == Ok("mongodb")
        {
            let uri = std::env::var("PASTEBIN_TEST_MONGODB_URI")
                .expect("PASTEBIN_TEST_NOSQL=mongodb needs PASTEBIN_TEST_MONGODB_URI");
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            let collection = format!(
                "texts_{}",
                name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            );
            cmd.args(["--nosql-backend", "mongodb", "--mongodb-uri", &uri])
                .args(["--mongodb-database", database])
                .args(["--mongodb-collection", &collection]);
        }
        // Logs at warn unless the test asks for more with `.env("RUST_LOG", ...)`.
        cmd.arg("up")
            .args(&self.up_args)
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut process = Process::spawn(cmd, "pastebin up");
        let url = process
            .announcements()
            .next_matching(|line| line.starts_with("http://"))
            .await;
        Stack {
            lb: url.trim_start_matches("http://").to_owned(),
            url,
            sqlsvc,
            nosqlsvc,
            config,
            data_dir,
            process,
            _temp: temp,
        }
    }
}

/// A running `pastebin up`. Dropped without [`Stack::stop`], it is stopped (see
/// [`Process`]) and its temporary directory removed.
pub struct Stack {
    /// `http://127.0.0.1:<port>` of the balancer, as announced.
    pub url: String,
    /// `127.0.0.1:<port>` of the balancer.
    pub lb: String,
    /// sqlsvc's address, when started with [`Launch::fixed_ports`].
    pub sqlsvc: Option<String>,
    /// nosqlsvc's address, when started with [`Launch::fixed_ports`].
    pub nosqlsvc: Option<String>,
    /// Its config file.
    pub config: PathBuf,
    /// Its data directory.
    pub data_dir: PathBuf,
    pub process: Process,
    // Declared last: removed after the process has stopped.
    _temp: Option<tempfile::TempDir>,
}

impl Stack {
    /// The launcher's pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The text of paste `id` as the two stores hold it, asked directly (sqlsvc for
    /// its path, then nosqlsvc): no webserver's cache in between, so it proves what
    /// is stored. None if sqlsvc has no such paste; a row whose text is missing
    /// fails the test. Needs [`Launch::fixed_ports`].
    pub async fn text_in_stores(&self, id: &str) -> Option<String> {
        let (Some(sqlsvc), Some(nosqlsvc)) = (&self.sqlsvc, &self.nosqlsvc) else {
            panic!("text_in_stores needs a stack started with Launch::fixed_ports");
        };
        crate::client::text_in_stores(&crate::Client::new(), sqlsvc, nosqlsvc, id).await
    }

    /// The launcher's children: `(pid, command line)`.
    pub fn children(&self) -> Vec<(u32, String)> {
        crate::procs::children(self.pid())
    }

    /// The pid of a running child of `kind` (`sqlsvc`, `nosqlsvc`, `lb`, `web`), if
    /// any, other than `not`.
    pub fn find_child(&self, kind: &str, not: Option<u32>) -> Option<u32> {
        self.children()
            .into_iter()
            .find(|(pid, cmd)| {
                cmd.split(' ').any(|word| word == kind)
                    && Some(*pid) != not
                    && crate::procs::alive(*pid)
            })
            .map(|(pid, _)| pid)
    }

    /// The pid of the launcher's `kind` child other than `not` (one just killed),
    /// waiting for one to run (after a restart).
    pub async fn child_pid(&self, kind: &str, not: Option<u32>) -> u32 {
        crate::wait::eventually_within(
            &format!("a {kind} child of the launcher runs"),
            crate::wait::DEADLINE,
            || async { self.find_child(kind, not) },
        )
        .await
    }

    /// The webserver addresses in the balancer's list (`lb-backends.txt`).
    pub fn backends(&self) -> Vec<String> {
        std::fs::read_to_string(self.data_dir.join("lb-backends.txt"))
            .expect("read lb-backends.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// `pastebin scale n` on this stack's config; it must succeed (the launcher has
    /// then started or stopped the webservers, and rewritten the balancer's list).
    pub async fn scale(&self, n: usize) {
        let out = tokio::process::Command::new(pastebin_binary())
            .arg("--config")
            .arg(&self.config)
            .args(["scale", &n.to_string()])
            .output()
            .await
            .expect("run pastebin scale");
        assert!(
            out.status.success(),
            "pastebin scale {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `signal` (TERM or INT), then the launcher must exit cleanly within
    /// [`STOP_LIMIT`] and leave none of its children running.
    pub async fn stop_with(mut self, signal: &str) {
        let children = self.children();
        assert!(!children.is_empty(), "the launcher has no children");
        self.process.stop_with(signal).await;
        for (pid, cmd) in children {
            assert!(
                !crate::procs::alive(pid),
                "{cmd} ({pid}) outlived the launcher"
            );
        }
    }

    /// SIGTERM, then a clean exit with no child left.
    pub async fn stop(self) {
        self.stop_with("TERM").await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_process_is_stopped_with_what_it_started() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 600 & echo $!; echo to stderr >&2; wait"]);
        let mut process = Process::spawn(cmd, "sh");
        let line = process.announcements().next_matching(|_| true).await;
        let sleeper: u32 = line.trim().parse().unwrap();
        assert!(crate::procs::alive(sleeper));
        crate::wait::eventually("stderr reaches the log", || async {
            process.log().contains("to stderr")
        })
        .await;
        let sh = process.pid();
        drop(process);
        crate::wait::eventually("sh and its child are gone", || async {
            !crate::procs::alive(sh) && !crate::procs::alive(sleeper)
        })
        .await;
    }
}
