//! `RedisServer`: a real `redis-server` on a free loopback port, in its own temporary directory.
//!
//! Every server runs with `--save ""`, `--appendonly no` and `--enable-debug-command yes` (the
//! comparison uses `DEBUG DIGEST-VALUE`), logs to `redis.log` in its directory, and is killed
//! (SIGKILL: nothing is saved) when the value is dropped. Starting waits until the server
//! answers `PING`, polling with a deadline; a server that exits first, for example because it
//! cannot load the RDB file it was given, is an error that carries the tail of its log.
//!
//! A cluster node ([`RedisServerBuilder::cluster_node`]) gets a second free port for its
//! cluster bus (`cluster-port`: the default, port + 10000, is often above 65535 for the
//! ephemeral ports the harness uses) and its `nodes.conf` in its own directory.
//!
//! A TLS server ([`RedisServerBuilder::tls`]) listens on a second free port with TLS
//! (`tls-port`) and keeps its plain port for the harness itself: the tests give replicant the
//! TLS port ([`RedisServer::tls_url`]), where the harness's own checks use the plain one.
//!
//! The binary is `redis-server` from `PATH`, or the path in `$REDIS_SERVER`.

use std::fmt;
use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::wait::{self, Check};

/// How long a server may take to answer `PING` (loading an RDB included), before scaling.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts at a free port: another process may take the port between probe and bind.
const PORT_ATTEMPTS: usize = 5;
/// The name of the RDB file in the server's directory.
const DB_FILENAME: &str = "dump.rdb";
/// The name of a cluster node's configuration file, in its directory.
const CLUSTER_CONFIG_FILENAME: &str = "nodes.conf";

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
    /// The cluster bus port of a cluster node.
    bus_port: Option<u16>,
    /// The TLS port of a TLS server.
    tls_port: Option<u16>,
    password: Option<String>,
    /// Holds the server's working directory (RDB, logs); removed on drop, after the kill.
    dir: TempDir,
}

/// How to start a [`RedisServer`].
#[derive(Debug, Clone)]
pub struct RedisServerBuilder {
    config: Vec<(String, String)>,
    password: Option<String>,
    rdb: Option<PathBuf>,
    start_timeout: Duration,
    /// `cluster-enabled yes` with this `cluster-node-timeout`.
    cluster_node_timeout: Option<Duration>,
    tls: Option<ServerTls>,
    /// Another server binary than [`redis_server_binary`] (e.g. another version).
    binary: Option<PathBuf>,
}

/// TLS on a server's second port: its certificate and key, the CA it trusts for client
/// certificates (and, in a cluster, for the other nodes'), and whether clients must present
/// one (`tls-auth-clients`).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub auth_clients: bool,
}

/// A server that did not come up: why, and the end of its log.
#[derive(Debug)]
pub struct StartError {
    pub message: String,
    pub log_tail: String,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n--- redis-server log tail ---\n{}",
            self.message, self.log_tail
        )
    }
}

impl std::error::Error for StartError {}

