//! Running the `replicant` binary: `sync` as a supervised child, `load` and `verify` to
//! completion.
//!
//! The binary is `$REPLICANT_BIN` if set, else `debug/replicant` under `$CARGO_TARGET_DIR` or
//! the workspace's `target/`. It is built by `cargo build --workspace`, not by this package,
//! which never links replicant's crates (a warning says so when the binary is older than its
//! sources). Children get stdin from `/dev/null` and write stdout
//! and stderr to files in their own temp dir (a pipe nobody reads could block them). The
//! inherited `REPLICANT_*_PASSWORD` variables are removed unless a test sets them, and so is
//! `RUST_LOG` (replicant's log filter), unless `REPLICANT_TESTS_LOG` gives one.

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Once;
use std::time::{Duration, SystemTime};

use tempfile::TempDir;

use crate::wait::{self, Check};

/// How long `replicant` may take to exit after SIGTERM (scaled).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The default deadline for `replicant load` (scaled).
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// The deadline for `replicant verify` (scaled).
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(180);
/// Warning and error lines of the log a failure shows, at most.
const FIRST_WARNINGS: usize = 10;
/// The environment variables that carry passwords.
const PASSWORD_VARS: [&str; 3] = [
    "REPLICANT_SOURCE_PASSWORD",
    "REPLICANT_TARGET_PASSWORD",
    "REPLICANT_ADMIN_PASSWORD",
];

/// The admin port's password every process gets (`REPLICANT_ADMIN_PASSWORD`) unless a test
/// sets its own: `sync` asks it before CUTOVER, `replicant cutover` sends it.
pub const ADMIN_PASSWORD: &str = "replicant-tests-admin";

/// The `replicant` binary; panics with what to do if it has not been built.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("REPLICANT_BIN") {
        return PathBuf::from(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package lives inside the workspace")
        .to_path_buf();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    let path = target.join("debug").join("replicant");
    assert!(
        path.is_file(),
        "replicant binary not found at {}: run `cargo build --workspace` first \
         (or set REPLICANT_BIN to the binary to test)",
        path.display()
    );
    static STALE_CHECK: Once = Once::new();
    STALE_CHECK.call_once(|| warn_if_stale(&path, &workspace));
    path
}

/// Warns (once) when a source file of replicant is newer than the binary: this package cannot
/// build the binary itself, and testing an old one is a confusing way to lose an hour.
fn warn_if_stale(binary: &Path, workspace: &Path) {
    let Ok(built) = fs::metadata(binary).and_then(|meta| meta.modified()) else {
        return;
    };
    let mut newer = None;
    for dir in ["proxy", "replay"] {
        visit_files(&workspace.join(dir), &mut |file, modified| {
            if modified > built
                && file
                    .extension()
                    .is_some_and(|ext| ext == "rs" || ext == "toml")
            {
                newer = Some(file.to_path_buf());
            }
        });
    }
    if let Some(file) = newer {
        eprintln!(
            "warning: {} is older than {}: run `cargo build --workspace` to test the current code",
            binary.display(),
            file.display()
        );
    }
}

fn visit_files(dir: &Path, visit: &mut dyn FnMut(&Path, SystemTime)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            visit_files(&path, visit);
        } else if let Ok(modified) = entry.metadata().and_then(|meta| meta.modified()) {
            visit(&path, modified);
        }
    }
}

/// What a finished (or killed) `replicant` run left behind.
#[derive(Debug)]
pub struct RunOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The run outlived its deadline and was killed (then `status` is the kill's).
    pub timed_out: bool,
}

impl RunOutput {
    /// The command's result in a few lines, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "status: {}{}\n--- stderr ---\n{}\n--- stdout (tail) ---\n{}",
            self.status,
            if self.timed_out {
                " (killed at the deadline)"
            } else {
                ""
            },
            tail(&self.stderr, 30),
            tail(&self.stdout, 10)
        )
    }
}

/// `replicant load FILE --target URL`, under [`LOAD_TIMEOUT`].
pub fn load(file: &Path, target_url: &str) -> RunOutput {
    load_with_timeout(file, target_url, LOAD_TIMEOUT)
}

/// `replicant load FILE --target URL`; killed after `timeout` (scaled).
pub fn load_with_timeout(file: &Path, target_url: &str, timeout: Duration) -> RunOutput {
    load_with_args(file, target_url, &[], timeout)
}

/// `replicant load FILE --target URL EXTRA…`; killed after `timeout` (scaled).
pub fn load_with_args(
    file: &Path,
    target_url: &str,
    extra: &[&str],
    timeout: Duration,
) -> RunOutput {
    let mut args = vec![
        OsString::from("load"),
        file.as_os_str().to_owned(),
        OsString::from("--target"),
        OsString::from(target_url),
    ];
    args.extend(extra.iter().map(OsString::from));
    run(&args, &[], timeout)
}

/// `replicant verify --source SOURCE --target TARGET EXTRA…`, under [`VERIFY_TIMEOUT`].
pub fn verify(source_url: &str, target_url: &str, extra: &[&str]) -> RunOutput {
    let mut args: Vec<OsString> = ["verify", "--source", source_url, "--target", target_url]
        .into_iter()
        .map(OsString::from)
        .collect();
    args.extend(extra.iter().map(OsString::from));
    run(&args, &[], VERIFY_TIMEOUT)
}

