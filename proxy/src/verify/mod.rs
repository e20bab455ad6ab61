//! `replicant verify`: compares the source and the target key by key, both ways, and exits 0
//! only when they hold the same data.
//!
//! For every db holding keys (a cluster: db 0 of every master), the source is scanned and each
//! key checked on both sides ([`check`]): on one side only, type, TTL within the tolerance, and
//! the value — whole for small keys, in bounded chunks for big ones ([`values`], [`chunked`],
//! [`stream`]), or only the length in `outline` mode. Then the target is scanned for keys the
//! source lacks. Keys that differ are checked again for `--rounds` rounds, `--round-wait`
//! apart, so that what a live source was still replicating converges away; only keys that
//! differ at every check are reported ([`report`]).
//!
//! # Layout
//! - [`side`]: the connections of a side (standalone or cluster), pipelined and rate limited
//!   ([`limit`]).
//! - [`facts`]: type and TTL; [`values`]: first reads and the pure comparisons; [`chunked`] and
//!   [`stream`]: big keys and streams.
//! - [`check`]: one batch of keys, start to end. [`diff`]: the differences found.
//! - [`sample`]: which keys `--mode sample` checks. [`report`]: the summary and the JSON.
//!
//! Nothing here writes to either side.

mod check;
mod chunked;
mod diff;
mod facts;
mod limit;
mod reply;
mod report;
mod sample;
mod side;
mod stream;
mod values;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::apply;
use crate::cli::{VerifyArgs, VerifyMode};
use crate::config::Side as Which;
use crate::fatal::Fatal;
use check::{CheckOptions, Counts, BATCH};
use diff::DiffSet;
use reply::int;
use report::{Outcome, Stats};
use sample::Sampler;
use side::{Req, Side, Sides};

/// How often a progress line is logged during a long scan.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Runs the comparison: `Ok(true)` when both sides are equal.
pub async fn run(args: VerifyArgs, stop: CancellationToken) -> Result<bool, Fatal> {
    let sampler = match (args.mode, args.ratio) {
        (VerifyMode::Sample, ratio) => {
            let ratio = ratio.unwrap_or(0.1);
            if !(ratio > 0.0 && ratio <= 1.0) {
                return Err(Fatal::other(format!(
                    "--ratio {ratio}: the share of keys checked must be above 0 and at most 1"
                )));
            }
            Sampler::new(ratio, args.seed)
        }
        (_, Some(_)) => return Err(Fatal::other("--ratio applies to --mode sample")),
        (_, None) => Sampler::all(),
    };
    let opts = CheckOptions {
        outline: args.mode == VerifyMode::Outline,
        ttl_tolerance: args.ttl_tolerance,
        strict_entries_read: args.strict_entries_read,
    };
    if let Some(path) = &args.report {
        // Before a long comparison, not after it.
        report::check_writable(path)?;
    }
    let heartbeat = format!("{}heartbeat:", args.heartbeat_prefix).into_bytes();
    let state = replay::dest::once::StateKeys::new(&args.state_key_prefix);
    let src_ep = apply::endpoint(&args.source, Which::Source, &args.source_side.flags())?;
    let dst_ep = apply::endpoint(&args.target, Which::Target, &args.target_side.flags())?;
    let timeout = Duration::from_secs(args.connect_timeout.max(1));
    let started = Instant::now();
    let src = Side::open(Which::Source, &src_ep, timeout, args.max_ops).await?;
    let dst = Side::open(Which::Target, &dst_ep, timeout, args.max_ops).await?;
    let mut sides = Sides { src, dst };
    let dbs = dbs_to_compare(&mut sides, args.db).await?;
    tracing::info!(source = %sides.src.description, target = %sides.dst.description, ?dbs, mode = ?args.mode, "verifying");

    let mut run = Run {
        sides,
        opts,
        sampler,
        heartbeat,
        state,
        stats: Stats::default(),
        diffs: DiffSet::default(),
        stop,
        progress_at: Instant::now() + PROGRESS_EVERY,
    };
    for db in &dbs {
        run.scan(Which::Source, *db).await?;
        run.scan(Which::Target, *db).await?;
    }
    run.stats.first_pass = run.diffs.len();
    while !run.diffs.is_empty() && run.stats.rounds < args.rounds {
        tokio::select! {
            _ = tokio::time::sleep(args.round_wait) => {}
            _ = run.stop.cancelled() => return Err(interrupted()),
        }
        run.stats.rounds += 1;
        run.recheck().await?;
        tracing::info!(
            round = run.stats.rounds,
            differing = run.diffs.len(),
            "re-checked"
        );
    }
    run.stats.elapsed = started.elapsed();

    let mode = match args.mode {
        VerifyMode::Full => "full".to_string(),
        VerifyMode::Outline => "outline".to_string(),
        VerifyMode::Sample => format!("sample, ratio {}", args.ratio.unwrap_or(0.1)),
    };
    let outcome = Outcome {
        mode: &mode,
        source: &run.sides.src.description,
        target: &run.sides.dst.description,
        stats: &run.stats,
        diffs: &run.diffs,
    };
    print!("{}", report::summary(&outcome, args.show));
    if let Some(path) = &args.report {
        report::write_json(path, &outcome)?;
    }
    Ok(run.diffs.is_empty())
}

