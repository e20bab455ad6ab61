//! The moving parts of a benchmark run: a native replica syncing, `replicant sync` syncing,
//! `redis-benchmark` loading the source, and a sampler of replication lag.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use redis::Connection;
use replicant_tests::server::RedisServer;

use crate::dataset::key_count;
use crate::procstat;
use crate::profile::{self, Recording};

/// How long any one wait may take before the run is declared broken.
const DEADLINE: Duration = Duration::from_secs(1800);

/// The release build of replicant (`$REPLICANT_BIN` overrides).
pub fn replicant_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("REPLICANT_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release/replicant")
}

/// More `replicant sync` arguments for every run, from `$REPLICANT_ARGS` (space-separated).
fn extra_args() -> Vec<String> {
    std::env::var("REPLICANT_ARGS")
        .map(|a| a.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// What one sync cost.
#[derive(Debug, Clone, Default)]
pub struct SyncCost {
    pub wall: Duration,
    pub peak_rss: Option<u64>,
    pub cpu_seconds: Option<f64>,
    /// CPU of the server that applied the data (the native replica itself, or replicant's
    /// destination).
    pub applier_cpu: Option<f64>,
}

fn info(c: &mut Connection, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query::<String>(c)
        .unwrap_or_default()
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

fn poll(mut done: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// A native replica of `src`, from `REPLICAOF` until it holds `keys` keys with the link up.
pub fn native_sync(src: &RedisServer, keys: u64) -> (RedisServer, SyncCost) {
    let (replica, cost, recording) = native_sync_recorded(src, keys);
    if let Some(r) = recording {
        r.report(&[(replica.pid(), "native replica")]);
    }
    (replica, cost)
}

/// [`native_sync`], with the profile (under `--profile`) still recording, for the caller to
/// report when what it measures is over.
pub fn native_sync_recorded(
    src: &RedisServer,
    keys: u64,
) -> (RedisServer, SyncCost, Option<Recording>) {
    let replica = RedisServer::start();
    let mut c = replica.client();
    let recording = profile::record("native-replica");
    let start = Instant::now();
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(src.port())
        .query::<()>(&mut c)
        .expect("REPLICAOF");
    poll(
        || {
            let i = info(&mut c, "replication");
            field(&i, "master_link_status") == Some("up")
                && field(&i, "master_sync_in_progress") == Some("0")
                && key_count(&mut c).unwrap_or(0) >= keys
        },
        "the native replica",
    );
    let wall = start.elapsed();
    let cpu = procstat::cpu_seconds(replica.pid());
    let cost = SyncCost {
        wall,
        peak_rss: procstat::peak_rss(replica.pid()),
        cpu_seconds: cpu,
        applier_cpu: cpu,
    };
    (replica, cost, recording)
}

/// A running `replicant sync`.
pub struct Replicant {
    child: Child,
    pub dst: RedisServer,
    recording: Option<Recording>,
}

impl Replicant {
    pub fn start(src: &RedisServer) -> Replicant {
        Self::start_with(src, &[])
    }

    /// With more `replicant sync` arguments (after `$REPLICANT_ARGS`).
    pub fn start_with(src: &RedisServer, more: &[&str]) -> Replicant {
        let dst = RedisServer::start();
        let recording = profile::record("replicant");
        let log = std::fs::File::create(dst.dir().join("replicant.log")).expect("log file");
        let child = Command::new(replicant_binary())
            .arg("sync")
            .arg("--source")
            .arg(src.url())
            .arg("--target")
            .arg(dst.url())
            .arg("--state-dir")
            .arg(dst.dir().join("replicant-state"))
            .args(extra_args())
            .args(more)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (run bench/run.sh, which builds it)",
                    replicant_binary().display()
                )
            });
        Replicant {
            child,
            dst,
            recording,
        }
    }

    /// Prints the profile of the run so far: the destination and replicant (with `--profile`).
    pub fn report_profiles(&mut self) {
        if let Some(r) = self.recording.take() {
            r.report(&[(self.dst.pid(), "destination"), (self.pid(), "replicant")]);
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn cost(&self) -> SyncCost {
        SyncCost {
            wall: Duration::ZERO,
            peak_rss: procstat::peak_rss(self.pid()),
            cpu_seconds: procstat::cpu_seconds(self.pid()),
            applier_cpu: procstat::cpu_seconds(self.dst.pid()),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dst.dir().join("replicant.log")).unwrap_or_default()
    }

    /// SIGTERM and wait.
    pub fn stop(mut self) {
        self.report_profiles();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while self.alive() && start.elapsed() < Duration::from_secs(30) {
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `replicant sync` of `src` until the destination holds `keys` keys.
pub fn replicant_sync(src: &RedisServer, keys: u64) -> (Replicant, SyncCost) {
    let start = Instant::now();
    let mut r = Replicant::start(src);
    let mut c = r.dst.client();
    poll(
        || {
            assert!(r.alive(), "replicant exited:\n{}", r.log());
            key_count(&mut c).unwrap_or(0) >= keys
        },
        "replicant's destination",
    );
    let wall = start.elapsed();
    let mut cost = r.cost();
    cost.wall = wall;
    r.report_profiles();
    (r, cost)
}

/// Waits until a replica of `src` has acknowledged everything (`offset == master_repl_offset`).
pub fn wait_caught_up(src: &RedisServer) {
    let mut c = src.client();
    poll(
        || {
            let s = lag_sample(&mut c);
            matches!(s, Some(0))
        },
        "the replica to catch up",
    );
}

/// Source `master_repl_offset` minus the first replica's acknowledged offset.
pub fn lag_sample(c: &mut Connection) -> Option<u64> {
    let i = info(c, "replication");
    let master: u64 = field(&i, "master_repl_offset")?.parse().ok()?;
    let slave = field(&i, "slave0")?;
    let off: u64 = slave
        .split(',')
        .find_map(|kv| kv.strip_prefix("offset="))?
        .parse()
        .ok()?;
    Some(master.saturating_sub(off))
}

/// Samples replication lag every 10 ms on a thread until stopped.
pub struct LagSampler {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Vec<u64>>,
}

impl LagSampler {
    pub fn start(src: &RedisServer) -> LagSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let mut c = src.client();
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let mut v = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Some(l) = lag_sample(&mut c) {
                    v.push(l);
                }
                thread::sleep(Duration::from_millis(10));
            }
            v
        });
        LagSampler { stop, handle }
    }

    /// Stops and returns (p50, p99, max) in bytes.
    pub fn finish(self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let mut v = self.handle.join().unwrap_or_default();
        if v.is_empty() {
            return (0, 0, 0);
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
        (at(0.5), at(0.99), v[v.len() - 1])
    }
}

/// Runs `redis-benchmark` against `src` (pipelined, mixed writes); returns (ops, seconds).
pub fn load(src: &RedisServer, requests: u64) -> (u64, f64) {
    let tests = "set,incr,lpush,sadd,hset,zadd";
    let start = Instant::now();
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &src.port().to_string()])
        .args([
            "-n",
            &requests.to_string(),
            "-r",
            "100000",
            "-P",
            "16",
            "-c",
            "8",
        ])
        .args(["-t", tests, "--csv"])
        .output()
        .expect("redis-benchmark (from redis-tools)");
    assert!(out.status.success(), "redis-benchmark failed");
    // CSV lines: "TEST","rps",...; the time is the sum over tests of requests / rps.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut secs = 0.0;
    let mut ops = 0;
    for line in text.lines().skip(1) {
        let rps: Option<f64> = line
            .split(',')
            .nth(1)
            .and_then(|v| v.trim_matches('"').parse().ok());
        if let Some(rps) = rps.filter(|r| *r > 0.0) {
            secs += requests as f64 / rps;
            ops += requests;
        }
    }
    if ops == 0 {
        return (requests, start.elapsed().as_secs_f64());
    }
    (ops, secs)
}
