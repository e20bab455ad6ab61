//! Streams: what `XINFO STREAM` says beyond the entries (last id, entries added, max deleted
//! id), the entries themselves in chunks (`XRANGE … COUNT`), and the consumer groups — their
//! counters (`XINFO GROUPS`), consumers (`XINFO CONSUMERS`) and pending entries (`XPENDING`,
//! in chunks). Idle times are left out: they are the time since a read, not data.
//!
//! A group's entries-read may be unknown (nil) or behind on the target where the source knows
//! it, unless `--strict-entries-read`: Redis replicates a group's progress as `XCLAIM …
//! LASTID`, which moves last-delivered-id but not entries-read, on every replica alike (Redis's
//! own included), so a target fed by the replication stream cannot keep it.

use std::collections::BTreeMap;

use bytes::Bytes;
use replay::display::printable;
use replay::resp::Frame;

use super::chunked::CHUNK;
use super::reply::{bytes, field, first_error, int, items, show};
use super::side::{Req, Sides};
use super::values::{examples, sequence_diff};
use crate::fatal::Fatal;

/// The fields of `XINFO STREAM` compared (those both sides report: older servers have fewer).
const META: [&str; 6] = [
    "length",
    "last-generated-id",
    "max-deleted-entry-id",
    "entries-added",
    "recorded-first-entry-id",
    "groups",
];

/// Where two `XINFO STREAM` replies differ.
pub fn meta_diff(s: &Frame, d: &Frame) -> Option<String> {
    let (s, d) = (items(s), items(d));
    let differ: Vec<String> = META
        .iter()
        .filter_map(|name| {
            let (a, b) = (field(s, name)?, field(d, name)?);
            (a != b).then(|| format!("{name}: source {}, target {}", show(a), show(b)))
        })
        .collect();
    (!differ.is_empty()).then(|| format!("stream metadata differs: {}", differ.join("; ")))
}

/// Whether an `XINFO STREAM` reply counts consumer groups.
pub fn has_groups(info: Option<&Frame>) -> bool {
    info.and_then(|f| field(items(f), "groups"))
        .and_then(int)
        .is_some_and(|n| n > 0)
}

/// The id right after `id` (`ms-seq`), for the next chunk of an exclusive range; `None` after
/// the last possible id.
pub fn next_id(id: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(id).ok()?;
    let (ms, seq) = text.split_once('-')?;
    let (ms, seq): (u64, u64) = (ms.parse().ok()?, seq.parse().ok()?);
    match seq.checked_add(1) {
        Some(next) => Some(format!("{ms}-{next}")),
        None => Some(format!("{}-0", ms.checked_add(1)?)),
    }
}

/// A group as `XINFO GROUPS` shows it.
#[derive(Debug, Clone, PartialEq)]
struct Group {
    consumers: Frame,
    pending: Frame,
    last_delivered: Frame,
    /// An integer, or nil when unknown.
    entries_read: Frame,
}

fn groups(reply: &Frame) -> BTreeMap<Bytes, Group> {
    let get = |g: &[Frame], name: &str| field(g, name).cloned().unwrap_or(Frame::Null);
    items(reply)
        .iter()
        .filter_map(|g| {
            let g = items(g);
            let name = bytes(field(g, "name")?)?.clone();
            Some((
                name,
                Group {
                    consumers: get(g, "consumers"),
                    pending: get(g, "pending"),
                    last_delivered: get(g, "last-delivered-id"),
                    entries_read: get(g, "entries-read"),
                },
            ))
        })
        .collect()
}

