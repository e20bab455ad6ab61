//! The monitoring files in `deploy/` against a running replicant and a real Prometheus.
//!
//! - `promtool check rules` accepts `deploy/prometheus/alerts.yml`, `promtool check config`
//!   accepts `deploy/prometheus/prometheus.yml`, and the rules' unit tests
//!   (`promtool test rules deploy/prometheus/alerts_test.yml`) pass.
//! - The flags and environment variables that `deploy/kubernetes/sidecar.yaml` and
//!   `deploy/systemd/` give replicant are ones `replicant sync --help` lists.
//! - A live sync's `/metrics` passes `promtool check metrics` (no errors, no lint warnings),
//!   and every `replicant_*` name used in `alerts.yml` and in
//!   `deploy/grafana/replicant-dashboard.json` is one that scrape exports.
//! - A Prometheus started here, with `deploy/prometheus/prometheus.yml` changed only in its
//!   target address and its intervals (1 s) and with the same rule file, scrapes the sync:
//!   `replicant_lag_bytes` has a value through `/api/v1/query`, every rule is loaded and
//!   evaluates without error (`/api/v1/rules`), no alert is active while the sync is healthy
//!   (`/api/v1/alerts`), and every query of the dashboard evaluates.
//!
//! `prometheus` and `promtool` are `$PROMETHEUS` and `$PROMTOOL`, else the ones on `PATH`
//! (the `prometheus` OS package; `tests/run.sh` installs it). When they are missing, the tests
//! try to install that package (as root, with `apt-get`); if that fails too they say they are
//! skipped, and why, on stderr.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use replicant_tests::barrier;
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::{self as rp, SyncProcess};
use replicant_tests::server::RedisServer;
use replicant_tests::wait::{self, Check};
use tempfile::TempDir;

/// Deadline of each wait on replicant, Prometheus or a tool (scaled).
const TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of installing the `prometheus` package.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// The target address in `deploy/prometheus/prometheus.yml` (replicant's default).
const DEPLOY_TARGET: &str = "127.0.0.1:9477";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package lives inside the workspace")
        .to_path_buf()
}

fn deploy_file(path: &str) -> PathBuf {
    repo_root().join("deploy").join(path)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// prometheus and promtool

struct Tools {
    prometheus: PathBuf,
    promtool: PathBuf,
}

/// The tools, installed if need be; `None` (after saying why) when the test must be skipped.
fn tools(test: &str) -> Option<&'static Tools> {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    let found = TOOLS.get_or_init(|| {
        if let Some(tools) = find_tools() {
            return Ok(tools);
        }
        eprintln!("prometheus or promtool not found: installing the `prometheus` package");
        let installed = install_prometheus();
        find_tools().ok_or_else(|| match installed {
            Ok(()) => "the `prometheus` package is installed but prometheus or promtool is \
                       still not on PATH"
                .to_string(),
            Err(e) => e,
        })
    });
    match found {
        Ok(tools) => Some(tools),
        Err(why) => {
            eprintln!(
                "SKIPPED {test}: prometheus and promtool are needed and cannot be installed \
                 ({why}). Install the `prometheus` package (tests/run.sh does), or set \
                 PROMETHEUS and PROMTOOL to the binaries."
            );
            None
        }
    }
}

fn find_tools() -> Option<Tools> {
    Some(Tools {
        prometheus: find_tool("PROMETHEUS", "prometheus")?,
        promtool: find_tool("PROMTOOL", "promtool")?,
    })
}

