//! Comparing two servers' datasets, key by key: the verdict of every end-to-end test.
//!
//! For every db 0–15 the key sets (by `SCAN`) must be equal, and for every key: the `TYPE`,
//! the value (`DEBUG DIGEST-VALUE`, which both servers must allow: the harness starts them
//! with debug commands enabled), the TTL (both without, or both with and within
//! [`TTL_TOLERANCE_MS`]), and for streams what the digest leaves out: `XINFO STREAM`'s length,
//! last-generated-id, max-deleted-entry-id and entries-added, every group's name,
//! last-delivered-id, entries-read, pending count and consumers (`XINFO GROUPS`,
//! `XINFO CONSUMERS`), and the pending entries (`XPENDING … - + 1000000`: id, consumer,
//! delivery count). A value that differs is fetched from both sides to say how it differs.
//!
//! One exception can be asked for, with [`CompareOptions::live_replication`]: a group's
//! entries-read that the target does not know (nil), or knows at a lower count, where the
//! source knows it. Redis 7.0 replicates a group's progress as `XCLAIM … LASTID`, which moves
//! last-delivered-id but not entries-read on every replica, Redis's own included (the harness
//! tests show it): a group created from the stream stays unknown, and a group that came in
//! the snapshot keeps the count it had then. No tool that forwards the replication stream can
//! keep it; an RDB carries it, so the default is strict.
//!
//! TTLs are compared as absolute expiry times (`PEXPIRETIME`, Redis ≥ 7.0), which is what
//! `PTTL` within the tolerance means without counting the time the comparison itself takes
//! (a digest of a 200,000-element key takes a while, between reading one side and the other).
//!
//! The comparison reads both servers while nothing writes to them; a key that vanishes in
//! between (an expiry) is reported like any other difference.
//!
//! Either side may be a Redis Cluster ([`Compared`] is implemented by `RedisServer` and
//! `RedisCluster`; `compare/side.rs`). A cluster has db 0 only: its key set is the union of
//! `SCAN`s on every master, each key is read from the master owning its slot, and its dbs
//! 1–15 are empty, so a key the other side holds there is missing. A key on a master that
//! does not own its slot is a difference of its own ([`DiffKind::Misplaced`]).

mod side;
mod streams;
mod values;

use std::fmt;

use redis::{Connection, Value};

use crate::display::{show, text};
use side::Side;
pub use side::{is_replicant_key, replicant_key_count, Compared, Endpoints};
use streams::{accept_stale_entries_read, lines_diff, stream_summary};
use values::describe_value_difference;

/// The dbs compared (a default `redis-server` has 16).
pub const DATABASES: u8 = 16;
/// The largest difference between the two sides' expiry times that still counts as equal.
pub const TTL_TOLERANCE_MS: i64 = 1000;
/// How many differences an assertion message shows.
const SHOWN_DIFFERENCES: usize = 25;
/// Keys per pipelined round trip.
const BATCH: usize = 200;

/// What the comparison may let pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompareOptions {
    /// A group's entries-read may be unknown (nil) or lower on the target where the source
    /// knows it.
    pub stale_entries_read_on_target: bool,
}

impl CompareOptions {
    /// Strict: everything must match.
    pub fn strict() -> CompareOptions {
        CompareOptions::default()
    }

    /// For a target fed by the source's replication stream (see the module doc).
    pub fn live_replication() -> CompareOptions {
        CompareOptions {
            stale_entries_read_on_target: true,
        }
    }
}

/// What differs about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiffKind {
    /// On the source, not on the target.
    MissingOnTarget,
    /// On the target, not on the source.
    ExtraOnTarget,
    /// Different `TYPE`.
    Type,
    /// Same type, different value (`DEBUG DIGEST-VALUE`).
    Value,
    /// One side has a TTL and the other not, or they differ by more than the tolerance.
    Ttl,
    /// Stream metadata that the digest does not cover (groups, consumers, pending entries, …).
    Stream,
    /// On a cluster master that does not own the key's slot (the detail says which side).
    Misplaced,
}

/// One difference between the source and the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub db: u8,
    pub key: Vec<u8>,
    pub kind: DiffKind,
    /// What the two sides hold, in a line or two.
    pub detail: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "db{} {}: {:?}: {}",
            self.db,
            show(&self.key),
            self.kind,
            self.detail
        )
    }
}

/// Panics, listing the first differences, unless both sides (servers or clusters) hold the
/// same dataset (strictly).
pub fn assert_same_dataset(source: &impl Compared, target: &impl Compared) {
    assert_same_dataset_with(source, target, CompareOptions::strict());
}

