//! Comparing values: what is read of each key first (its length, and a bounded first part of
//! its value, all keys of a batch in one pipeline), and the pure comparisons of what was read —
//! byte ranges, sequences, sets, hashes, sorted sets with their scores. A key whose first read
//! does not cover it whole is compared in chunks afterwards (`chunked`, `stream`).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use replay::display::printable;
use replay::resp::Frame;

use super::facts::Kind;
use super::reply::{bytes, first_error, int, items, scan_page, show};
use super::side::Req;
use super::stream;

/// Elements read per key in the first read: most small values (listpack, intset) fit whole.
pub const FIRST_ELEMENTS: usize = 128;
/// Bytes of a string read in the first read.
pub const FIRST_BYTES: usize = 16 * 1024;
/// Examples shown in a detail at most.
const EXAMPLES: usize = 5;

/// What comparing a key's first read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Equal,
    /// How the values differ.
    Differ(String),
    /// Equal so far; the rest must be compared in chunks (the length read is the same on both
    /// sides).
    Chunked(i64),
}

/// The first read of a key of type `kind` (`outline`: the length only).
pub fn first_read(kind: &Kind, key: &Bytes, outline: bool) -> Vec<Req> {
    let first = FIRST_ELEMENTS.to_string();
    let last = (FIRST_ELEMENTS - 1).to_string();
    let mut reqs = Vec::with_capacity(3);
    match kind.length_command() {
        Some((len, _)) => reqs.push(Req::new(len, key, &[])),
        None if outline => return reqs,
        None => return vec![Req::new("DUMP", key, &[])],
    }
    if outline {
        return reqs;
    }
    match kind {
        Kind::String => {
            let end = (FIRST_BYTES - 1).to_string();
            reqs.push(Req::new("GETRANGE", key, &[b"0", end.as_bytes()]));
        }
        Kind::List => reqs.push(Req::new("LRANGE", key, &[b"0", last.as_bytes()])),
        Kind::Set => reqs.push(Req::new("SSCAN", key, &[b"0", b"COUNT", first.as_bytes()])),
        Kind::Zset => reqs.push(Req::new(
            "ZRANGE",
            key,
            &[b"0", last.as_bytes(), b"WITHSCORES"],
        )),
        Kind::Hash => reqs.push(Req::new("HSCAN", key, &[b"0", b"COUNT", first.as_bytes()])),
        Kind::Stream => {
            reqs.push(Req::new(
                "XRANGE",
                key,
                &[b"-", b"+", b"COUNT", first.as_bytes()],
            ));
            reqs.push(Req::sub("XINFO", "STREAM", key, &[]));
        }
        Kind::Other(_) => {}
    }
    reqs
}

/// Compares the first reads of a key on both sides (`outline`: the lengths only).
pub fn compare_first(kind: &Kind, s: &[Frame], d: &[Frame], outline: bool) -> Outcome {
    if let Some(e) = first_error(s) {
        return Outcome::Differ(format!("changed while it was read (source: {e})"));
    }
    if let Some(e) = first_error(d) {
        return Outcome::Differ(format!("changed while it was read (target: {e})"));
    }
    let Some((_, unit)) = kind.length_command() else {
        if outline {
            return Outcome::Equal;
        }
        return dump_diff(kind, s.first(), d.first()).map_or(Outcome::Equal, Outcome::Differ);
    };
    let (ls, ld) = (
        s.first().and_then(int).unwrap_or(-1),
        d.first().and_then(int).unwrap_or(-1),
    );
    if ls != ld {
        return Outcome::Differ(format!("source {ls} {unit}, target {ld} {unit}"));
    }
    if outline {
        return Outcome::Equal;
    }
    let len = ls;
    let fits = usize::try_from(len).is_ok_and(|n| n <= FIRST_ELEMENTS);
    let (rs, rd) = (
        s.get(1).unwrap_or(&Frame::Null),
        d.get(1).unwrap_or(&Frame::Null),
    );
    let found = match kind {
        Kind::String if usize::try_from(len).is_ok_and(|n| n <= FIRST_BYTES) => {
            bytes_diff(rs, rd, 0)
        }
        Kind::List | Kind::Zset if fits => {
            let pairs = *kind == Kind::Zset;
            sequence_diff(items(rs), items(rd), 0, pairs)
        }
        Kind::Set | Kind::Hash => match (scan_page(rs), scan_page(rd)) {
            (Some((true, _, a)), Some((true, _, b))) if *kind == Kind::Set => set_diff(a, b),
            (Some((true, _, a)), Some((true, _, b))) => hash_diff(a, b),
            _ => return Outcome::Chunked(len),
        },
        Kind::Stream => {
            let meta = stream::meta_diff(
                s.get(2).unwrap_or(&Frame::Null),
                d.get(2).unwrap_or(&Frame::Null),
            );
            if meta.is_some() {
                meta
            } else if !fits || stream::has_groups(s.get(2)) || stream::has_groups(d.get(2)) {
                return Outcome::Chunked(len);
            } else {
                sequence_diff(items(rs), items(rd), 0, false)
            }
        }
        _ => return Outcome::Chunked(len),
    };
    found.map_or(Outcome::Equal, Outcome::Differ)
}