/// `$var` if set, else `name` on `PATH`.
fn find_tool(var: &str, name: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(path) => Some(PathBuf::from(path)),
        None => on_path(name),
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// `apt-get install prometheus`, as root only (a test does not ask for a password).
fn install_prometheus() -> Result<(), String> {
    let Some(apt) = on_path("apt-get") else {
        return Err("no apt-get".into());
    };
    let uid = run_tool(Path::new("id"), &["-u"], None, TIMEOUT)?;
    if uid.output.trim() != "0" {
        return Err("not root, and the tests do not use sudo".into());
    }
    let install = [
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "prometheus",
    ];
    if run_tool(&apt, &install, None, INSTALL_TIMEOUT)?.success() {
        return Ok(());
    }
    // The package lists may be empty (a fresh container): update, then try again.
    run_tool(&apt, &["update", "-qq"], None, INSTALL_TIMEOUT)?;
    let again = run_tool(&apt, &install, None, INSTALL_TIMEOUT)?;
    if again.success() {
        Ok(())
    } else {
        Err(format!(
            "apt-get install prometheus failed ({}): {}",
            again.status,
            rp::tail(&again.output, 5)
        ))
    }
}

/// A finished tool: its exit status, and its stdout followed by its stderr.
struct ToolRun {
    status: ExitStatus,
    output: String,
}

impl ToolRun {
    fn success(&self) -> bool {
        self.status.success()
    }
}

/// Runs `program args` with `stdin` (or none) under `timeout` (scaled; killed then). Output
/// goes to files, not pipes, so a chatty tool never blocks.
fn run_tool(
    program: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<ToolRun, String> {
    let dir = tempfile::Builder::new()
        .prefix("replicant-tool-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let create = |name: &str| {
        File::create(dir.path().join(name)).map_err(|e| format!("cannot create {name}: {e}"))
    };
    let input = match stdin {
        Some(bytes) => {
            create("stdin")?
                .write_all(bytes)
                .map_err(|e| format!("cannot write stdin: {e}"))?;
            Stdio::from(
                File::open(dir.path().join("stdin"))
                    .map_err(|e| format!("cannot open stdin: {e}"))?,
            )
        }
        None => Stdio::null(),
    };
    let mut child = Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(input)
        .stdout(create("stdout")?)
        .stderr(create("stderr")?)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let what = format!("{} {}", program.display(), args.join(" "));
    let waited = wait::wait_for(timeout, &what, || match child.try_wait() {
        Ok(Some(status)) => Check::Ready(status),
        Ok(None) => Check::Pending,
        Err(e) => Check::Failed(e.to_string()),
    });
    let status = match waited {
        Ok(status) => status,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let text = |name: &str| {
        String::from_utf8_lossy(&fs::read(dir.path().join(name)).unwrap_or_default()).into_owned()
    };
    Ok(ToolRun {
        status,
        output: text("stdout") + &text("stderr"),
    })
}

/// `promtool ARGS` must succeed; panics with its output otherwise.
fn promtool(tools: &Tools, args: &[&str], stdin: Option<&[u8]>) -> String {
    let run = run_tool(&tools.promtool, args, stdin, TIMEOUT)
        .unwrap_or_else(|e| panic!("promtool {}: {e}", args.join(" ")));
    assert!(
        run.success(),
        "promtool {} failed ({}):\n{}",
        args.join(" "),
        run.status,
        run.output
    );
    run.output
}

// ---------------------------------------------------------------------------------------
// HTTP

/// `GET path` from `addr` (HTTP/1.0: the body ends with the connection, never chunked).
fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let sock: SocketAddr = addr
        .parse()
        .map_err(|e| format!("bad address {addr}: {e}"))?;
    let timeout = Duration::from_secs(10);
    let mut stream =
        TcpStream::connect_timeout(&sock, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{addr}: {e}"))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| format!("GET {path} from {addr}: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("GET {path} from {addr}: {e}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path} from {addr}: no end of the head in {response:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("GET {path} from {addr}: bad status line in {head:?}"))?;
    Ok((code, body.to_string()))
}

/// `text` with everything but unreserved characters percent-encoded (a query parameter).
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Reading the deploy files

/// The distinct `replicant_*` metric names in `text`.
fn metric_names_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|token| token.starts_with("replicant_"))
        .map(str::to_string)
        .collect()
}

/// The metric names of an exposition (`/metrics`).
fn exported_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// The names of the alerting rules in an alert rules file (`- alert: NAME` lines).
fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_string())
        .collect()
}

