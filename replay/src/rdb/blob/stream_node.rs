//! Stream node decoding: one listpack of a stream value (RDB types 15, 19, 21 and later), keyed in
//! the RDB by its 16-byte big-endian master ID.
//!
//! The listpack holds a master entry, then the entries:
//!
//! ```text
//! master: count | deleted | n-master-fields | field_1 .. field_n | 0
//! entry:  flags | ms-diff | seq-diff | n-fields | field_1 | value_1 .. | lp-count
//!         flags | ms-diff | seq-diff | value_1 .. value_n | lp-count     (SAMEFIELDS)
//! ```
//!
//! `count` and `deleted` count the live and the deleted entries; `lp-count` is the number of
//! listpack elements of the entry before it. An entry ID is the master ID plus the two diffs,
//! which Redis computes in unsigned 64-bit arithmetic and stores as signed integers, so
//! `seq-diff` is negative when the entry has a later millisecond but a lower sequence than the
//! master.

use bytes::Bytes;

use super::listpack::Cursor;
use super::Item;
use crate::rdb::error::BlobError;

const KIND: &str = "stream node";
const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;
/// Listpack elements of an entry besides its fields and values: flags, ms-diff, seq-diff.
const FIXED_ELEMENTS: i64 = 3;

/// A stream entry ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// Reads the 128-bit big-endian form used for node keys and PEL entries.
    pub fn from_be_bytes(b: &[u8; 16]) -> Self {
        let mut ms = [0u8; 8];
        let mut seq = [0u8; 8];
        ms.copy_from_slice(&b[..8]);
        seq.copy_from_slice(&b[8..]);
        StreamId {
            ms: u64::from_be_bytes(ms),
            seq: u64::from_be_bytes(seq),
        }
    }

    /// The ID as clients write it: `<ms>-<seq>`.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = itoa::Buffer::new();
        let mut out = Vec::with_capacity(41);
        out.extend_from_slice(buf.format(self.ms).as_bytes());
        out.push(b'-');
        out.extend_from_slice(buf.format(self.seq).as_bytes());
        Bytes::from(out)
    }
}

/// One live entry of a stream node.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub id: StreamId,
    pub fields: Vec<(Bytes, Bytes)>,
}

/// Live (not deleted) entries of one stream listpack node whose master ID is `master`.
pub fn decode(master: StreamId, blob: &Bytes) -> Result<Vec<StreamEntry>, BlobError> {
    let mut r = Reader {
        lp: Cursor::new(blob)?,
    };
    let (count_at, live) = r.count("master entry missing")?;
    let (_, deleted) = r.count("master entry ends before its deleted count")?;
    let (_, n_master) = r.count("master entry ends before its field count")?;
    let mut master_fields = Vec::with_capacity(n_master.min(r.lp.remaining_hint()));
    for _ in 0..n_master {
        master_fields.push(r.bytes("master entry ends inside its fields")?);
    }
    let (zero_at, zero) = r.int("master entry ends before its 0 terminator")?;
    if zero != 0 {
        return Err(err(zero_at, "master entry terminator is not 0"));
    }

    let mut entries = Vec::with_capacity(live.min(r.lp.remaining_hint()));
    let mut seen: usize = 0;
    while let Some((flags_at, flags)) = r.lp.next_item()? {
        let flags = as_int(flags_at, flags)?;
        let (_, ms_diff) = r.int("entry ends before its ms-diff")?;
        let (_, seq_diff) = r.int("entry ends before its seq-diff")?;
        let keep = flags & FLAG_DELETED == 0;
        let mut fields = Vec::new();
        let elements = if flags & FLAG_SAMEFIELDS != 0 {
            if keep {
                fields.reserve(master_fields.len());
            }
            for field in &master_fields {
                let value = r.bytes("entry ends inside its values")?;
                if keep {
                    fields.push((field.clone(), value));
                }
            }
            len_i64(master_fields.len()).saturating_add(FIXED_ELEMENTS)
        } else {
            let (_, n) = r.count("entry ends before its field count")?;
            if keep {
                fields.reserve(n.min(r.lp.remaining_hint() / 2));
            }
            for _ in 0..n {
                let field = r.bytes("entry ends inside its fields")?;
                let value = r.bytes("entry ends inside its values")?;
                if keep {
                    fields.push((field, value));
                }
            }
            // n-fields itself, then a field and a value per pair.
            len_i64(n)
                .saturating_mul(2)
                .saturating_add(FIXED_ELEMENTS + 1)
        };
        let (lp_count_at, lp_count) = r.int("entry ends before its lp-count")?;
        if lp_count != elements {
            return Err(err(
                lp_count_at,
                "entry lp-count does not match its elements",
            ));
        }
        seen += 1;
        if keep {
            // Inverse of Redis's unsigned subtraction: wrap, never overflow.
            let id = StreamId {
                ms: master.ms.wrapping_add(ms_diff as u64),
                seq: master.seq.wrapping_add(seq_diff as u64),
            };
            entries.push(StreamEntry { id, fields });
        }
    }

    if live.checked_add(deleted) != Some(seen) {
        return Err(err(
            count_at,
            "master entry counts do not match the entries in the node",
        ));
    }
    Ok(entries)
}