/// Runs `replicant ARGS` with extra environment `env` until it exits or `timeout` (scaled).
pub fn run(args: &[OsString], env: &[(&str, &str)], timeout: Duration) -> RunOutput {
    let mut process = Process::spawn(args, env);
    let status = process.wait_exit(timeout);
    let timed_out = status.is_none();
    let status = match status {
        Some(status) => status,
        None => process.kill(),
    };
    RunOutput {
        status,
        stdout: read_lossy(&process.stdout_path()),
        stderr: read_lossy(&process.stderr_path()),
        timed_out,
    }
}

/// A running `replicant sync`. Dropping it kills the process; [`SyncProcess::stop`] is the
/// orderly way (SIGTERM, then exit status 0 is asserted).
pub struct SyncProcess {
    process: Process,
}

/// How to start a [`SyncProcess`].
pub struct SyncBuilder {
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    /// Runs it inside this network namespace (`ip netns exec NAME`).
    netns: Option<String>,
}

impl SyncBuilder {
    /// Adds command-line arguments after `--source … --target …`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(OsString::from(arg));
        self
    }

    /// Runs replicant inside the network namespace `ns` (see [`crate::netns`]).
    pub fn in_netns(mut self, ns: &crate::netns::Netns) -> Self {
        self.netns = Some(ns.name().to_string());
        self
    }

    /// Sets an environment variable for the child (e.g. `REPLICANT_SOURCE_PASSWORD`).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn start(self) -> SyncProcess {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        SyncProcess {
            process: Process::spawn_in(&self.args, &env, self.netns.as_deref()),
        }
    }
}

impl SyncProcess {
    /// `replicant sync --source SOURCE --target TARGET`, started now.
    pub fn start(source_url: &str, target_url: &str) -> SyncProcess {
        SyncProcess::builder(source_url, target_url).start()
    }

    pub fn builder(source_url: &str, target_url: &str) -> SyncBuilder {
        SyncBuilder {
            args: ["sync", "--source", source_url, "--target", target_url]
                .into_iter()
                .map(OsString::from)
                .collect(),
            env: Vec::new(),
            netns: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// The admin port it listens on (`IP:PORT`, from its log), waiting up to `timeout` for the
    /// line; panics if it exits first or never says.
    pub fn admin_addr(&mut self, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + crate::wait::scaled(timeout);
        loop {
            let port = self
                .log()
                .lines()
                .find(|l| l.contains("admin port"))
                .and_then(|l| {
                    l.split(" -p ")
                        .nth(1)?
                        .split_whitespace()
                        .next()
                        .map(str::to_string)
                });
            if let Some(port) = port {
                return format!("127.0.0.1:{port}");
            }
            if let Err(e) = self.check_running() {
                self.fail(&e);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no admin port in the log"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process wrote to stderr so far (its log).
    pub fn log(&self) -> String {
        read_lossy(&self.process.stderr_path())
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }

    /// `Err` with the exit status if the process is no longer running: for polling loops that
    /// must not wait out their deadline on a dead process (add [`SyncProcess::log_tail`] to
    /// the failure message).
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.process.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("replicant sync exited unexpectedly ({status})")),
            Err(err) => Err(format!("cannot poll replicant: {err}")),
        }
    }

    /// The sync barrier on `source` (within `timeout`), then `target` must equal it key by key
    /// (a live comparison); else this run fails with the differences and its log.
    pub fn synced_and_equal(
        &mut self,
        source: &crate::server::RedisServer,
        target: &impl crate::compare::Compared,
        timeout: Duration,
    ) {
        if let Err(err) = crate::barrier::wait_for_sync(source, timeout, || self.check_running()) {
            self.fail(&err);
        }
        let differences = crate::compare::dataset_differences_with(
            source,
            target,
            crate::compare::CompareOptions::live_replication(),
        );
        if !differences.is_empty() {
            self.fail(&crate::compare::format_differences(&differences));
        }
    }

    /// Panics with `message`, the first warnings and errors of the log (a loop that repeats
    /// one line pushes its cause out of the tail) and the tail: for failures during a sync.
    pub fn fail(&self, message: &str) -> ! {
        let log = self.log();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
            .take(FIRST_WARNINGS)
            .collect();
        let warnings = if warnings.is_empty() {
            String::new()
        } else {
            format!(
                "\n--- replicant's first warnings and errors ---\n{}",
                warnings.join("\n")
            )
        };
        panic!(
            "{message}{warnings}\n--- replicant log tail ---\n{}",
            tail(&log, 40)
        )
    }

    /// Waits until the process exits by itself, up to `timeout` (scaled); `None` if it is
    /// still running then.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(timeout)
    }

    /// Kills the process with SIGKILL (no chance to save anything) and returns its log.
    pub fn kill(mut self) -> String {
        self.process.kill();
        self.log()
    }

    /// Sends SIGTERM, waits for the exit, and asserts it was status 0; panics with the log
    /// tail otherwise (including when it does not exit within the deadline). Returns the
    /// whole log, for the lines written while stopping (see [`log_line`]).
    pub fn stop(mut self) -> String {
        if let Ok(Some(status)) = self.process.child.try_wait() {
            panic!(
                "replicant sync had already exited ({status}) before SIGTERM\n\
                 --- replicant log tail ---\n{}",
                self.log_tail(40)
            );
        }
        let pid = self.pid().to_string();
        // `kill` rather than libc: the workspace forbids unsafe code.
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap_or_else(|err| panic!("cannot run `kill -TERM {pid}`: {err}"));
        assert!(sent.success(), "`kill -TERM {pid}` failed: {sent}");
        match self.process.wait_exit(STOP_TIMEOUT) {
            Some(status) if status.success() => self.log(),
            Some(status) => panic!(
                "replicant sync exited with {status} after SIGTERM (expected 0)\n\
                 --- replicant log tail ---\n{}",
                self.log_tail(40)
            ),
            None => {
                let log = self.log_tail(40);
                self.process.kill();
                panic!(
                    "replicant sync did not exit within {:?} of SIGTERM\n\
                     --- replicant log tail ---\n{log}",
                    wait::scaled(STOP_TIMEOUT)
                )
            }
        }
    }
}

/// A child `replicant` with its output files.
struct Process {
    child: Child,
    dir: TempDir,
}

impl Process {
    fn spawn(args: &[OsString], env: &[(&str, &str)]) -> Process {
        Self::spawn_in(args, env, None)
    }