/// The dbs to compare: every db holding keys on either side; db 0 against a cluster, whose
/// only db it is (a standalone side with keys in other dbs is refused unless `--db` picks one).
async fn dbs_to_compare(sides: &mut Sides, db: Option<u64>) -> Result<Vec<u64>, Fatal> {
    let (sc, dc) = (sides.src.is_cluster(), sides.dst.is_cluster());
    if let Some(db) = db {
        if sc && dc && db != 0 {
            return Err(Fatal::other(format!(
                "--db {db}: both sides are Redis Clusters, which have db 0 only"
            )));
        }
        return Ok(vec![db]);
    }
    let src = sides.src.dbs().await?;
    let dst = sides.dst.dbs().await?;
    if sc != dc {
        let (standalone, dbs, cluster) = if sc {
            (Which::Target, &dst, Which::Source)
        } else {
            (Which::Source, &src, Which::Target)
        };
        let others: Vec<String> = dbs
            .iter()
            .filter(|d| **d != 0)
            .map(u64::to_string)
            .collect();
        if !others.is_empty() {
            return Err(Fatal {
                side: Some(standalone),
                what: format!(
                    "holds keys in db {}, but the {} is a Redis Cluster (db 0 only): compare one db at a time with --db N (the cluster's db 0 against db N)",
                    others.join(", "),
                    cluster.name()
                ),
            });
        }
    }
    let all: BTreeSet<u64> = src.into_iter().chain(dst).chain([0]).collect();
    Ok(if sc || dc {
        vec![0]
    } else {
        all.into_iter().collect()
    })
}

fn interrupted() -> Fatal {
    Fatal::other("interrupted")
}

/// The state of one run.
struct Run {
    sides: Sides,
    opts: CheckOptions,
    sampler: Sampler,
    /// Keys starting with this are replicant's heartbeats on the source: not data.
    heartbeat: Vec<u8>,
    /// replicant's state keys on the target (exactly-once delivery): not data.
    state: replay::dest::once::StateKeys,
    stats: Stats,
    diffs: DiffSet,
    stop: CancellationToken,
    progress_at: Instant,
}

impl Run {
    /// Scans one side's `db` (every master of a cluster). From the source: checks every key.
    /// From the target: checks the keys the source does not have (the others were checked).
    async fn scan(&mut self, from: Which, db: u64) -> Result<(), Fatal> {
        let i = usize::from(from == Which::Target);
        let nodes = self.side(from).node_count();
        for node in 0..nodes {
            let mut cursor = Bytes::from_static(b"0");
            loop {
                if self.stop.is_cancelled() {
                    return Err(interrupted());
                }
                let (next, keys) = self.side(from).scan(node, db, &cursor).await?;
                let keys: Vec<Bytes> = keys
                    .into_iter()
                    .filter(|k| !k.starts_with(&self.heartbeat) && !self.state.is_state_key(k))
                    .collect();
                self.stats.scanned[i] += keys.len() as u64;
                let keys: Vec<Bytes> = keys.into_iter().filter(|k| self.sampler.picks(k)).collect();
                self.stats.checked[i] += keys.len() as u64;
                for batch in keys.chunks(BATCH) {
                    match from {
                        Which::Source => self.check(db, batch, false).await?,
                        Which::Target => {
                            let missing = self.missing_on_source(db, batch).await?;
                            self.check(db, &missing, false).await?;
                        }
                    }
                }
                self.progress(db);
                if &next[..] == b"0" {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    fn side(&mut self, which: Which) -> &mut Side {
        match which {
            Which::Source => &mut self.sides.src,
            Which::Target => &mut self.sides.dst,
        }
    }

    /// Checks `keys` and records what was found; counted in the summary unless `recheck`.
    /// A signal stops it at once, even inside a big key.
    async fn check(&mut self, db: u64, keys: &[Bytes], recheck: bool) -> Result<(), Fatal> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut uncounted = Counts::default();
        let counts = if recheck {
            &mut uncounted
        } else {
            &mut self.stats.counts
        };
        let found = tokio::select! {
            found = check::check(&mut self.sides, db, keys, &self.opts, counts) => found?,
            _ = self.stop.cancelled() => return Err(interrupted()),
        };
        for (key, diffs) in found {
            self.diffs.record(db, key, diffs);
        }
        Ok(())
    }

    /// The keys of `keys` the source does not have.
    async fn missing_on_source(&mut self, db: u64, keys: &[Bytes]) -> Result<Vec<Bytes>, Fatal> {
        let reqs: Vec<Req> = keys.iter().map(|k| Req::new("EXISTS", k, &[])).collect();
        let replies = self.sides.src.exchange(db, &reqs).await?;
        Ok(keys
            .iter()
            .zip(replies)
            .filter(|(_, r)| int(r) == Some(0))
            .map(|(k, _)| k.clone())
            .collect())
    }

    /// Checks every differing key again; keeps those that still differ.
    async fn recheck(&mut self) -> Result<(), Fatal> {
        for (db, keys) in self.diffs.keys_by_db() {
            for batch in keys.chunks(BATCH) {
                self.check(db, batch, true).await?;
            }
        }
        Ok(())
    }

    fn progress(&mut self, db: u64) {
        let now = Instant::now();
        if now < self.progress_at {
            return;
        }
        self.progress_at = now + PROGRESS_EVERY;
        tracing::info!(
            db,
            source_keys = self.stats.scanned[0],
            target_keys = self.stats.scanned[1],
            differing = self.diffs.len(),
            "verifying"
        );
    }
}
