//! Checking a batch of keys on both sides: their facts first (`TYPE`, `PTTL`: one pipeline per
//! side, both sides at once), then the first read of every key found on both sides with the
//! same type (one more pipeline), then, one by one, the keys that read did not cover whole.
//! The same check serves the first pass and the re-checks of later rounds.

use std::time::Duration;

use bytes::Bytes;
use replay::resp::Frame;

use super::chunked;
use super::diff::{DiffKind, Difference};
use super::facts::{judge, Facts, Kind};
use super::side::{Req, Sides};
use super::values::{compare_first, first_read, Outcome};
use crate::fatal::Fatal;

/// Keys per batch: bounds the replies held at once (each key's first read is bounded too).
pub const BATCH: usize = 200;

/// How keys are compared.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Type, length and TTL only.
    pub outline: bool,
    pub ttl_tolerance: Duration,
    pub strict_entries_read: bool,
}

/// What the checks did, for the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Keys found on both sides with the same type, and compared further.
    pub compared: u64,
    /// Keys among them compared in chunks.
    pub chunked: u64,
}

/// Checks `keys` (at most [`BATCH`] for bounded memory) in `db`: each key with its
/// differences, none when it is the same on both sides (or on neither).
pub async fn check(
    sides: &mut Sides,
    db: u64,
    keys: &[Bytes],
    opts: &CheckOptions,
    counts: &mut Counts,
) -> Result<Vec<(Bytes, Vec<Difference>)>, Fatal> {
    let null = Frame::Null;
    let mut reqs = Vec::with_capacity(keys.len() * 2);
    for k in keys {
        reqs.push(Req::new("TYPE", k, &[]));
        reqs.push(Req::new("PTTL", k, &[]));
    }
    let (s, d) = sides.both(db, &reqs).await?;
    let at = |v: &[Frame], i: usize| -> Frame { v.get(i).unwrap_or(&null).clone() };
    let mut out = Vec::with_capacity(keys.len());
    let mut same: Vec<(usize, Kind)> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let fs = Facts::from_replies(&at(&s, 2 * i), &at(&s, 2 * i + 1));
        let fd = Facts::from_replies(&at(&d, 2 * i), &at(&d, 2 * i + 1));
        let (found, kind) = judge(&fs, &fd, opts.ttl_tolerance);
        out.push((key.clone(), found));
        if let Some(kind) = kind {
            same.push((i, kind));
        }
    }
    counts.compared += same.len() as u64;

    let mut reqs = Vec::new();
    let mut spans = Vec::with_capacity(same.len());
    for (i, kind) in &same {
        let first = first_read(kind, &keys[*i], opts.outline);
        spans.push(reqs.len()..reqs.len() + first.len());
        reqs.extend(first);
    }
    let (s, d) = sides.both(db, &reqs).await?;
    let kind_found = if opts.outline {
        DiffKind::Length
    } else {
        DiffKind::Value
    };
    let mut rest = Vec::new();
    for ((i, kind), span) in same.into_iter().zip(spans) {
        let (rs, rd) = (
            s.get(span.clone()).unwrap_or_default(),
            d.get(span).unwrap_or_default(),
        );
        match compare_first(&kind, rs, rd, opts.outline) {
            Outcome::Equal => {}
            Outcome::Differ(detail) => out[i].1.push(Difference::new(kind_found, detail)),
            Outcome::Chunked(len) => rest.push((i, kind, len)),
        }
    }
    for (i, kind, len) in rest {
        counts.chunked += 1;
        let key = &keys[i];
        let found = chunked::compare(sides, db, key, &kind, len, opts.strict_entries_read).await?;
        if let Some(detail) = found {
            out[i].1.push(Difference::new(DiffKind::Value, detail));
        }
    }
    for (_, found) in &mut out {
        found.sort_by_key(|d| d.kind);
    }
    Ok(out)
}