/// Reads typed elements off the listpack, turning a premature end into an error that says what
/// was expected there.
struct Reader<'a> {
    lp: Cursor<'a>,
}

impl Reader<'_> {
    fn item(&mut self, missing: &'static str) -> Result<(usize, Item), BlobError> {
        match self.lp.next_item()? {
            Some(found) => Ok(found),
            None => Err(err(self.lp.offset(), missing)),
        }
    }

    fn int(&mut self, missing: &'static str) -> Result<(usize, i64), BlobError> {
        let (at, item) = self.item(missing)?;
        Ok((at, as_int(at, item)?))
    }

    /// A non-negative integer used as a count.
    fn count(&mut self, missing: &'static str) -> Result<(usize, usize), BlobError> {
        let (at, n) = self.int(missing)?;
        let n = usize::try_from(n).map_err(|_| err(at, "negative count"))?;
        Ok((at, n))
    }

    fn bytes(&mut self, missing: &'static str) -> Result<Bytes, BlobError> {
        Ok(self.item(missing)?.1.into_bytes())
    }
}

/// An integer element; like Redis, a string holding a canonical decimal integer also counts.
fn as_int(at: usize, item: Item) -> Result<i64, BlobError> {
    let not_int = || err(at, "expected an integer element");
    match item {
        Item::Int(v) => Ok(v),
        Item::Str(s) => {
            let text = std::str::from_utf8(&s).map_err(|_| not_int())?;
            let v: i64 = text.parse().map_err(|_| not_int())?;
            // Reject "+1", "007", "-0": only what Redis itself would print.
            if itoa::Buffer::new().format(v) == text {
                Ok(v)
            } else {
                Err(not_int())
            }
        }
    }
}

fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn err(at: usize, what: &'static str) -> BlobError {
    BlobError::new(KIND, at, what)
}

#[cfg(test)]
mod tests {
    use super::super::listpack::encode_backlen;
    use super::*;

    enum E<'a> {
        I(i64),
        S(&'a [u8]),
    }
    use E::{I, S};

    /// Encodes elements into a listpack the way Redis would (smallest encoding).
    fn lp(elements: &[E]) -> Bytes {
        let mut body = Vec::new();
        for e in elements {
            let enc: Vec<u8> = match *e {
                I(v @ 0..=127) => vec![v as u8],
                I(v @ -4096..=4095) => {
                    let u = (v & 0x1FFF) as u16;
                    vec![0xC0 | (u >> 8) as u8, u as u8]
                }
                I(v) => [vec![0xF4], v.to_le_bytes().to_vec()].concat(),
                S(s) if s.len() < 64 => [vec![0x80 | s.len() as u8], s.to_vec()].concat(),
                S(s) => {
                    let n = s.len();
                    [vec![0xE0 | (n >> 8) as u8, n as u8], s.to_vec()].concat()
                }
            };
            let (b, n) = encode_backlen(enc.len());
            body.extend_from_slice(&enc);
            body.extend_from_slice(&b[..n]);
        }
        let mut out = ((6 + body.len() + 1) as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&(elements.len() as u16).to_le_bytes());
        out.extend_from_slice(&body);
        out.push(0xFF);
        Bytes::from(out)
    }