/// Like [`assert_same_dataset`], letting pass what `options` allow.
pub fn assert_same_dataset_with(
    source: &impl Compared,
    target: &impl Compared,
    options: CompareOptions,
) {
    let differences = dataset_differences_with(source, target, options);
    assert!(
        differences.is_empty(),
        "{}",
        format_differences(&differences)
    );
}

/// Every difference between the datasets of `source` and `target` (strictly).
pub fn dataset_differences(source: &impl Compared, target: &impl Compared) -> Vec<Difference> {
    dataset_differences_with(source, target, CompareOptions::strict())
}

/// Every difference between the datasets of `source` and `target` that `options` do not
/// allow.
pub fn dataset_differences_with(
    source: &impl Compared,
    target: &impl Compared,
    options: CompareOptions,
) -> Vec<Difference> {
    let (src, dst) = (source.endpoints(), target.endpoints());
    let (mut src_cons, mut dst_cons) = (src.connect(), dst.connect());
    compare_sides(
        &mut Side::new(&src, &mut src_cons),
        &mut Side::new(&dst, &mut dst_cons),
        options,
    )
}

/// Every difference between the datasets behind two connections to standalone servers (their
/// selected db changes).
pub fn differences_between(
    source: &mut Connection,
    target: &mut Connection,
    options: CompareOptions,
) -> Vec<Difference> {
    compare_sides(
        &mut Side::standalone(source),
        &mut Side::standalone(target),
        options,
    )
}

fn compare_sides(src: &mut Side, dst: &mut Side, options: CompareOptions) -> Vec<Difference> {
    let mut out = Vec::new();
    for db in 0..DATABASES {
        compare_db(src, dst, db, options, &mut out);
    }
    out
}

/// A message listing the first differences, for a panic.
pub fn format_differences(differences: &[Difference]) -> String {
    let mut text = format!(
        "datasets differ: {} difference(s){}",
        differences.len(),
        if differences.len() > SHOWN_DIFFERENCES {
            format!(", the first {SHOWN_DIFFERENCES}:")
        } else {
            ":".to_string()
        }
    );
    for difference in differences.iter().take(SHOWN_DIFFERENCES) {
        text.push_str("\n  ");
        text.push_str(&difference.to_string());
    }
    text
}

fn compare_db(
    src: &mut Side,
    dst: &mut Side,
    db: u8,
    options: CompareOptions,
    out: &mut Vec<Difference>,
) {
    let (src_keys, src_misplaced) = src.keys(db);
    let (dst_keys, dst_misplaced) = dst.keys(db);
    let mut push = |key: &[u8], kind, detail| {
        out.push(Difference {
            db,
            key: key.to_vec(),
            kind,
            detail,
        })
    };
    for (side, misplaced) in [("source", src_misplaced), ("target", dst_misplaced)] {
        for key in misplaced {
            let detail = format!("{side}: {}", key.detail);
            push(&key.key, DiffKind::Misplaced, detail);
        }
    }
    for key in src_keys.difference(&dst_keys) {
        let detail = format!("source has {}", describe_key(src.con(key), key));
        push(key, DiffKind::MissingOnTarget, detail);
    }
    for key in dst_keys.difference(&src_keys) {
        let detail = format!("target has {}", describe_key(dst.con(key), key));
        push(key, DiffKind::ExtraOnTarget, detail);
    }
    let common: Vec<&Vec<u8>> = src_keys.intersection(&dst_keys).collect();
    for chunk in common.chunks(BATCH) {
        let src_facts = src.key_facts(chunk);
        let dst_facts = dst.key_facts(chunk);
        for ((key, s), d) in chunk.iter().zip(&src_facts).zip(&dst_facts) {
            for (kind, detail) in compare_key(src.con(key), dst.con(key), key, s, d, options) {
                push(key, kind, detail);
            }
        }
    }
}

/// What one round trip tells about a key.
struct KeyFacts {
    ty: String,
    digest: String,
    /// `PEXPIRETIME`: ms since the epoch, -1 without a TTL, -2 if the key is gone.
    expire_at: i64,
}

fn key_facts(con: &mut Connection, keys: &[&Vec<u8>]) -> Vec<KeyFacts> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("TYPE").arg(*key);
        pipe.cmd("DEBUG").arg("DIGEST-VALUE").arg(*key);
        pipe.cmd("PEXPIRETIME").arg(*key);
    }
    let values: Vec<Value> = pipe
        .query(con)
        .unwrap_or_else(|err| panic!("TYPE/DEBUG DIGEST-VALUE/PEXPIRETIME failed: {err}"));
    values
        .chunks(3)
        .map(|facts| KeyFacts {
            ty: text(&facts[0]),
            digest: text(&facts[1]),
            expire_at: int(&facts[2]),
        })
        .collect()
}