    /// In network namespace `netns`, if given (`ip netns exec` runs replicant in its place:
    /// the child's pid is replicant's).
    fn spawn_in(args: &[OsString], env: &[(&str, &str)], netns: Option<&str>) -> Process {
        let dir = tempfile::Builder::new()
            .prefix("replicant-run-")
            .tempdir()
            .expect("cannot create a temp dir for replicant's output");
        let stdout = File::create(dir.path().join("stdout.log")).expect("cannot create stdout.log");
        let stderr = File::create(dir.path().join("stderr.log")).expect("cannot create stderr.log");
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        // Free ports for a sync's metrics and admin listeners: tests run side by side (a
        // test's own --metrics-addr/--admin-addr, given later, wins).
        let listeners: &[&str] = if args.first().is_some_and(|a| a == "sync") {
            &[
                "--metrics-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
            ]
        } else {
            &[]
        };
        // The working directory is the run's own, so that the default --state-dir of one test
        // is never another's.
        command
            .current_dir(dir.path())
            .args(args.iter().take(1))
            .args(listeners)
            .args(args.iter().skip(1))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for name in PASSWORD_VARS {
            command.env_remove(name);
        }
        command.env("REPLICANT_ADMIN_PASSWORD", ADMIN_PASSWORD);
        // replicant reads its log filter from RUST_LOG: the runner's own must not change what
        // the tests see on stderr. REPLICANT_TESTS_LOG passes one on, for debugging.
        command.env_remove("RUST_LOG");
        if let Some(filter) = std::env::var_os("REPLICANT_TESTS_LOG") {
            command.env("RUST_LOG", filter);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary().display()));
        Process { child, dir }
    }

    fn stdout_path(&self) -> PathBuf {
        self.dir.path().join("stdout.log")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("stderr.log")
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = &mut self.child;
        wait::wait_for(timeout, "replicant to exit", || match child.try_wait() {
            Ok(Some(status)) => Check::Ready(status),
            Ok(None) => Check::Pending,
            Err(err) => Check::Failed(err.to_string()),
        })
        .ok()
    }

    /// SIGKILL and reap; the exit status that gives.
    fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child
            .wait()
            .expect("cannot reap a killed replicant process")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The last line of `log` that contains `marker` (e.g. `sync stopped`).
pub fn log_line<'a>(log: &'a str, marker: &str) -> Option<&'a str> {
    log.lines().rev().find(|line| line.contains(marker))
}

/// The value of the field `name=value` in a log line (tracing's format), without quotes.
pub fn log_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|token| {
        let value = token.strip_prefix(name)?.strip_prefix('=')?;
        Some(value.trim_end_matches(',').trim_matches('"'))
    })
}

/// The field `name` of a log line as a number.
pub fn log_count(line: &str, name: &str) -> Option<u64> {
    log_field(line, name)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_fields() {
        let log = "2025-01-01T00:00:00Z  INFO replicant: synced\n\
            2025-01-01T00:00:01Z  INFO replicant::sync: sync stopped split_commands=12 \
            split_transactions=3, unsplittable=0 target=\"127.0.0.1:7000\"\n";
        let line = log_line(log, "sync stopped").expect("the line is there");
        assert_eq!(log_count(line, "split_commands"), Some(12));
        assert_eq!(log_count(line, "split_transactions"), Some(3));
        assert_eq!(log_count(line, "unsplittable"), Some(0));
        assert_eq!(log_field(line, "target"), Some("127.0.0.1:7000"));
        assert_eq!(log_field(line, "split"), None);
        assert!(log_line(log, "no such line").is_none());
    }
}