/// The `"expr"` strings of a Grafana dashboard (JSON string escapes undone).
fn dashboard_exprs(dashboard: &str) -> Vec<String> {
    let mut exprs = Vec::new();
    let mut rest = dashboard;
    while let Some(at) = rest.find("\"expr\":") {
        rest = rest[at + "\"expr\":".len()..].trim_start();
        let Some(body) = rest.strip_prefix('"') else {
            continue;
        };
        let mut expr = String::new();
        let mut chars = body.char_indices();
        let mut end = body.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = i;
                    break;
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => expr.push('\n'),
                    Some((_, 't')) => expr.push('\t'),
                    Some((_, escaped)) => expr.push(escaped),
                    None => break,
                },
                c => expr.push(c),
            }
        }
        exprs.push(expr);
        rest = &body[end..];
    }
    exprs
}

/// A dashboard query with Grafana's variables as Prometheus can run it: every job and
/// instance, a 1-minute rate window.
fn without_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$job", ".*")
        .replace("$instance", ".*")
}

/// The flags (`--name`) that a `replicant` command line in a deploy file uses: the `- --flag`
/// items of a Kubernetes `args:` list, or the tokens of a systemd `ExecStart=`.
fn deploy_flags(text: &str) -> BTreeSet<String> {
    let flag = |token: &str| {
        token
            .split('=')
            .next()
            .unwrap_or(token)
            .trim_matches('"')
            .to_string()
    };
    let mut flags = BTreeSet::new();
    let mut in_exec = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(item) = trimmed.strip_prefix("- --") {
            flags.insert(flag(&format!("--{item}")));
        }
        // A systemd ExecStart, or a shell's `exec replicant …` (continued with backslashes).
        if trimmed.starts_with("ExecStart=") || trimmed.starts_with("exec replicant ") {
            in_exec = true;
        }
        if in_exec {
            flags.extend(
                trimmed
                    .split_whitespace()
                    .filter(|token| token.starts_with("--"))
                    .map(flag),
            );
            in_exec = trimmed.ends_with('\\');
        }
    }
    flags
}

/// The `REPLICANT_*` environment variable names in `text`.
fn replicant_env_vars(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|token| token.starts_with("REPLICANT_"))
        .map(str::to_string)
        .collect()
}

/// `deploy/prometheus/prometheus.yml` for a test: the target is `target` and every interval
/// is 1 s; the rest (the job, the rule file) unchanged.
fn derived_config(deploy: &str, target: &str) -> String {
    assert!(
        deploy.contains(DEPLOY_TARGET),
        "deploy/prometheus/prometheus.yml does not scrape {DEPLOY_TARGET}:\n{deploy}"
    );
    let mut config = String::new();
    for line in deploy.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let interval = ["scrape_interval:", "evaluation_interval:"]
            .into_iter()
            .find(|key| trimmed.starts_with(key));
        match interval {
            Some(key) => config.push_str(&format!("{indent}{key} 1s")),
            None => config.push_str(&line.replace(DEPLOY_TARGET, target)),
        }
        config.push('\n');
    }
    config
}

// ---------------------------------------------------------------------------------------
// A live sync

/// A source and a destination with replicant streaming between them, caught up.
struct LiveSync {
    _source: RedisServer,
    _target: RedisServer,
    sync: SyncProcess,
    /// Where replicant serves /metrics.
    metrics: String,
}

