//! Keys too big for the first read, compared in bounded chunks so that no value is ever held
//! whole: strings by `GETRANGE`, lists by `LRANGE` and sorted sets by `ZRANGE … WITHSCORES`
//! (the same index ranges on both sides: both orders are defined), sets by `SSCAN` of the
//! source with each page looked up on the target (`SMISMEMBER`, or `SISMEMBER` before Redis
//! 6.2), hashes by `HSCAN` of the source and `HMGET` on the target. With the lengths already
//! equal, every source member found on the target means the sets (hashes) are equal.
//! Streams are in `stream`.

use bytes::Bytes;
use replay::display::printable;
use replay::resp::Frame;

use super::facts::Kind;
use super::reply::{bytes, first_error, items, scan_page};
use super::side::{Req, Sides};
use super::stream;
use super::values::{bytes_diff, examples, sequence_diff};
use crate::fatal::Fatal;

/// Elements per chunk.
pub const CHUNK: usize = 1000;
/// Bytes of a string per chunk.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Compares a key of `len` elements (bytes for a string) on both sides, chunk by chunk. How it
/// differs, if it does.
pub async fn compare(
    sides: &mut Sides,
    db: u64,
    key: &Bytes,
    kind: &Kind,
    len: i64,
    strict_entries_read: bool,
) -> Result<Option<String>, Fatal> {
    let len = usize::try_from(len).unwrap_or(0);
    match kind {
        Kind::String => {
            let request = |start: &str, end: &str| {
                Req::new("GETRANGE", key, &[start.as_bytes(), end.as_bytes()])
            };
            by_index(sides, db, len, CHUNK_BYTES, request, bytes_diff).await
        }
        Kind::List => {
            let request = |start: &str, end: &str| {
                Req::new("LRANGE", key, &[start.as_bytes(), end.as_bytes()])
            };
            let differ = |a: &Frame, b: &Frame, at| sequence_diff(items(a), items(b), at, false);
            by_index(sides, db, len, CHUNK, request, differ).await
        }
        Kind::Zset => {
            let request = |start: &str, end: &str| {
                Req::new(
                    "ZRANGE",
                    key,
                    &[start.as_bytes(), end.as_bytes(), b"WITHSCORES"],
                )
            };
            let differ = |a: &Frame, b: &Frame, at| sequence_diff(items(a), items(b), at, true);
            by_index(sides, db, len, CHUNK, request, differ).await
        }
        Kind::Set | Kind::Hash => by_lookup(sides, db, key, *kind == Kind::Hash).await,
        Kind::Stream => stream::compare(sides, db, key, strict_entries_read).await,
        // Read whole by the first read.
        Kind::Other(_) => Ok(None),
    }
}

/// Reads the ranges `[start, start + step - 1]` up to `len` on both sides until `differ` finds
/// two that differ (it is given the replies and the index, or offset, the range starts at).
async fn by_index(
    sides: &mut Sides,
    db: u64,
    len: usize,
    step: usize,
    request: impl Fn(&str, &str) -> Req,
    differ: impl Fn(&Frame, &Frame, usize) -> Option<String>,
) -> Result<Option<String>, Fatal> {
    let mut start = 0usize;
    while start < len {
        let end = start + step - 1;
        let req = request(&start.to_string(), &end.to_string());
        let (s, d) = sides.both(db, &[req]).await?;
        if let Some(e) = first_error(&s).or_else(|| first_error(&d)) {
            return Ok(Some(format!("changed while it was read ({e})")));
        }
        let (a, b) = (
            s.first().unwrap_or(&Frame::Null),
            d.first().unwrap_or(&Frame::Null),
        );
        if a != b {
            if let Some(found) = differ(a, b, start) {
                return Ok(Some(found));
            }
        }
        start += step;
    }
    Ok(None)
}

