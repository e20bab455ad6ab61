//! The rewrite path: decoded value content ([`Piece`]s) as ordinary commands (SET, RPUSH, SADD,
//! ZADD, HSET, XADD, XSETID, XGROUP, XCLAIM, HPEXPIREAT) in batches bounded in elements and
//! bytes, for destinations that do not understand an encoding and for values too big to send
//! whole. Elements are copied into the encoded commands here: this is the one place a value's
//! bytes are transformed.

use bytes::Bytes;

use super::caps::Caps;
use super::PlanStats;
use crate::cmd::{Command, Encoder};
use crate::rdb::decoded::{Piece, StreamGroup, StreamId, StreamMeta};

/// Bounds of one rewritten command.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Elements (or pairs) per command at most.
    pub elements: usize,
    /// Encoded bytes per command, about (one element may exceed it).
    pub bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            elements: 512,
            bytes: 1 << 20,
        }
    }
}

/// What the rewrite of the current key has done so far.
#[derive(Debug, Default)]
pub(crate) struct KeyState {
    stream_entries: u64,
    ttl_fields_dropped: u64,
}

/// Appends the commands for one piece of `key`'s value to `out`.
pub(crate) fn piece(
    key: &Bytes,
    p: Piece,
    caps: &Caps,
    lim: BatchLimits,
    st: &mut KeyState,
    stats: &mut PlanStats,
    out: &mut Vec<Command>,
) {
    match p {
        Piece::Str(v) => out.push(Command::new(&[&b"SET"[..], key, &v])),
        Piece::List(v) => batched(out, b"RPUSH", key, &v, lim, 1, |e, x| {
            e.arg(x);
        }),
        Piece::Set(v) => batched(out, b"SADD", key, &v, lim, 1, |e, x| {
            e.arg(x);
        }),
        Piece::Zset(v) => batched(out, b"ZADD", key, &v, lim, 2, |e, (m, s)| {
            put_score(e, *s);
            e.arg(m);
        }),
        Piece::Hash(v) => batched(out, b"HSET", key, &v, lim, 2, |e, (f, x)| {
            e.arg(f).arg(x);
        }),
        Piece::HashTtl(v) => {
            batched(out, b"HSET", key, &v, lim, 2, |e, (f, x, _)| {
                e.arg(f).arg(x);
            });
            for (field, _, at) in v.iter().filter(|(_, _, at)| *at != 0) {
                if caps.hash_field_ttl() {
                    let mut e = Encoder::new(6, field.len() + key.len() + 96);
                    e.arg(b"HPEXPIREAT").arg(key).int(clamp(*at));
                    e.arg(b"FIELDS").arg(b"1").arg(field);
                    out.push(e.finish());
                } else {
                    st.ttl_fields_dropped += 1;
                    stats.field_ttls_dropped += 1;
                }
            }
        }
        Piece::StreamEntries(entries) => {
            for entry in entries {
                let id = entry.id.to_bytes();
                let size = entry
                    .fields
                    .iter()
                    .map(|(f, v)| f.len() + v.len() + 32)
                    .sum::<usize>();
                let mut e = Encoder::new(3 + 2 * entry.fields.len(), size + key.len() + 96);
                e.arg(b"XADD").arg(key).arg(&id);
                for (f, v) in &entry.fields {
                    e.arg(f).arg(v);
                }
                out.push(e.finish());
                st.stream_entries += 1;
            }
        }
        Piece::StreamMeta(meta) => stream_meta(key, &meta, caps, st, out),
        Piece::StreamGroup(g) => stream_group(key, &g, caps, out),
    }
}

/// Called once the whole value of `key` is written: reports what could not be carried.
pub(crate) fn finish_key(key: &Bytes, st: &KeyState) {
    if st.ttl_fields_dropped > 0 {
        tracing::warn!(
            key = %crate::display::printable(key),
            fields = st.ttl_fields_dropped,
            "hash field TTLs dropped: the destination has no HPEXPIREAT (Redis < 7.4); the fields were written without TTL"
        );
    }
}