impl RedisServer {
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder {
            config: Vec::new(),
            password: None,
            rdb: None,
            start_timeout: START_TIMEOUT,
            cluster_node_timeout: None,
            tls: None,
            binary: None,
        }
    }

    /// An empty server with the default configuration; panics if it cannot start.
    pub fn start() -> RedisServer {
        RedisServer::builder().start()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`: the node address `redis-cli --cluster` and `CLUSTER SLOTS` use.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The cluster bus port of a cluster node; `None` for a standalone server.
    pub fn bus_port(&self) -> Option<u16> {
        self.bus_port
    }

    /// The TLS port of a TLS server; `None` for a plain one.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// `rediss://[:password@]127.0.0.1:tls-port`, with the server's own password if it has
    /// one; panics for a server without TLS.
    pub fn tls_url(&self) -> String {
        self.tls_url_with(None, self.password.as_deref())
    }

    /// The TLS URL with an ACL user and password (either may be left out).
    pub fn tls_url_with(&self, user: Option<&str>, password: Option<&str>) -> String {
        let port = self
            .tls_port
            .unwrap_or_else(|| panic!("redis-server on port {} has no TLS port", self.port));
        format!("rediss://{}127.0.0.1:{port}", userinfo(user, password))
    }

    /// The plain URL with an ACL user and password (either may be left out).
    pub fn url_with_user(&self, user: Option<&str>, password: Option<&str>) -> String {
        format!(
            "redis://{}127.0.0.1:{}",
            userinfo(user, password),
            self.port
        )
    }

    /// The password the server requires, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `redis://[:password@]127.0.0.1:port`, with the server's own password if it has one.
    pub fn url(&self) -> String {
        self.url_with_password(self.password.as_deref())
    }

    /// The server's URL with another password, or none (for negative tests). Passwords are
    /// used as given: the harness only uses URL-safe ones.
    pub fn url_with_password(&self, password: Option<&str>) -> String {
        match password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// A new synchronous connection (db 0), with timeouts so that a stuck server fails the
    /// test instead of hanging it. Panics if the server does not accept it.
    pub fn client(&self) -> redis::Connection {
        self.try_client().unwrap_or_else(|err| {
            panic!(
                "cannot connect to redis-server on port {}: {err}\n--- log tail ---\n{}",
                self.port,
                self.log_tail(20)
            )
        })
    }

    fn try_client(&self) -> redis::RedisResult<redis::Connection> {
        connect(&self.url())
    }

    /// The last `lines` lines of the server's log and of its stdout/stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(self.dir.path(), lines)
    }

    /// Kills the server now (SIGKILL: no chance to save or to tell anyone) and reaps it, for
    /// tests that lose a node. Its directory, and so its log, stays until the value is dropped.
    pub fn kill(&mut self) -> Result<(), String> {
        self.child
            .kill()
            .map_err(|err| format!("cannot kill redis-server on port {}: {err}", self.port))?;
        self.child
            .wait()
            .map(|_| ())
            .map_err(|err| format!("cannot reap redis-server on port {}: {err}", self.port))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL: a test server has nothing worth saving, and must not linger.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServerBuilder {
    /// Adds `--name value` to the command line (any `redis.conf` directive, e.g.
    /// `repl-diskless-sync`, `yes`).
    pub fn config(mut self, name: &str, value: &str) -> Self {
        self.config.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets `requirepass`; [`RedisServer::url`] and [`RedisServer::client`] then use it.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }

    /// Loads this RDB file at startup (it is copied into the server's directory first, so the
    /// fixture is never touched).
    pub fn rdb_file(mut self, path: &Path) -> Self {
        self.rdb = Some(path.to_path_buf());
        self
    }

    /// Listens with TLS on a second port too (see the module documentation).
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Starts the server as a cluster node (`cluster-enabled yes`, `cluster-config-file` in
    /// its directory, this `cluster-node-timeout`, a free `cluster-port`), alone in its
    /// cluster until `redis-cli --cluster create` (see [`crate::cluster`]) joins it to others.
    pub fn cluster_node(mut self, node_timeout: Duration) -> Self {
        self.cluster_node_timeout = Some(node_timeout);
        self
    }

    /// Runs this server binary (another version: see [`other_server`]).
    pub fn binary(mut self, path: &Path) -> Self {
        self.binary = Some(path.to_path_buf());
        self
    }

    /// How long to wait for `PING` (scaled by the timeout scale).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts the server; panics with the log tail if it cannot.
    pub fn start(self) -> RedisServer {
        self.try_start()
            .unwrap_or_else(|err| panic!("redis-server did not start: {err}"))
    }

    /// Starts the server and waits until it answers `PING`.
    pub fn try_start(self) -> Result<RedisServer, StartError> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            match self.start_once()? {
                Ok(server) => return Ok(server),
                // The port was taken between the probe and redis-server's bind: try another.
                Err(port_taken) => last_error = Some(port_taken),
            }
        }
        Err(last_error.unwrap_or_else(|| StartError {
            message: "no free port".to_string(),
            log_tail: String::new(),
        }))
    }

    /// One attempt. The outer error is final; the inner one means "port taken, try again".
    fn start_once(&self) -> Result<Result<RedisServer, StartError>, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("replicant-redis-")
            .tempdir()
            .map_err(|err| setup_error(format!("cannot create a temp dir: {err}")))?;
        if let Some(rdb) = &self.rdb {
            fs::copy(rdb, dir.path().join(DB_FILENAME)).map_err(|err| {
                setup_error(format!(
                    "cannot copy {} into the server dir: {err}",
                    rdb.display()
                ))
            })?;
        }
        let wanted =
            1 + usize::from(self.cluster_node_timeout.is_some()) + usize::from(self.tls.is_some());
        let ports =
            free_ports(wanted).map_err(|err| setup_error(format!("no free port: {err}")))?;
        let mut extra = ports[1..].iter().copied();
        let port = ports[0];
        let bus_port = self.cluster_node_timeout.and_then(|_| extra.next());
        let tls_port = self.tls.as_ref().and_then(|_| extra.next());
        let output = File::create(dir.path().join("stdout.log"))
            .map_err(|err| setup_error(format!("cannot create stdout.log: {err}")))?;
        let output_err = output
            .try_clone()
            .map_err(|err| setup_error(format!("cannot clone a file handle: {err}")))?;

        let binary = self.binary.clone().unwrap_or_else(redis_server_binary);
        let mut command = Command::new(&binary);
        command
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir.path())
            .args(["--dbfilename", DB_FILENAME])
            .args(["--logfile", "redis.log"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"]);
        if major_version(&binary) >= 7 {
            // Before 7.0 DEBUG is always allowed, and the switch does not exist.
            command.args(["--enable-debug-command", "yes"]);
        }
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        if let (Some(node_timeout), Some(bus_port)) = (self.cluster_node_timeout, bus_port) {
            command
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", CLUSTER_CONFIG_FILENAME])
                .arg("--cluster-node-timeout")
                .arg(node_timeout.as_millis().to_string())
                .arg("--cluster-port")
                .arg(bus_port.to_string());
            // A cluster replica must be able to authenticate to its master.
            if let Some(password) = &self.password {
                command.args(["--masterauth", password]);
            }
        }
        if let (Some(tls), Some(tls_port)) = (&self.tls, tls_port) {
            command
                .arg("--tls-port")
                .arg(tls_port.to_string())
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .args([
                    "--tls-auth-clients",
                    if tls.auth_clients { "yes" } else { "no" },
                ]);
        }
        for (name, value) in &self.config {
            command.arg(format!("--{name}")).arg(value);
        }
        command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(output_err);
        let child = command.spawn().map_err(|err| {
            setup_error(format!(
                "cannot run {}: {err}",
                redis_server_binary().display()
            ))
        })?;

        let mut server = RedisServer {
            child,
            port,
            bus_port,
            tls_port,
            password: self.password.clone(),
            dir,
        };
        match server.wait_until_ready(self.start_timeout) {
            Ok(()) => Ok(Ok(server)),
            Err(message) => {
                let log_tail = server.log_tail(20);
                let error = StartError { message, log_tail };
                if error.log_tail.contains("Address already in use") {
                    Ok(Err(error))
                } else {
                    Err(error)
                }
            }
        }
    }
}

impl RedisServer {
    fn wait_until_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let what = format!("redis-server on port {} to answer PING", self.port);
        wait::wait_for(timeout, &what, || {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    return Check::Failed(format!("redis-server exited early ({status})"))
                }
                Ok(None) => {}
                Err(err) => return Check::Failed(format!("cannot poll redis-server: {err}")),
            }
            let pong = self
                .try_client()
                .and_then(|mut con| redis::cmd("PING").query::<String>(&mut con));
            match pong {
                Ok(_) => Check::Ready(()),
                // Refused (not listening yet) or -LOADING: both mean "not yet".
                Err(_) => Check::Pending,
            }
        })
    }
}