/// Where the groups of both sides differ (see the module doc for entries-read).
fn groups_diff(
    a: &BTreeMap<Bytes, Group>,
    b: &BTreeMap<Bytes, Group>,
    strict_entries_read: bool,
) -> Option<String> {
    let mut differ = Vec::new();
    let only = |x: &BTreeMap<Bytes, Group>, y: &BTreeMap<Bytes, Group>| {
        x.keys()
            .filter(|k| !y.contains_key(*k))
            .map(|k| printable(k))
            .collect::<Vec<_>>()
    };
    let (oa, ob) = (only(a, b), only(b, a));
    if !oa.is_empty() || !ob.is_empty() {
        differ.push(format!(
            "groups only on the source: [{}]; only on the target: [{}]",
            oa.join(", "),
            ob.join(", ")
        ));
    }
    for (name, ga) in a {
        let Some(gb) = b.get(name) else { continue };
        let mut fields = Vec::new();
        for (what, x, y) in [
            ("consumers", &ga.consumers, &gb.consumers),
            ("pending", &ga.pending, &gb.pending),
            ("last-delivered-id", &ga.last_delivered, &gb.last_delivered),
        ] {
            if x != y {
                fields.push(format!("{what} {} vs {}", show(x), show(y)));
            }
        }
        let (ra, rb) = (&ga.entries_read, &gb.entries_read);
        let stale = match (int(ra), rb) {
            (Some(_), Frame::Null) => true,
            (Some(x), other) => int(other).is_some_and(|y| y < x),
            _ => false,
        };
        if ra != rb && (strict_entries_read || !stale) {
            fields.push(format!("entries-read {} vs {}", show(ra), show(rb)));
        }
        if !fields.is_empty() {
            differ.push(format!("group {}: {}", printable(name), fields.join(", ")));
        }
    }
    (!differ.is_empty()).then(|| differ.join("; "))
}

/// `XINFO CONSUMERS`: each consumer's pending count.
fn consumers(reply: &Frame) -> BTreeMap<Bytes, Frame> {
    items(reply)
        .iter()
        .filter_map(|c| {
            let c = items(c);
            let name = bytes(field(c, "name")?)?.clone();
            Some((name, field(c, "pending").cloned().unwrap_or(Frame::Null)))
        })
        .collect()
}

/// `XPENDING key group start + COUNT` entries without their idle time: id, consumer,
/// deliveries.
fn pending(reply: &Frame) -> Vec<Frame> {
    items(reply)
        .iter()
        .map(|e| {
            let e = items(e);
            let at = |i: usize| e.get(i).cloned().unwrap_or(Frame::Null);
            Frame::Array(vec![at(0), at(1), at(3)])
        })
        .collect()
}

/// Compares a stream key in full on both sides: entries in chunks, then groups, consumers and
/// pending entries. How it differs, if it does.
pub async fn compare(
    sides: &mut Sides,
    db: u64,
    key: &Bytes,
    strict_entries_read: bool,
) -> Result<Option<String>, Fatal> {
    let count = CHUNK.to_string();
    if let Some(d) = ranges(sides, db, key, "XRANGE", None, &count).await? {
        return Ok(Some(format!("entries: {d}")));
    }
    let (s, d) = sides
        .both(db, &[Req::sub("XINFO", "GROUPS", key, &[])])
        .await?;
    if let Some(e) = first_error(&s).or_else(|| first_error(&d)) {
        return Ok(Some(format!("changed while it was read ({e})")));
    }
    let (ga, gb) = (groups(&s[0]), groups(&d[0]));
    if let Some(d) = groups_diff(&ga, &gb, strict_entries_read) {
        return Ok(Some(d));
    }
    for name in ga.keys() {
        let req = Req::sub("XINFO", "CONSUMERS", key, &[name]);
        let (s, d) = sides.both(db, &[req]).await?;
        if let Some(e) = first_error(&s).or_else(|| first_error(&d)) {
            return Ok(Some(format!("changed while it was read ({e})")));
        }
        let (ca, cb) = (consumers(&s[0]), consumers(&d[0]));
        if ca != cb {
            let lines = |m: &BTreeMap<Bytes, Frame>| {
                examples(
                    m.iter()
                        .map(|(k, v)| format!("{}={}", printable(k), show(v))),
                )
            };
            return Ok(Some(format!(
                "group {}: consumers (pending) differ: source {}, target {}",
                printable(name),
                lines(&ca),
                lines(&cb)
            )));
        }
        if let Some(d) = ranges(sides, db, key, "XPENDING", Some(name), &count).await? {
            return Ok(Some(format!(
                "group {}: pending entries: {d}",
                printable(name)
            )));
        }
    }
    Ok(None)
}