/// Two byte ranges read at `offset`: where they first differ.
pub fn bytes_diff(a: &Frame, b: &Frame, offset: usize) -> Option<String> {
    let (a, b) = (bytes(a)?, bytes(b).map(|b| &b[..]).unwrap_or(b""));
    if a == b {
        return None;
    }
    let at = a.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
    let around = |v: &[u8]| printable(&v[at..v.len().min(at + 32)]);
    Some(format!(
        "first difference at byte {}: source {}, target {}",
        offset + at,
        around(a),
        around(b)
    ))
}

/// Two sequences read from index `start` (`pairs`: member/score pairs of a sorted set, whose
/// scores compare as numbers): where they first differ.
pub fn sequence_diff(a: &[Frame], b: &[Frame], start: usize, pairs: bool) -> Option<String> {
    let step = if pairs { 2 } else { 1 };
    let (ca, cb) = (a.chunks(step), b.chunks(step));
    let mut n = 0;
    for (x, y) in ca.zip(cb) {
        let same = if pairs {
            x[0] == y[0]
                && x.get(1)
                    .zip(y.get(1))
                    .is_some_and(|(p, q)| same_score(p, q))
        } else {
            x == y
        };
        if !same {
            let shown = |v: &[Frame]| v.iter().map(show).collect::<Vec<_>>().join(" ");
            return Some(format!(
                "first difference at index {}: source {}, target {}",
                start + n,
                shown(x),
                shown(y)
            ));
        }
        n += 1;
    }
    if a.len() != b.len() {
        let end = |v: &[Frame]| v.get(n * step).map_or("(end)".to_string(), show);
        return Some(format!(
            "first difference at index {}: source {}, target {}",
            start + n,
            end(a),
            end(b)
        ));
    }
    None
}

/// Scores are equal as numbers (`-0` and `0`, `inf` and `+inf`, formats of other versions).
pub fn same_score(a: &Frame, b: &Frame) -> bool {
    if a == b {
        return true;
    }
    let num = |f: &Frame| -> Option<f64> { std::str::from_utf8(bytes(f)?).ok()?.parse().ok() };
    matches!((num(a), num(b)), (Some(x), Some(y)) if x == y)
}

/// Two whole sets: members on one side only.
pub fn set_diff(a: &[Frame], b: &[Frame]) -> Option<String> {
    let set = |v: &[Frame]| -> BTreeSet<Bytes> { v.iter().filter_map(bytes).cloned().collect() };
    let (a, b) = (set(a), set(b));
    if a == b {
        return None;
    }
    let only =
        |x: &BTreeSet<Bytes>, y: &BTreeSet<Bytes>| examples(x.difference(y).map(|m| printable(m)));
    Some(format!(
        "members only on the source: {}; only on the target: {}",
        only(&a, &b),
        only(&b, &a)
    ))
}

/// Two whole hashes (flat field/value arrays): fields on one side only, values that differ.
pub fn hash_diff(a: &[Frame], b: &[Frame]) -> Option<String> {
    let map = |v: &[Frame]| -> BTreeMap<Bytes, Frame> {
        v.chunks(2)
            .filter_map(|kv| Some((bytes(&kv[0])?.clone(), kv.get(1)?.clone())))
            .collect()
    };
    let (a, b) = (map(a), map(b));
    if a == b {
        return None;
    }
    let only = |x: &BTreeMap<Bytes, Frame>, y: &BTreeMap<Bytes, Frame>| {
        examples(
            x.keys()
                .filter(|k| !y.contains_key(*k))
                .map(|k| printable(k)),
        )
    };
    let changed = examples(a.iter().filter_map(|(k, va)| {
        let vb = b.get(k)?;
        (va != vb).then(|| format!("{}: {} vs {}", printable(k), show(va), show(vb)))
    }));
    Some(format!(
        "fields only on the source: {}; only on the target: {}; different values: {}",
        only(&a, &b),
        only(&b, &a),
        changed
    ))
}

/// A module value: its `DUMP` payloads, without the RDB version and checksum at the end (which
/// differ between server versions for the same value).
fn dump_diff(kind: &Kind, a: Option<&Frame>, b: Option<&Frame>) -> Option<String> {
    let body = |f: Option<&Frame>| -> Option<Bytes> {
        let p = bytes(f?)?;
        Some(p.slice(..p.len().saturating_sub(10)))
    };
    (body(a) != body(b)).then(|| format!("serialized values differ (type {})", kind.name()))
}