    fn b(x: &[u8]) -> Bytes {
        Bytes::copy_from_slice(x)
    }

    fn fields(pairs: &[(&[u8], &[u8])]) -> Vec<(Bytes, Bytes)> {
        pairs.iter().map(|(f, v)| (b(f), b(v))).collect()
    }

    const MASTER: StreamId = StreamId { ms: 1000, seq: 5 };

    fn kind_at(blob: &Bytes) -> (&'static str, usize, &'static str) {
        let e = decode(MASTER, blob).expect_err("corrupt node must be rejected");
        (e.kind, e.at, e.what)
    }

    #[test]
    fn id_conversions() {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&1_700_000_000_000u64.to_be_bytes());
        raw[8..].copy_from_slice(&42u64.to_be_bytes());
        let id = StreamId::from_be_bytes(&raw);
        assert_eq!(
            id,
            StreamId {
                ms: 1_700_000_000_000,
                seq: 42
            }
        );
        assert_eq!(id.to_bytes(), b(b"1700000000000-42"));
        let max = StreamId {
            ms: u64::MAX,
            seq: u64::MAX,
        };
        assert_eq!(
            max.to_bytes(),
            b(b"18446744073709551615-18446744073709551615")
        );
        assert!(StreamId { ms: 1, seq: 9 } < StreamId { ms: 2, seq: 0 });
    }

    #[test]
    fn decodes_samefields_own_fields_and_skips_deleted() {
        let blob = lp(&[
            // master: 3 live, 1 deleted, fields "temp", "7"
            I(3),
            I(1),
            I(2),
            S(b"temp"),
            I(7),
            I(0),
            // 1000-5: same fields
            I(2),
            I(0),
            I(0),
            S(b"hot"),
            I(-12),
            I(5),
            // 1000-6: deleted, same fields
            I(3),
            I(0),
            I(1),
            S(b"x"),
            S(b"y"),
            I(5),
            // 1003-0: own fields; seq-diff negative
            I(0),
            I(3),
            I(-5),
            I(1),
            S(b"name"),
            I(100_000),
            I(6),
            // 1003-7: own fields, zero of them
            I(0),
            I(3),
            I(2),
            I(0),
            I(4),
        ]);
        let entries = decode(MASTER, &blob).expect("valid");
        assert_eq!(
            entries,
            vec![
                StreamEntry {
                    id: StreamId { ms: 1000, seq: 5 },
                    fields: fields(&[(b"temp", b"hot"), (b"7", b"-12")]),
                },
                StreamEntry {
                    id: StreamId { ms: 1003, seq: 0 },
                    fields: fields(&[(b"name", b"100000")]),
                },
                StreamEntry {
                    id: StreamId { ms: 1003, seq: 7 },
                    fields: vec![],
                },
            ]
        );
    }

    #[test]
    fn all_deleted_node_is_empty() {
        let blob = lp(&[
            I(0),
            I(1),
            I(1),
            S(b"f"),
            I(0),
            I(3),
            I(0),
            I(0),
            S(b"v"),
            I(4),
        ]);
        assert_eq!(decode(MASTER, &blob), Ok(vec![]));
    }

    #[test]
    fn integers_stored_as_strings_are_accepted() {
        let blob = lp(&[
            S(b"1"),
            S(b"0"),
            S(b"1"),
            S(b"f"),
            S(b"0"),
            S(b"2"),
            S(b"0"),
            S(b"1"),
            S(b"v"),
            S(b"4"),
        ]);
        let entries = decode(MASTER, &blob).expect("valid");
        assert_eq!(entries[0].id, StreamId { ms: 1000, seq: 6 });
        assert_eq!(entries[0].fields, fields(&[(b"f", b"v")]));
    }

    #[test]
    fn empty_listpack_has_no_master_entry() {
        assert_eq!(kind_at(&lp(&[])), (KIND, 6, "master entry missing"));
    }

    #[test]
    fn truncated_master_entry() {
        assert_eq!(
            kind_at(&lp(&[I(1), I(0), I(2), S(b"a")])),
            (KIND, 15, "master entry ends inside its fields")
        );
        assert_eq!(
            kind_at(&lp(&[I(1), I(0), I(1), S(b"a")])).2,
            "master entry ends before its 0 terminator"
        );
    }

    #[test]
    fn master_terminator_not_zero() {
        assert_eq!(
            kind_at(&lp(&[I(0), I(0), I(0), I(9)])),
            (KIND, 12, "master entry terminator is not 0")
        );
    }

    #[test]
    fn counts_do_not_match_entries() {
        // Header claims two entries, node holds one.
        let blob = lp(&[I(2), I(0), I(0), I(0), I(0), I(0), I(0), I(0), I(4)]);
        assert_eq!(
            kind_at(&blob),
            (
                KIND,
                6,
                "master entry counts do not match the entries in the node"
            )
        );
        // Header claims none, node holds one.
        let blob = lp(&[I(0), I(0), I(0), I(0), I(0), I(0), I(0), I(0), I(4)]);
        assert_eq!(kind_at(&blob).1, 6);
    }

    #[test]
    fn wrong_lp_count() {
        let blob = lp(&[I(1), I(0), I(0), I(0), I(0), I(0), I(0), I(0), I(3)]);
        assert_eq!(
            kind_at(&blob),
            (KIND, 22, "entry lp-count does not match its elements")
        );
    }

    #[test]
    fn truncated_entry() {
        let blob = lp(&[I(1), I(0), I(1), S(b"f"), I(0), I(2), I(0), I(0)]);
        assert_eq!(kind_at(&blob).2, "entry ends inside its values");
        let blob = lp(&[I(1), I(0), I(0), I(0), I(0), I(1), I(0), I(1), S(b"f")]);
        assert_eq!(kind_at(&blob).2, "entry ends inside its values");
        let blob = lp(&[I(1), I(0), I(0), I(0), I(0), I(0)]);
        assert_eq!(kind_at(&blob).2, "entry ends before its seq-diff");
    }

    #[test]
    fn bad_counts_and_types() {
        let blob = lp(&[I(-1), I(0), I(0), I(0)]);
        assert_eq!(kind_at(&blob), (KIND, 6, "negative count"));
        let blob = lp(&[I(1), I(0), I(0), I(0), I(0), I(0), I(0), I(-2), I(3)]);
        assert_eq!(kind_at(&blob).2, "negative count");
        // A huge field count must not allocate: it runs out of elements instead.
        let blob = lp(&[I(1), I(0), I(0), I(0), I(0), I(0), I(0), I(i64::MAX), I(3)]);
        assert_eq!(kind_at(&blob).2, "entry ends inside its values");
        let blob = lp(&[I(0), I(0), I(i64::MAX)]);
        assert_eq!(kind_at(&blob).2, "master entry ends inside its fields");
        let blob = lp(&[S(b"one"), I(0), I(0), I(0)]);
        assert_eq!(kind_at(&blob), (KIND, 6, "expected an integer element"));
        let blob = lp(&[S(b"+1"), I(0), I(0), I(0)]);
        assert_eq!(kind_at(&blob).2, "expected an integer element");
    }

    #[test]
    fn listpack_errors_pass_through() {
        let mut raw = lp(&[I(0), I(0), I(0), I(0)]).to_vec();
        raw[0] += 1;
        assert_eq!(kind_at(&Bytes::from(raw)).0, "listpack");
    }

    #[test]
    fn mutations_never_panic() {
        let blob = lp(&[
            I(2),
            I(1),
            I(1),
            S(b"f"),
            I(0),
            I(2),
            I(0),
            I(0),
            S(b"v"),
            I(4),
            I(3),
            I(1),
            I(1),
            S(b"w"),
            I(4),
            I(0),
            I(9),
            I(-3),
            I(1),
            S(b"g"),
            I(300),
            I(6),
        ])
        .to_vec();
        assert!(decode(MASTER, &Bytes::copy_from_slice(&blob)).is_ok());
        for cut in 0..blob.len() {
            let _ = decode(MASTER, &Bytes::copy_from_slice(&blob[..cut]));
        }
        for i in 0..blob.len() {
            for v in [0x00, 0x01, 0x02, 0x03, 0x7F, 0x81, 0xC0, 0xDF, 0xF4, 0xFF] {
                let mut m = blob.clone();
                m[i] = v;
                let _ = decode(MASTER, &Bytes::from(m));
            }
        }
    }
}