/// `XRANGE key start + COUNT n`, or `XPENDING key group start + n`, chunk after chunk on both
/// sides, until one differs or the range ends.
async fn ranges(
    sides: &mut Sides,
    db: u64,
    key: &Bytes,
    command: &str,
    group: Option<&Bytes>,
    count: &str,
) -> Result<Option<String>, Fatal> {
    let mut start = "-".to_string();
    let mut index = 0usize;
    loop {
        let req = match group {
            None => Req::new(
                command,
                key,
                &[start.as_bytes(), b"+", b"COUNT", count.as_bytes()],
            ),
            Some(g) => Req::new(command, key, &[g, start.as_bytes(), b"+", count.as_bytes()]),
        };
        let (s, d) = sides.both(db, &[req]).await?;
        if let Some(e) = first_error(&s).or_else(|| first_error(&d)) {
            return Ok(Some(format!("changed while it was read ({e})")));
        }
        let (a, b) = match group {
            None => (items(&s[0]).to_vec(), items(&d[0]).to_vec()),
            Some(_) => (pending(&s[0]), pending(&d[0])),
        };
        if let Some(diff) = sequence_diff(&a, &b, index, false) {
            return Ok(Some(diff));
        }
        if a.len() < CHUNK {
            return Ok(None);
        }
        index += a.len();
        let last = a.last().and_then(|e| items(e).first()).and_then(bytes);
        match last.and_then(|id| next_id(id)) {
            Some(next) => start = next,
            None => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Frame {
        Frame::BulkString(Bytes::copy_from_slice(x.as_bytes()))
    }

    fn group(name: &str, pending: i64, entries_read: Frame) -> Frame {
        Frame::Array(vec![
            s("name"),
            s(name),
            s("consumers"),
            Frame::Integer(1),
            s("pending"),
            Frame::Integer(pending),
            s("last-delivered-id"),
            s("5-0"),
            s("entries-read"),
            entries_read,
            s("lag"),
            Frame::Integer(0),
        ])
    }

    #[test]
    fn ids() {
        assert_eq!(next_id(b"5-3").as_deref(), Some("5-4"));
        assert_eq!(
            next_id(format!("7-{}", u64::MAX).as_bytes()).as_deref(),
            Some("8-0")
        );
        assert_eq!(next_id(format!("{0}-{0}", u64::MAX).as_bytes()), None);
        assert_eq!(next_id(b"junk"), None);
    }

    #[test]
    fn metadata() {
        let a = Frame::Array(vec![
            s("length"),
            Frame::Integer(3),
            s("entries-added"),
            Frame::Integer(9),
        ]);
        let b = Frame::Array(vec![
            s("length"),
            Frame::Integer(3),
            s("entries-added"),
            Frame::Integer(8),
        ]);
        let d = meta_diff(&a, &b).expect("differ");
        assert!(d.contains("entries-added: source 9, target 8"), "{d}");
        // A field one side does not report (an older server) is not compared.
        let older = Frame::Array(vec![s("length"), Frame::Integer(3)]);
        assert_eq!(meta_diff(&a, &older), None);
        assert!(!has_groups(Some(&a)));
    }

    #[test]
    fn entries_read_may_lag_on_the_target() {
        let src = Frame::Array(vec![group("g", 2, Frame::Integer(4))]);
        let nil = Frame::Array(vec![group("g", 2, Frame::Null)]);
        let lower = Frame::Array(vec![group("g", 2, Frame::Integer(3))]);
        let higher = Frame::Array(vec![group("g", 2, Frame::Integer(5))]);
        let (a, n, l, h) = (groups(&src), groups(&nil), groups(&lower), groups(&higher));
        assert_eq!(groups_diff(&a, &n, false), None);
        assert_eq!(groups_diff(&a, &l, false), None);
        assert!(groups_diff(&a, &h, false).is_some());
        assert!(groups_diff(&a, &n, true).is_some());
        let other = groups(&Frame::Array(vec![group("g", 3, Frame::Integer(4))]));
        let d = groups_diff(&a, &other, false).expect("differ");
        assert!(d.contains("pending 2 vs 3"), "{d}");
        let none = groups(&Frame::Array(vec![]));
        assert!(groups_diff(&a, &none, false)
            .expect("differ")
            .contains("only on the source: [\"g\"]"));
    }

    #[test]
    fn pending_entries_without_idle_times() {
        let entry = |idle: i64| {
            Frame::Array(vec![
                s("1-1"),
                s("alice"),
                Frame::Integer(idle),
                Frame::Integer(2),
            ])
        };
        assert_eq!(
            pending(&Frame::Array(vec![entry(5)])),
            pending(&Frame::Array(vec![entry(900)]))
        );
    }
}