/// Up to [`EXAMPLES`] items as `[a, b, …]`, with the total when there are more.
pub fn examples(items: impl Iterator<Item = String>) -> String {
    let mut shown = Vec::new();
    let mut total = 0usize;
    for item in items {
        if shown.len() < EXAMPLES {
            shown.push(item);
        }
        total += 1;
    }
    let more = if total > shown.len() {
        format!(", … ({total} in all)")
    } else {
        String::new()
    };
    format!("[{}{more}]", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Frame {
        Frame::BulkString(Bytes::copy_from_slice(x.as_bytes()))
    }

    fn arr(xs: &[&str]) -> Frame {
        Frame::Array(xs.iter().map(|x| s(x)).collect())
    }

    fn page(xs: &[&str]) -> Frame {
        Frame::Array(vec![s("0"), arr(xs)])
    }

    #[test]
    fn strings() {
        let d = bytes_diff(&s("hello world"), &s("hello there"), 100).expect("differ");
        assert!(d.starts_with("first difference at byte 106"), "{d}");
        assert_eq!(bytes_diff(&s("same"), &s("same"), 0), None);
        let out = compare_first(
            &Kind::String,
            &[Frame::Integer(3), s("abc")],
            &[Frame::Integer(4), s("abcd")],
            false,
        );
        assert_eq!(
            out,
            Outcome::Differ("source 3 bytes, target 4 bytes".into())
        );
        let big = (FIRST_BYTES + 1) as i64;
        assert_eq!(
            compare_first(
                &Kind::String,
                &[Frame::Integer(big), s("a")],
                &[Frame::Integer(big), s("a")],
                false
            ),
            Outcome::Chunked(big)
        );
    }

    #[test]
    fn lists_and_sorted_sets() {
        let d = sequence_diff(
            items(&arr(&["a", "b"])),
            items(&arr(&["a", "c"])),
            10,
            false,
        );
        assert!(d.expect("differ").contains("index 11"));
        let d = sequence_diff(items(&arr(&["a"])), items(&arr(&["a", "b"])), 0, false);
        assert!(d.expect("differ").contains("source (end), target \"b\""));
        // Scores as numbers.
        let a = arr(&["m", "-0", "n", "inf"]);
        let b = arr(&["m", "0", "n", "+inf"]);
        assert_eq!(sequence_diff(items(&a), items(&b), 0, true), None);
        let c = arr(&["m", "0", "n", "1.5"]);
        assert!(sequence_diff(items(&a), items(&c), 0, true).is_some());
    }

    #[test]
    fn sets_and_hashes() {
        assert_eq!(
            set_diff(items(&arr(&["a", "b"])), items(&arr(&["b", "a"]))),
            None
        );
        let d = set_diff(items(&arr(&["a", "b"])), items(&arr(&["b", "c"]))).expect("differ");
        assert_eq!(
            d,
            "members only on the source: [\"a\"]; only on the target: [\"c\"]"
        );
        let d = hash_diff(
            items(&arr(&["f", "1", "g", "2"])),
            items(&arr(&["g", "2", "f", "9"])),
        )
        .expect("differ");
        assert!(d.contains("\"f\": \"1\" vs \"9\""), "{d}");
        let out = compare_first(
            &Kind::Set,
            &[Frame::Integer(2), page(&["a", "b"])],
            &[Frame::Integer(2), page(&["b", "a"])],
            false,
        );
        assert_eq!(out, Outcome::Equal);
        let unfinished = Frame::Array(vec![s("17"), arr(&["a"])]);
        let out = compare_first(
            &Kind::Hash,
            &[Frame::Integer(500), unfinished.clone()],
            &[Frame::Integer(500), unfinished],
            false,
        );
        assert_eq!(out, Outcome::Chunked(500));
    }

    #[test]
    fn outline_compares_lengths_only() {
        let out = compare_first(
            &Kind::List,
            &[Frame::Integer(3)],
            &[Frame::Integer(3)],
            true,
        );
        assert_eq!(out, Outcome::Equal);
        let out = compare_first(
            &Kind::List,
            &[Frame::Integer(3)],
            &[Frame::Integer(4)],
            true,
        );
        assert!(matches!(out, Outcome::Differ(_)));
        assert!(first_read(&Kind::Other("m".into()), &Bytes::from_static(b"k"), true).is_empty());
    }

    #[test]
    fn changed_while_read() {
        let e = Frame::Error("WRONGTYPE Operation against a key".into());
        let out = compare_first(
            &Kind::List,
            &[Frame::Integer(1), e],
            &[Frame::Integer(1), arr(&["a"])],
            false,
        );
        assert!(matches!(out, Outcome::Differ(d) if d.contains("source: WRONGTYPE")));
    }

    #[test]
    fn module_values_ignore_the_footer() {
        let a = s("payload-0123456789");
        let b = s("payload-9876543210");
        assert_eq!(
            dump_diff(&Kind::Other("m".into()), Some(&a), Some(&b)),
            None
        );
        assert!(dump_diff(
            &Kind::Other("m".into()),
            Some(&a),
            Some(&s("other-0123456789"))
        )
        .is_some());
    }

    #[test]
    fn examples_are_bounded() {
        assert_eq!(examples((0..3).map(|i| i.to_string())), "[0, 1, 2]");
        assert_eq!(
            examples((0..9).map(|i| i.to_string())),
            "[0, 1, 2, 3, 4, … (9 in all)]"
        );
    }
}