impl LiveSync {
    fn start() -> LiveSync {
        let source = RedisServer::builder()
            .config("repl-diskless-sync-delay", "0")
            .start();
        let target = RedisServer::start();
        write_keys(&source, "before", 200);
        let mut sync = SyncProcess::start(&source.url(), &target.url());
        let metrics = match metrics_addr(&mut sync) {
            Ok(addr) => addr,
            Err(e) => sync.fail(&e),
        };
        let ready = wait::wait_for(TIMEOUT, "/readyz to answer 200", || {
            if let Err(e) = sync.check_running() {
                return Check::Failed(e);
            }
            match http_get(&metrics, "/readyz") {
                Ok((200, _)) => Check::Ready(()),
                _ => Check::Pending,
            }
        });
        if let Err(e) = ready {
            sync.fail(&e);
        }
        write_keys(&source, "streamed", 200);
        if let Err(e) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
            sync.fail(&e);
        }
        LiveSync {
            _source: source,
            _target: target,
            sync,
            metrics,
        }
    }

    /// One scrape of /metrics.
    fn scrape(&self) -> String {
        match http_get(&self.metrics, "/metrics") {
            Ok((200, body)) => body,
            Ok((code, body)) => self.sync.fail(&format!("/metrics answered {code}: {body}")),
            Err(e) => self.sync.fail(&e),
        }
    }

    /// SIGTERM; replicant must exit 0.
    fn stop(self) {
        self.sync.stop();
    }
}

fn write_keys(source: &RedisServer, prefix: &str, n: usize) {
    let mut con = source.client();
    for i in 0..n {
        redis::cmd("SET")
            .arg(format!("{prefix}:{i}"))
            .arg(i)
            .query::<()>(&mut con)
            .expect("SET on the source");
    }
}

/// The address of replicant's metrics listener, from its log line.
fn metrics_addr(sync: &mut SyncProcess) -> Result<String, String> {
    wait::wait_for(TIMEOUT, "the `metrics on` log line", || {
        if let Err(e) = sync.check_running() {
            return Check::Failed(e);
        }
        let log = sync.log();
        match rp::log_line(&log, "metrics on http://")
            .and_then(|line| line.split("http://").nth(1))
            .and_then(|rest| rest.split('/').next())
        {
            Some(addr) => Check::Ready(addr.to_string()),
            None => Check::Pending,
        }
    })
}

// ---------------------------------------------------------------------------------------
// Prometheus

/// A `prometheus` process on a free loopback port with its own data dir, killed on drop.
struct Prometheus {
    child: Child,
    dir: TempDir,
    addr: String,
}