/// Scans the source's set (hash) page by page and looks each page up on the target.
async fn by_lookup(
    sides: &mut Sides,
    db: u64,
    key: &Bytes,
    hash: bool,
) -> Result<Option<String>, Fatal> {
    let count = CHUNK.to_string();
    let scan = if hash { "HSCAN" } else { "SSCAN" };
    let mut cursor = Bytes::from_static(b"0");
    loop {
        let req = Req::new(scan, key, &[&cursor, b"COUNT", count.as_bytes()]);
        let reply = sides.src.exchange(db, &[req]).await?;
        if let Some(e) = first_error(&reply) {
            return Ok(Some(format!("changed while it was read (source: {e})")));
        }
        let Some((done, next, page)) = reply.first().and_then(scan_page) else {
            return Ok(Some(
                "changed while it was read (source: not a scan page)".into(),
            ));
        };
        let found = if hash {
            lookup_fields(sides, db, key, page).await?
        } else {
            lookup_members(sides, db, key, page).await?
        };
        if found.is_some() || done {
            return Ok(found);
        }
        cursor = next;
    }
}

async fn lookup_members(
    sides: &mut Sides,
    db: u64,
    key: &Bytes,
    page: &[Frame],
) -> Result<Option<String>, Fatal> {
    let members: Vec<&Bytes> = page.iter().filter_map(bytes).collect();
    if members.is_empty() {
        return Ok(None);
    }
    let replies = if sides.dst.at_least(6, 2) {
        let args: Vec<&[u8]> = members.iter().map(|m| &m[..]).collect();
        let reply = sides
            .dst
            .exchange(db, &[Req::new("SMISMEMBER", key, &args)])
            .await?;
        reply
            .into_iter()
            .next()
            .map(|f| items(&f).to_vec())
            .unwrap_or_default()
    } else {
        let reqs: Vec<Req> = members
            .iter()
            .map(|m| Req::new("SISMEMBER", key, &[m]))
            .collect();
        sides.dst.exchange(db, &reqs).await?
    };
    if let Some(e) = first_error(&replies) {
        return Ok(Some(format!("changed while it was read (target: {e})")));
    }
    let missing = members
        .iter()
        .zip(replies.iter().chain(std::iter::repeat(&Frame::Null)))
        .filter(|(_, r)| **r != Frame::Integer(1))
        .map(|(m, _)| printable(m));
    let missing = examples(missing);
    Ok(
        (missing != "[]")
            .then(|| format!("members of the source missing on the target: {missing}")),
    )
}

async fn lookup_fields(
    sides: &mut Sides,
    db: u64,
    key: &Bytes,
    page: &[Frame],
) -> Result<Option<String>, Fatal> {
    let pairs: Vec<(&Bytes, &Frame)> = page
        .chunks(2)
        .filter_map(|kv| Some((bytes(&kv[0])?, kv.get(1)?)))
        .collect();
    if pairs.is_empty() {
        return Ok(None);
    }
    let fields: Vec<&[u8]> = pairs.iter().map(|(f, _)| &f[..]).collect();
    let reply = sides
        .dst
        .exchange(db, &[Req::new("HMGET", key, &fields)])
        .await?;
    if let Some(e) = first_error(&reply) {
        return Ok(Some(format!("changed while it was read (target: {e})")));
    }
    let values = reply.first().map(items).unwrap_or_default();
    let differ = pairs
        .iter()
        .zip(values.iter().chain(std::iter::repeat(&Frame::Null)))
        .filter(|((_, v), t)| !same_value(v, t))
        .map(|((f, v), t)| {
            let shown = |x: &Frame| match x {
                Frame::Null => "(missing)".to_string(),
                other => super::reply::show(other),
            };
            format!("{}: {} vs {}", printable(f), shown(v), shown(t))
        });
    let differ = examples(differ);
    Ok((differ != "[]").then(|| format!("fields that differ (source vs target): {differ}")))
}

fn same_value(a: &Frame, b: &Frame) -> bool {
    a == b || (bytes(a).is_some() && bytes(a) == bytes(b))
}