fn stream_meta(key: &Bytes, m: &StreamMeta, caps: &Caps, st: &KeyState, out: &mut Vec<Command>) {
    let zero = StreamId { ms: 0, seq: 0 };
    if st.stream_entries == 0 {
        // An empty stream still exists, with its last ID: create it without entries.
        if m.last_id > zero {
            let id = m.last_id.to_bytes();
            out.push(Command::new(&[
                &b"XADD"[..],
                key,
                b"MAXLEN",
                b"0",
                &id,
                b"_",
                b"_",
            ]));
        } else {
            let tmp = b"replicant-create";
            out.push(Command::new(&[
                &b"XGROUP"[..],
                b"CREATE",
                key,
                tmp,
                b"0",
                b"MKSTREAM",
            ]));
            out.push(Command::new(&[&b"XGROUP"[..], b"DESTROY", key, tmp]));
        }
    }
    if m.last_id == zero && st.stream_entries == 0 {
        return;
    }
    let last = m.last_id.to_bytes();
    match (caps.seven(), m.entries_added, m.max_deleted_id) {
        (true, Some(added), Some(maxdel)) => {
            let added = itoa::Buffer::new().format(added).to_owned();
            let maxdel = maxdel.to_bytes();
            out.push(Command::new(&[
                &b"XSETID"[..],
                key,
                &last,
                b"ENTRIESADDED",
                added.as_bytes(),
                b"MAXDELETEDID",
                &maxdel,
            ]));
        }
        _ => out.push(Command::new(&[&b"XSETID"[..], key, &last])),
    }
}

fn stream_group(key: &Bytes, g: &StreamGroup, caps: &Caps, out: &mut Vec<Command>) {
    let last = g.last_id.to_bytes();
    match g.entries_read.filter(|&n| caps.seven() && n != u64::MAX) {
        Some(n) => {
            let n = itoa::Buffer::new().format(n).to_owned();
            out.push(Command::new(&[
                &b"XGROUP"[..],
                b"CREATE",
                key,
                &g.name,
                &last,
                b"ENTRIESREAD",
                n.as_bytes(),
            ]));
        }
        None => out.push(Command::new(&[
            &b"XGROUP"[..],
            b"CREATE",
            key,
            &g.name,
            &last,
        ])),
    }
    if caps.create_consumer() {
        for c in &g.consumers {
            out.push(Command::new(&[
                &b"XGROUP"[..],
                b"CREATECONSUMER",
                key,
                &g.name,
                c,
            ]));
        }
    }
    for p in &g.pending {
        let id = p.id.to_bytes();
        let mut e = Encoder::new(12, key.len() + g.name.len() + p.consumer.len() + 192);
        e.arg(b"XCLAIM").arg(key).arg(&g.name).arg(&p.consumer);
        e.arg(b"0").arg(&id);
        e.arg(b"TIME").int(p.delivery_time);
        e.arg(b"RETRYCOUNT")
            .int(i64::try_from(p.delivery_count).unwrap_or(i64::MAX));
        e.arg(b"FORCE").arg(b"JUSTID");
        out.push(e.finish());
    }
}

/// Emits `CMD key items...` in commands of at most `lim` elements / bytes.
fn batched<T>(
    out: &mut Vec<Command>,
    cmd: &[u8],
    key: &Bytes,
    items: &[T],
    lim: BatchLimits,
    args_per_item: usize,
    put: impl Fn(&mut Encoder, &T),
) where
    T: Weigh,
{
    let mut start = 0;
    while start < items.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < items.len()
            && end - start < lim.elements
            && (end == start || bytes + items[end].weigh() <= lim.bytes)
        {
            bytes += items[end].weigh();
            end += 1;
        }
        // `weigh` includes each argument's framing: this is the encoded size (scores aside).
        let mut e = Encoder::new(
            2 + args_per_item * (end - start),
            bytes + bulk(key.len()) + bulk(cmd.len()) + 16,
        );
        e.arg(cmd).arg(key);
        for it in &items[start..end] {
            put(&mut e, it);
        }
        out.push(e.finish());
        start = end;
    }
}

/// Encoded size of an item, framing included, for batch bounds and buffer capacities.
pub(crate) trait Weigh {
    fn weigh(&self) -> usize;
}

/// Encoded size of a bulk string of `n` bytes: `$<n>\r\n<bytes>\r\n`.
fn bulk(n: usize) -> usize {
    n + 5 + itoa::Buffer::new().format(n).len()
}

impl Weigh for Bytes {
    fn weigh(&self) -> usize {
        bulk(self.len())
    }
}

impl Weigh for (Bytes, f64) {
    fn weigh(&self) -> usize {
        // A score takes at most 24 characters ("-1.7976931348623157e308").
        bulk(self.0.len()) + bulk(24)
    }
}

impl Weigh for (Bytes, Bytes) {
    fn weigh(&self) -> usize {
        bulk(self.0.len()) + bulk(self.1.len())
    }
}

impl Weigh for (Bytes, Bytes, u64) {
    fn weigh(&self) -> usize {
        bulk(self.0.len()) + bulk(self.1.len())
    }
}

/// Doubles whose magnitude is below this and that have no fraction are integers exactly.
const EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53