impl Prometheus {
    /// Starts Prometheus with `config` (written beside a copy of the deploy rule file, which
    /// the config names relatively) and waits until it is ready.
    fn start(tools: &Tools, config: &str) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("replicant-prometheus-")
            .tempdir()
            .expect("cannot create a temp dir for prometheus");
        let config_path = dir.path().join("prometheus.yml");
        fs::write(&config_path, config).expect("cannot write prometheus.yml");
        fs::copy(
            deploy_file("prometheus/alerts.yml"),
            dir.path().join("alerts.yml"),
        )
        .expect("cannot copy alerts.yml");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .expect("cannot find a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = File::create(dir.path().join("prometheus.log")).expect("cannot create a log");
        let log2 = log.try_clone().expect("cannot share the log file");
        let arg = |name: &str, value: &Path| {
            let mut arg = OsString::from(format!("--{name}="));
            arg.push(value.as_os_str());
            arg
        };
        let child = Command::new(&tools.prometheus)
            .arg(arg("config.file", &config_path))
            .arg(arg("storage.tsdb.path", &dir.path().join("data")))
            .arg(format!("--web.listen-address={addr}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", tools.prometheus.display()));
        let mut prometheus = Prometheus { child, dir, addr };
        let ready = wait::wait_for(TIMEOUT, "prometheus to be ready", || {
            match prometheus.child.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => return Check::Failed(format!("prometheus exited: {status}")),
                Err(e) => return Check::Failed(e.to_string()),
            }
            match http_get(&prometheus.addr, "/-/ready") {
                Ok((200, _)) => Check::Ready(()),
                _ => Check::Pending,
            }
        });
        if let Err(e) = ready {
            prometheus.fail(&e);
        }
        prometheus
    }

    fn fail(&self, message: &str) -> ! {
        let log = fs::read(self.dir.path().join("prometheus.log")).unwrap_or_default();
        panic!(
            "{message}\n--- prometheus log tail ---\n{}",
            rp::tail(&String::from_utf8_lossy(&log), 30)
        )
    }

    /// `GET path` answered 200 with `"status":"success"`: its body.
    fn api(&self, path: &str) -> Result<String, String> {
        match http_get(&self.addr, path)? {
            (200, body) if body.contains("\"status\":\"success\"") => Ok(body),
            (code, body) => Err(format!("GET {path}: {code} {body}")),
        }
    }

    /// An instant query: each result's labels (as JSON text) and value.
    fn query(&self, promql: &str) -> Result<Vec<(String, f64)>, String> {
        let body = self.api(&format!("/api/v1/query?query={}", url_encode(promql)))?;
        let mut results = Vec::new();
        for chunk in body.split("{\"metric\":").skip(1) {
            let labels = chunk.split('}').next().unwrap_or_default().to_string() + "}";
            let value = chunk
                .split_once("\"value\":[")
                .and_then(|(_, rest)| rest.split_once(",\""))
                .and_then(|(_, rest)| rest.split('"').next())
                .ok_or_else(|| format!("no value in {body}"))?;
            let value = value
                .parse::<f64>()
                .map_err(|e| format!("value {value:?} in {body}: {e}"))?;
            results.push((labels, value));
        }
        Ok(results)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn promtool_accepts_the_rules_and_the_config_and_the_rule_tests_pass() {
    let Some(tools) = tools("promtool_accepts_the_rules_and_the_config_and_the_rule_tests_pass")
    else {
        return;
    };
    let rules = deploy_file("prometheus/alerts.yml");
    let out = promtool(tools, &["check", "rules", &rules.to_string_lossy()], None);
    let count = alert_names(&read(&rules)).len();
    assert!(count >= 6, "only {count} alerts in alerts.yml");
    assert!(
        out.contains(&format!("SUCCESS: {count} rules found")),
        "promtool found another number of rules than {count}:\n{out}"
    );
    let config = deploy_file("prometheus/prometheus.yml");
    let out = promtool(tools, &["check", "config", &config.to_string_lossy()], None);
    assert!(out.contains("1 rule files found"), "{out}");
    let tests = deploy_file("prometheus/alerts_test.yml");
    promtool(tools, &["test", "rules", &tests.to_string_lossy()], None);
}

#[test]
fn the_deploy_files_use_only_flags_and_variables_replicant_knows() {
    let help = rp::run(
        &[OsString::from("sync"), OsString::from("--help")],
        &[],
        TIMEOUT,
    );
    assert!(help.status.success(), "{}", help.describe());
    let known: BTreeSet<&str> = help
        .stdout
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .collect();
    for file in [
        "kubernetes/sidecar.yaml",
        "kubernetes/sidecar-per-shard.yaml",
        "systemd/replicant.service",
    ] {
        let text = read(&deploy_file(file));
        let flags = deploy_flags(&text);
        assert!(
            flags.contains("--metrics-addr") && flags.contains("--state-dir"),
            "{file}: no --metrics-addr or --state-dir among {flags:?}"
        );
        let unknown: Vec<&String> = flags
            .iter()
            .filter(|flag| !known.contains(flag.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} gives replicant flags that `replicant sync --help` does not list: {unknown:?}"
        );
    }
    for file in [
        "kubernetes/sidecar.yaml",
        "kubernetes/sidecar-per-shard.yaml",
        "systemd/replicant.env.example",
    ] {
        let vars = replicant_env_vars(&read(&deploy_file(file)));
        assert!(
            vars.contains("REPLICANT_SOURCE_PASSWORD")
                && vars.contains("REPLICANT_TARGET_PASSWORD"),
            "{file}: the passwords are not passed in the environment ({vars:?})"
        );
        let unknown: Vec<&String> = vars
            .iter()
            .filter(|var| !help.stdout.contains(var.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} sets variables that `replicant sync --help` does not mention: {unknown:?}"
        );
    }
}

#[test]
fn a_live_scrape_passes_promtool_and_exports_every_name_the_rules_and_dashboard_use() {
    let Some(tools) =
        tools("a_live_scrape_passes_promtool_and_exports_every_name_the_rules_and_dashboard_use")
    else {
        return;
    };
    let _guard = heavy_test_guard();
    let mut used = BTreeSet::new();
    for file in ["prometheus/alerts.yml", "grafana/replicant-dashboard.json"] {
        let names = metric_names_in(&read(&deploy_file(file)));
        assert!(names.len() >= 5, "{file}: only {names:?}");
        used.extend(names);
    }
    let live = LiveSync::start();

    let scrape = live.scrape();
    let check = run_tool(
        &tools.promtool,
        &["check", "metrics"],
        Some(scrape.as_bytes()),
        TIMEOUT,
    )
    .unwrap_or_else(|e| live.sync.fail(&format!("promtool check metrics: {e}")));
    // Exit status 0 and no output: no errors and no lint warnings either.
    if !check.success() || !check.output.trim().is_empty() {
        live.sync.fail(&format!(
            "promtool check metrics ({}):\n{}\n--- the scrape ---\n{scrape}",
            check.status, check.output
        ));
    }

    // Some gauges appear once their value is known (the source's offset is polled once a
    // second): scrape until every used name is there.
    let missing = wait::wait_for(TIMEOUT, "every used metric name in a scrape", || {
        let exported = exported_names(&live.scrape());
        let missing: Vec<&String> = used.difference(&exported).collect();
        if missing.is_empty() {
            Check::Ready(())
        } else {
            Check::Pending
        }
    });
    if let Err(e) = missing {
        let exported = exported_names(&live.scrape());
        let missing: Vec<&String> = used.difference(&exported).collect();
        live.sync.fail(&format!(
            "{e}: deploy/ uses metric names replicant does not export: {missing:?}\n\
             exported: {exported:?}"
        ));
    }
    live.stop();
}

#[test]
fn prometheus_scrapes_replicant_with_the_deploy_config_and_loads_the_rules() {
    let Some(tools) =
        tools("prometheus_scrapes_replicant_with_the_deploy_config_and_loads_the_rules")
    else {
        return;
    };
    let _guard = heavy_test_guard();
    let live = LiveSync::start();
    let config = derived_config(
        &read(&deploy_file("prometheus/prometheus.yml")),
        &live.metrics,
    );
    let prometheus = Prometheus::start(tools, &config);
    let fail = |message: &str| -> ! {
        prometheus.fail(&format!(
            "{message}\n--- replicant log tail ---\n{}",
            live.sync.log_tail(20)
        ))
    };

    // The scrape: replicant_lag_bytes of this job and instance has a value.
    let instance = format!("\"instance\":\"{}\"", live.metrics);
    let lag = wait::wait_for(
        TIMEOUT,
        "replicant_lag_bytes in Prometheus",
        || match prometheus.query("replicant_lag_bytes") {
            Ok(results) => match results.iter().find(|(labels, _)| {
                labels.contains(&instance) && labels.contains("\"job\":\"replicant\"")
            }) {
                Some((_, value)) => Check::Ready(*value),
                None => Check::Pending,
            },
            Err(e) => Check::Failed(e),
        },
    )
    .unwrap_or_else(|e| fail(&e));
    assert!(
        lag.is_finite() && lag >= 0.0,
        "replicant_lag_bytes is {lag}"
    );
    let applied = prometheus
        .query("sum(replicant_applied_commands_total{job=\"replicant\"})")
        .unwrap_or_else(|e| fail(&e));
    assert!(
        applied.first().is_some_and(|(_, value)| *value >= 200.0),
        "the 200 streamed SETs are not in replicant_applied_commands_total: {applied:?}"
    );

    // The rules: every alert of alerts.yml loaded, and each evaluated without an error.
    let alerts = alert_names(&read(&deploy_file("prometheus/alerts.yml")));
    let rules = wait::wait_for(TIMEOUT, "every rule loaded and evaluated", || {
        let body = match prometheus.api("/api/v1/rules") {
            Ok(body) => body,
            Err(e) => return Check::Failed(e),
        };
        if body.contains("\"health\":\"err\"") {
            return Check::Failed(format!("a rule failed to evaluate: {body}"));
        }
        let loaded = alerts
            .iter()
            .all(|name| body.contains(&format!("\"name\":\"{name}\"")));
        if loaded && body.matches("\"health\":\"ok\"").count() == alerts.len() {
            Check::Ready(body)
        } else {
            Check::Pending
        }
    })
    .unwrap_or_else(|e| fail(&e));
    assert!(rules.contains("alerts.yml"), "{rules}");

    // A healthy sync sets off no alert, not even a pending one. Rules over rates need two
    // samples or more: wait for five scrapes (the rules are evaluated every second meanwhile).
    let scrapes = "count_over_time(replicant_uptime_seconds{job=\"replicant\"}[5m])";
    wait::wait_for(TIMEOUT, "five scrapes of replicant", || {
        match prometheus.query(scrapes) {
            Ok(results) if results.first().is_some_and(|(_, count)| *count >= 5.0) => {
                Check::Ready(())
            }
            Ok(_) => Check::Pending,
            Err(e) => Check::Failed(e),
        }
    })
    .unwrap_or_else(|e| fail(&e));
    let active = prometheus
        .api("/api/v1/alerts")
        .unwrap_or_else(|e| fail(&e));
    if !active.contains("\"alerts\":[]") {
        fail(&format!(
            "alerts are active while the sync is healthy: {active}"
        ));
    }

    // Every query of the dashboard evaluates.
    let exprs = dashboard_exprs(&read(&deploy_file("grafana/replicant-dashboard.json")));
    assert!(exprs.len() >= 10, "only {} dashboard queries", exprs.len());
    for expr in &exprs {
        let promql = without_grafana_variables(expr);
        if let Err(e) = prometheus.query(&promql) {
            fail(&format!(
                "the dashboard query {expr:?} does not evaluate: {e}"
            ));
        }
    }
    drop(prometheus);
    live.stop();
}

#[test]
fn helpers() {
    let config = derived_config(
        "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nscrape_configs:\n  \
         - targets:\n      - 127.0.0.1:9477\n",
        "127.0.0.1:5000",
    );
    assert_eq!(
        config,
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
         - targets:\n      - 127.0.0.1:5000\n"
    );
    assert_eq!(
        metric_names_in("rate(replicant_errors_total[5m]) > 0 and replicant_up{a=\"b\"}"),
        BTreeSet::from(["replicant_errors_total".into(), "replicant_up".into()])
    );
    assert_eq!(
        dashboard_exprs(r#"{"expr": "a{b=\"c\"}", "x": 1, "expr":"d"}"#),
        vec!["a{b=\"c\"}".to_string(), "d".to_string()]
    );
    assert_eq!(
        deploy_flags("args:\n  - sync\n  - --state-dir\n  - /x\n"),
        BTreeSet::from(["--state-dir".to_string()])
    );
    assert_eq!(
        deploy_flags("ExecStart=/bin/replicant sync \\\n  --grace 20 \\\n  --x=1\nKill=--no\n"),
        BTreeSet::from(["--grace".to_string(), "--x".to_string()])
    );
    assert_eq!(url_encode("a{b=\"c\"}"), "a%7Bb%3D%22c%22%7D");
}