fn compare_key(
    src: &mut Connection,
    dst: &mut Connection,
    key: &[u8],
    s: &KeyFacts,
    d: &KeyFacts,
    options: CompareOptions,
) -> Vec<(DiffKind, String)> {
    let mut found = Vec::new();
    if s.ty == "none" || d.ty == "none" {
        let kind = if d.ty == "none" {
            DiffKind::MissingOnTarget
        } else {
            DiffKind::ExtraOnTarget
        };
        let detail = format!(
            "vanished during the comparison (source type {}, target type {})",
            s.ty, d.ty
        );
        return vec![(kind, detail)];
    }
    if s.ty != d.ty {
        let detail = format!("source is a {}, target a {}", s.ty, d.ty);
        return vec![(DiffKind::Type, detail)];
    }
    if s.digest != d.digest {
        if let Some(detail) = describe_value_difference(src, dst, key, &s.ty) {
            found.push((DiffKind::Value, detail));
        }
    }
    if !ttl_matches(s.expire_at, d.expire_at) {
        let detail = format!(
            "source TTL {}, target TTL {} (tolerance {TTL_TOLERANCE_MS} ms)",
            show_expiry(s.expire_at),
            show_expiry(d.expire_at)
        );
        found.push((DiffKind::Ttl, detail));
    }
    if s.ty == "stream" {
        let src_summary = stream_summary(src, key);
        let mut dst_summary = stream_summary(dst, key);
        if options.stale_entries_read_on_target {
            accept_stale_entries_read(&src_summary, &mut dst_summary);
        }
        if src_summary != dst_summary {
            found.push((DiffKind::Stream, lines_diff(&src_summary, &dst_summary)));
        }
    }
    found
}

/// Both without a TTL, or both with one and close enough.
fn ttl_matches(source: i64, target: i64) -> bool {
    match (source, target) {
        (-1, -1) => true,
        (a, b) if a >= 0 && b >= 0 => (a - b).abs() <= TTL_TOLERANCE_MS,
        _ => false,
    }
}

/// An expiry time (`PEXPIRETIME`) as a TTL from now, and absolute.
fn show_expiry(expire_at: i64) -> String {
    match expire_at {
        -1 => "none".to_string(),
        -2 => "(key gone)".to_string(),
        at => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| {
                    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
                });
            format!("{} ms (expires at {at} ms)", at - now)
        }
    }
}

/// "a string of 5 bytes, TTL none": a key found on one side only.
fn describe_key(con: &mut Connection, key: &[u8]) -> String {
    let ty: String = query(con, redis::cmd("TYPE").arg(key));
    let size_command = match ty.as_str() {
        "string" => Some(("STRLEN", "bytes")),
        "list" => Some(("LLEN", "elements")),
        "set" => Some(("SCARD", "members")),
        "zset" => Some(("ZCARD", "members")),
        "hash" => Some(("HLEN", "fields")),
        "stream" => Some(("XLEN", "entries")),
        _ => None,
    };
    let size = match size_command {
        Some((command, unit)) => {
            let n: i64 = query(con, redis::cmd(command).arg(key));
            format!(" of {n} {unit}")
        }
        None => String::new(),
    };
    let expire_at: i64 = query(con, redis::cmd("PEXPIRETIME").arg(key));
    format!("a {ty}{size}, TTL {}", show_expiry(expire_at))
}

/// Runs a read of the comparison; a failure is the harness's problem, not a difference.
fn query<T: redis::FromRedisValue>(con: &mut Connection, cmd: &redis::Cmd) -> T {
    cmd.query(con).unwrap_or_else(|err| {
        let name = cmd
            .args_iter()
            .next()
            .map_or_else(String::new, |arg| match arg {
                redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                redis::Arg::Cursor => "cursor".to_string(),
            });
        panic!("comparison query {name} failed: {err}")
    })
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        other => text(other).parse().unwrap_or(i64::MIN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_tolerance() {
        assert!(ttl_matches(-1, -1));
        assert!(ttl_matches(5_000, 4_200));
        assert!(!ttl_matches(5_000, 3_000));
        assert!(!ttl_matches(-1, 5_000));
        assert!(!ttl_matches(5_000, -2));
    }
}