/// `user:password@`, `:password@`, `user@` or nothing.
fn userinfo(user: Option<&str>, password: Option<&str>) -> String {
    match (user, password) {
        (Some(user), Some(password)) => format!("{user}:{password}@"),
        (None, Some(password)) => format!(":{password}@"),
        (Some(user), None) => format!("{user}@"),
        (None, None) => String::new(),
    }
}

/// Opens a connection with connect, read and write timeouts.
pub fn connect(url: &str) -> redis::RedisResult<redis::Connection> {
    let con = redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(10))?;
    // Long enough for DEBUG DIGEST-VALUE or a pipelined fill of big keys on a slow machine.
    let io_timeout = Some(wait::scaled(Duration::from_secs(120)));
    con.set_read_timeout(io_timeout)?;
    con.set_write_timeout(io_timeout)?;
    Ok(con)
}

/// Another server version for the tests that need one: the binary `$var` names, else
/// `../shared/servers/<dir>/<file>` beside the repository (built from public sources, never
/// committed); `None` when neither is there (the test then says it is skipped, by name).
/// Sends `sig` (`-STOP`, `-CONT`, …) to the process `pid` with `kill`; panics if it fails.
pub fn signal(sig: &str, pid: u32) {
    let ok = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

/// The major version of a server binary (`--version`: `… v=7.0.15 …`); 0 if unreadable.
pub fn major_version(binary: &Path) -> u32 {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let v = text.split("v=").nth(1)?.split('.').next()?.to_string();
            v.parse().ok()
        })
        .unwrap_or(0)
}

pub fn other_server(var: &str, dir: &str, file: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    [
        repo.join("../shared/servers"),
        repo.join("../../shared/servers"),
    ]
    .into_iter()
    .map(|d| d.join(dir).join(file))
    .find(|p| p.is_file())
}

/// Says that `test` is skipped and why: printed, and appended to `$REPLICANT_SKIP_LOG` (where
/// `tests/run.sh` counts the skipped tests apart from the passed ones).
pub fn skipped(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}\n");
    print!("{line}");
    if let Some(path) = std::env::var_os("REPLICANT_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = fs::OpenOptions::new().append(true).create(true).open(path) {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// `$REDIS_SERVER`, or `redis-server` found on `PATH`; panics with what to install if neither.
pub fn redis_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("REDIS_SERVER") {
        return PathBuf::from(path);
    }
    find_on_path("redis-server").unwrap_or_else(|| {
        panic!(
            "redis-server not found on PATH: the end-to-end tests need Redis 7.0 \
             (`apt-get install -y redis-server redis-tools`), or set REDIS_SERVER to its path"
        )
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `n` distinct ports that were free a moment ago (the OS picks them; we release them for
/// redis-server). All are held at once, so the OS cannot give the same one twice.
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

fn setup_error(message: String) -> StartError {
    StartError {
        message,
        log_tail: String::new(),
    }
}

fn log_tail(dir: &Path, lines: usize) -> String {
    let mut out = String::new();
    for name in ["redis.log", "stdout.log"] {
        let text = fs::read(dir.join(name)).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let all: Vec<&str> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        if all.is_empty() {
            continue;
        }
        out.push_str(&format!("[{name}]\n"));
        for line in &all[all.len().saturating_sub(lines)..] {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
