//! `replicant-bench`: replicant side by side with Redis's own replication on this machine.
//! Every scenario measures its baseline in the same run, so the figures that matter are the
//! ratios, which survive a noisy machine.
//!
//! - `full-sync`: a generated dataset, synced by a native replica and by `replicant sync`.
//! - `stream`: a sustained `redis-benchmark` load with no replica, a native one, replicant.
//! - `big-key`: a list, a hash and a sorted set of many elements each.
//! - `cluster`: a source cluster into a destination cluster: native replicas, replicant (one per
//!   shard), RedisShake when present.
//!
//! `--quick` shrinks each to under a minute (a smoke test that keeps the instrument working).

mod cluster;
mod dataset;
mod procstat;
mod profile;
mod runner;

use std::time::Duration;

use clap::{Parser, ValueEnum};
use replicant_tests::server::RedisServer;

use runner::{LagSampler, Replicant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    FullSync,
    Stream,
    BigKey,
    /// A 3-master source cluster into a 3-master destination cluster.
    Cluster,
    All,
}

#[derive(Debug, Parser)]
#[command(about = "Benchmarks of replicant against native Redis replication")]
struct Cli {
    #[arg(value_enum)]
    scenario: Scenario,
    /// Small sizes, under a minute per scenario.
    #[arg(long)]
    quick: bool,
    /// full-sync: dataset size in MiB (used_memory_dataset of the source).
    #[arg(long)]
    size_mb: Option<u64>,
    /// big-key: elements per big key.
    #[arg(long)]
    elements: Option<u64>,
    /// stream: requests per redis-benchmark test (six tests: SET INCR LPUSH SADD HSET ZADD).
    #[arg(long)]
    requests: Option<u64>,
    /// stream: rounds of the three runs (no replica, native, replicant), reported one by one
    /// and as the median of their ratios [default: 3, 1 with --quick].
    #[arg(long)]
    rounds: Option<usize>,
    /// Samples the server that applies the data (and replicant) with `perf record`, keeps the
    /// recordings in DIR and prints the top symbols of each.
    #[arg(long, value_name = "DIR")]
    profile: Option<std::path::PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    if let Some(dir) = cli.profile.clone() {
        profile::enable(dir);
    }
    let all = cli.scenario == Scenario::All;
    println!(
        "replicant-bench: {} ({} cores)",
        if cli.quick { "quick" } else { "full" },
        cores()
    );
    if all || cli.scenario == Scenario::FullSync {
        let mb = cli.size_mb.unwrap_or(if cli.quick { 32 } else { 1024 });
        full_sync(mb, if cli.quick { 20_000 } else { 300_000 });
    }
    if all || cli.scenario == Scenario::Stream {
        stream(
            cli.requests
                .unwrap_or(if cli.quick { 50_000 } else { 1_000_000 }),
            cli.rounds.unwrap_or(if cli.quick { 1 } else { 3 }).max(1),
        );
    }
    if all || cli.scenario == Scenario::Cluster {
        cluster::run(cli.size_mb.unwrap_or(if cli.quick { 32 } else { 1024 }));
    }
    if all || cli.scenario == Scenario::BigKey {
        big_key(
            cli.elements
                .unwrap_or(if cli.quick { 200_000 } else { 10_000_000 }),
        );
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn source() -> RedisServer {
    RedisServer::builder()
        .config("repl-diskless-sync", "yes")
        .config("repl-diskless-sync-delay", "0")
        .config("client-output-buffer-limit", "replica 0 0 0")
        .start()
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn opt_mib(b: Option<u64>) -> String {
    b.map_or("-".into(), |b| format!("{:.1} MiB", mib(b)))
}

fn opt_s(s: Option<f64>) -> String {
    s.map_or("-".into(), |s| format!("{s:.2} s"))
}

fn full_sync(size_mb: u64, big_elements: u64) {
    let src = source();
    let mut c = src.client();
    let keys = dataset::fill_mixed(&mut c, size_mb << 20, big_elements).expect("fill");
    let keys = dataset::key_count(&mut c).unwrap_or(keys);
    let bytes = used_dataset(&mut c);
    println!(
        "\n## full-sync: {keys} keys, {:.0} MiB dataset (3 big keys of {big_elements} elements)",
        mib(bytes)
    );

    let (replica, native) = runner::native_sync(&src, keys);
    drop(replica);
    let (r, ours) = runner::replicant_sync(&src, keys);
    let log = r.log();
    r.stop();
    let ratio = secs(ours.wall) / secs(native.wall);
    println!("| run | wall | MB/s | keys/s | peak RSS | CPU | applying server CPU |");
    println!("|---|---|---|---|---|---|---|");
    for (name, cost) in [("native replica", &native), ("replicant", &ours)] {
        println!(
            "| {name} | {:.2} s | {:.0} | {:.0} | {} | {} | {} |",
            secs(cost.wall),
            mib(bytes) / secs(cost.wall),
            keys as f64 / secs(cost.wall),
            opt_mib(cost.peak_rss),
            opt_s(cost.cpu_seconds),
            opt_s(cost.applier_cpu)
        );
    }
    println!("replicant / native wall time: {ratio:.2}");
    if let Some(line) = log.lines().find(|l| l.contains("snapshot planned")) {
        println!(
            "replicant: {}",
            line.split("INFO").last().unwrap_or(line).trim()
        );
    }
}

pub(crate) fn used_dataset(c: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(c)
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory_dataset:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// One round of `stream`: the four ways, one after the other, on the same source (replicant
/// with the default exactly-once delivery, and with `--delivery at-least-once`).
struct StreamRound {
    alone: f64,
    native: f64,
    ours: f64,
    loose: f64,
    native_lag: (u64, u64, u64),
    ours_lag: (u64, u64, u64),
    loose_lag: (u64, u64, u64),
    cpu_per_m: f64,
    loose_cpu_per_m: f64,
}

impl StreamRound {
    fn ops_ratio(&self) -> f64 {
        self.ours / self.native
    }

    /// Exactly-once against at-least-once: its cost.
    fn delivery_ratio(&self) -> f64 {
        self.ours / self.loose
    }

    fn lag_ratio(&self) -> f64 {
        self.ours_lag.1 as f64 / self.native_lag.1.max(1) as f64
    }
}

fn stream(requests: u64, rounds: usize) {
    println!(
        "\n## stream: redis-benchmark -P 16 -c 8, {requests} requests x SET INCR LPUSH SADD HSET ZADD, {rounds} round(s)"
    );
    let src = source();
    let mut all = Vec::new();
    for _ in 0..rounds {
        all.push(stream_round(&src, requests));
    }
    let kib = |b: u64| format!("{:.0} KiB", b as f64 / 1024.0);
    println!("| round | run | source ops/s | lag p50 | lag p99 | lag max |");
    println!("|---|---|---|---|---|---|");
    for (i, r) in all.iter().enumerate() {
        let n = i + 1;
        println!("| {n} | no replica | {:.0} | - | - | - |", r.alone);
        for (name, ops, lag) in [
            ("native replica", r.native, r.native_lag),
            ("replicant", r.ours, r.ours_lag),
            ("replicant --delivery at-least-once", r.loose, r.loose_lag),
        ] {
            println!(
                "| {n} | {name} | {ops:.0} | {} | {} | {} |",
                kib(lag.0),
                kib(lag.1),
                kib(lag.2)
            );
        }
    }
    for (i, r) in all.iter().enumerate() {
        println!(
            "round {}: replicant / native: ops/s {:.2}, lag p99 {:.2}; replicant CPU {:.2} s per million commands; exactly-once / at-least-once: ops/s {:.2}, CPU {:.2} / {:.2} s per million commands",
            i + 1,
            r.ops_ratio(),
            r.lag_ratio(),
            r.cpu_per_m,
            r.delivery_ratio(),
            r.cpu_per_m,
            r.loose_cpu_per_m
        );
    }
    if rounds > 1 {
        println!(
            "median of {rounds} rounds: replicant / native: ops/s {:.2}, lag p99 {:.2}; replicant CPU {:.2} s per million commands",
            median(all.iter().map(StreamRound::ops_ratio)),
            median(all.iter().map(StreamRound::lag_ratio)),
            median(all.iter().map(|r| r.cpu_per_m))
        );
        println!(
            "median of {rounds} rounds: exactly-once / at-least-once ops/s {:.2}",
            median(all.iter().map(StreamRound::delivery_ratio))
        );
    }
}

/// Streams `requests` through a replicant started with `more` arguments: source ops/s, lag
/// (p50, p99, max) and replicant's CPU seconds per million commands.
fn replicant_round(src: &RedisServer, requests: u64, more: &[&str]) -> (f64, (u64, u64, u64), f64) {
    let r = Replicant::start_with(src, more);
    runner::wait_caught_up(src);
    let cpu0 = r.cost().cpu_seconds.unwrap_or(0.0);
    let sampler = LagSampler::start(src);
    let (ops, t) = runner::load(src, requests);
    let lag = sampler.finish();
    runner::wait_caught_up(src);
    let cpu = r.cost().cpu_seconds.unwrap_or(0.0) - cpu0;
    r.stop();
    (ops as f64 / t, lag, cpu / (ops as f64 / 1e6))
}

fn stream_round(src: &RedisServer, requests: u64) -> StreamRound {
    let (ops, t) = runner::load(src, requests);
    let alone = ops as f64 / t;

    let keys = dataset::key_count(&mut src.client()).unwrap_or(0);
    let (replica, _, recording) = runner::native_sync_recorded(src, keys);
    runner::wait_caught_up(src);
    let sampler = LagSampler::start(src);
    let (ops, t) = runner::load(src, requests);
    let native_lag = sampler.finish();
    let native = ops as f64 / t;
    if let Some(r) = recording {
        r.report(&[(replica.pid(), "native replica")]);
    }
    drop(replica);

    let (ours, ours_lag, cpu_per_m) = replicant_round(src, requests, &[]);
    let (loose, loose_lag, loose_cpu_per_m) =
        replicant_round(src, requests, &["--delivery", "at-least-once"]);
    StreamRound {
        alone,
        native,
        ours,
        loose,
        native_lag,
        ours_lag,
        loose_lag,
        cpu_per_m,
        loose_cpu_per_m,
    }
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn big_key(elements: u64) {
    println!("\n## big-key: a list, a hash and a sorted set of {elements} elements each");
    let src = source();
    let mut c = src.client();
    dataset::fill_big(&mut c, "big", elements).expect("fill");
    let bytes = used_dataset(&mut c);
    let (replica, native) = runner::native_sync(&src, 3);
    // The native replica has the keys once their last element is loaded: they appear whole.
    drop(replica);
    let (r, ours) = {
        let start = std::time::Instant::now();
        let mut r = Replicant::start(&src);
        let mut d = r.dst.client();
        let deadline = std::time::Instant::now() + Duration::from_secs(1800);
        loop {
            let full = |cmd: &str, key: &str, d: &mut redis::Connection| {
                redis::cmd(cmd).arg(key).query::<u64>(d).unwrap_or(0) >= elements
            };
            if full("LLEN", "big:list", &mut d)
                && full("HLEN", "big:hash", &mut d)
                && full("ZCARD", "big:zset", &mut d)
            {
                break;
            }
            assert!(r.alive(), "replicant exited:\n{}", r.log());
            assert!(
                std::time::Instant::now() < deadline,
                "replicant did not finish"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut cost = r.cost();
        cost.wall = start.elapsed();
        r.report_profiles();
        (r, cost)
    };
    r.stop();
    println!("dataset {:.0} MiB", mib(bytes));
    println!("| run | wall | peak RSS | CPU | applying server CPU |");
    println!("|---|---|---|---|---|");
    for (name, cost) in [("native replica", &native), ("replicant", &ours)] {
        println!(
            "| {name} | {:.2} s | {} | {} | {} |",
            secs(cost.wall),
            opt_mib(cost.peak_rss),
            opt_s(cost.cpu_seconds),
            opt_s(cost.applier_cpu)
        );
    }
    println!(
        "replicant / native wall time: {:.2}",
        secs(ours.wall) / secs(native.wall)
    );
}