/// A score as ZADD takes it: shortest text that reads back to the same double. Whole numbers
/// (the common case: counters, timestamps) go through the integer formatter; nothing here
/// allocates.
fn put_score(e: &mut Encoder, s: f64) {
    if s.fract() == 0.0 && s.abs() < EXACT_INT && !(s == 0.0 && s.is_sign_negative()) {
        e.int(s as i64);
    } else if s == f64::INFINITY {
        e.arg(b"+inf");
    } else if s == f64::NEG_INFINITY {
        e.arg(b"-inf");
    } else {
        use std::io::Write;
        // Scientific notation keeps every finite double within 24 characters
        // ("-2.2250738585072014e-308"); ZADD reads it with strtod.
        let mut buf = [0u8; 32];
        let mut w = &mut buf[..];
        let n = match write!(w, "{s:e}") {
            Ok(()) => 32 - w.len(),
            Err(_) => 0,
        };
        e.arg(&buf[..n]);
    }
}

fn clamp(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::peek_args;

    fn args(c: &Command) -> Vec<Bytes> {
        peek_args(c.chunks()[0], usize::MAX)
    }

    #[test]
    fn big_lists_go_in_bounded_batches() {
        let items: Vec<Bytes> = (0..10_000)
            .map(|i| Bytes::from(format!("element-{i}")))
            .collect();
        let lim = BatchLimits {
            elements: 100,
            bytes: 1 << 20,
        };
        let mut out = Vec::new();
        let (caps, mut st, mut stats) = (
            Caps::for_version((7, 0, 0)),
            KeyState::default(),
            PlanStats::default(),
        );
        piece(
            &Bytes::from_static(b"l"),
            Piece::List(items.clone()),
            &caps,
            lim,
            &mut st,
            &mut stats,
            &mut out,
        );
        assert_eq!(out.len(), 100);
        let mut seen = Vec::new();
        for c in &out {
            let a = args(c);
            assert!(a.len() <= 102, "batch of {} args", a.len());
            assert_eq!(&a[0][..], b"RPUSH");
            seen.extend(a[2..].iter().cloned());
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn batches_are_bounded_in_bytes() {
        let items: Vec<Bytes> = (0..100).map(|_| Bytes::from(vec![b'x'; 10_000])).collect();
        let lim = BatchLimits {
            elements: 1000,
            bytes: 50_000,
        };
        let mut out = Vec::new();
        let (caps, mut st, mut stats) = (
            Caps::for_version((7, 0, 0)),
            KeyState::default(),
            PlanStats::default(),
        );
        piece(
            &Bytes::from_static(b"s"),
            Piece::Set(items),
            &caps,
            lim,
            &mut st,
            &mut stats,
            &mut out,
        );
        for c in &out {
            assert!(c.len() <= 50_000 + 100, "command of {} bytes", c.len());
        }
        assert_eq!(out.len(), 25);
    }

    #[test]
    fn field_ttls_need_74() {
        let v = vec![(
            Bytes::from_static(b"f"),
            Bytes::from_static(b"v"),
            1_900_000_000_000,
        )];
        let (mut st, mut stats) = (KeyState::default(), PlanStats::default());
        let mut out = Vec::new();
        let lim = BatchLimits::default();
        piece(
            &Bytes::from_static(b"h"),
            Piece::HashTtl(v.clone()),
            &Caps::for_version((7, 0, 0)),
            lim,
            &mut st,
            &mut stats,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(stats.field_ttls_dropped, 1);
        let mut out = Vec::new();
        piece(
            &Bytes::from_static(b"h"),
            Piece::HashTtl(v),
            &Caps::for_version((7, 4, 0)),
            lim,
            &mut st,
            &mut stats,
            &mut out,
        );
        assert_eq!(&args(&out[1])[0][..], b"HPEXPIREAT");
    }

    fn score_text(s: f64) -> String {
        let mut e = Encoder::new(1, 32);
        put_score(&mut e, s);
        let c = e.finish();
        String::from_utf8(args(&c)[0].to_vec()).expect("ascii")
    }

    #[test]
    fn scores_round_trip() {
        let cases = [
            0.1,
            -2.5,
            1e300,
            -1e300,
            3.0,
            f64::MIN_POSITIVE,
            -f64::MAX,
            9_007_199_254_740_993.0,
            1.0e16,
            -0.0,
            0.0,
            12_345_678.0,
        ];
        for s in cases {
            let t = score_text(s);
            assert!(t.len() <= 24, "{t}");
            let back = t.parse::<f64>().expect("a number");
            assert_eq!(back.to_bits(), s.to_bits(), "{s} as {t}");
        }
        assert_eq!(score_text(12_345_678.0), "12345678");
        assert_eq!(score_text(f64::INFINITY), "+inf");
        assert_eq!(score_text(f64::NEG_INFINITY), "-inf");
    }
}
