//! Listpack decoding: the blob behind hash/zset/set-listpack values, quicklist-2 nodes and stream
//! nodes (RDB v10+).
//!
//! Layout: `u32 LE total bytes`, `u16 LE element count` (65535 = unknown, count the entries),
//! the entries, then the `0xFF` terminator as the last byte. Each entry is an encoding byte, its
//! data, then a 1–5 byte "back-length" holding the size of encoding + data so the list can be
//! walked backwards:
//!
//! | first byte  | meaning                                   |
//! |-------------|-------------------------------------------|
//! | `0xxxxxxx`  | unsigned 7-bit integer                    |
//! | `10xxxxxx`  | string, 6-bit length                      |
//! | `110xxxxx`  | 13-bit signed integer (+1 byte)           |
//! | `1110xxxx`  | string, 12-bit length (+1 byte)           |
//! | `F0`        | string, u32 LE length                     |
//! | `F1`–`F4`   | i16 / i24 / i32 / i64, little-endian      |
//!
//! Besides [`decode`], this module offers [`Cursor`] to the stream-node decoder, which needs the
//! entries one at a time with their offsets.

use bytes::Bytes;

use super::Item;
use crate::rdb::error::BlobError;

const KIND: &str = "listpack";
const HEADER: usize = 6;
const COUNT_UNKNOWN: u16 = u16::MAX;
const END: u8 = 0xFF;
/// Smallest possible entry: one encoding byte and one back-length byte.
const MIN_ENTRY: usize = 2;

/// Decodes every element of a listpack, in order.
pub fn decode(blob: &Bytes) -> Result<Vec<Item>, BlobError> {
    let mut cursor = Cursor::new(blob)?;
    let mut items = Vec::with_capacity(cursor.remaining_hint());
    while let Some((_, item)) = cursor.next_item()? {
        items.push(item);
    }
    Ok(items)
}

/// Walks a listpack entry by entry. The header and terminator are checked by [`Cursor::new`],
/// each entry when it is reached, and the element count once the end is reached.
pub(crate) struct Cursor<'a> {
    blob: &'a Bytes,
    /// Offset of the next entry.
    pos: usize,
    /// Offset of the terminator (the last byte).
    end: usize,
    declared: u16,
    seen: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(blob: &'a Bytes) -> Result<Self, BlobError> {
        let header = blob
            .get(..HEADER)
            .filter(|_| blob.len() > HEADER)
            .ok_or_else(|| err(0, "shorter than a header and a terminator (7 bytes)"))?;
        let total = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if usize::try_from(total).ok() != Some(blob.len()) {
            return Err(err(0, "total-bytes header does not match the blob length"));
        }
        let end = blob.len() - 1;
        if blob.get(end) != Some(&END) {
            return Err(err(end, "last byte is not the 0xFF terminator"));
        }
        Ok(Cursor {
            blob,
            pos: HEADER,
            end,
            declared: u16::from_le_bytes([header[4], header[5]]),
            seen: 0,
        })
    }

    /// Offset of the next entry, or of the terminator once all entries are read.
    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    /// An upper bound on the entries left, for `Vec::with_capacity`: the header count if known,
    /// never more than the remaining bytes can hold.
    pub(crate) fn remaining_hint(&self) -> usize {
        let room = (self.end - self.pos) / MIN_ENTRY;
        match self.declared {
            COUNT_UNKNOWN => room,
            n => room.min(usize::from(n).saturating_sub(self.seen)),
        }
    }

    /// The next entry and its offset, or `None` at the terminator (after checking the count).
    pub(crate) fn next_item(&mut self) -> Result<Option<(usize, Item)>, BlobError> {
        let at = self.pos;
        if at == self.end {
            if self.declared != COUNT_UNKNOWN && usize::from(self.declared) != self.seen {
                return Err(err(
                    4,
                    "element count in the header does not match the entries",
                ));
            }
            return Ok(None);
        }
        let (item, size) = read_entry(self.blob, at, self.end)?;
        let (backlen, backlen_size) = encode_backlen(size);
        let stored = at
            .checked_add(size)
            .and_then(|from| self.window(from, backlen_size))
            .ok_or_else(|| err(at, "entry back-length runs past the terminator"))?;
        if stored != &backlen[..backlen_size] {
            return Err(err(at, "entry back-length does not match the entry size"));
        }
        self.pos = at + size + backlen_size;
        self.seen += 1;
        Ok(Some((at, item)))
    }

    /// `n` bytes at `from`, if they end at or before the terminator.
    fn window(&self, from: usize, n: usize) -> Option<&'a [u8]> {
        window(self.blob, from, n, self.end)
    }
}

/// Decodes the entry at `at` (which is before `end`): the element and the size of encoding + data.
fn read_entry(blob: &Bytes, at: usize, end: usize) -> Result<(Item, usize), BlobError> {
    let truncated = || err(at, "entry runs past the terminator");
    let first = *blob.get(at).ok_or_else(truncated)?;
    let fixed = |n: usize| window(blob, at + 1, n, end).ok_or_else(truncated);
    let string = |header: usize, len: usize| {
        let from = at + header;
        let to = from
            .checked_add(len)
            .filter(|&to| to <= end)
            .ok_or_else(truncated)?;
        Ok((Item::Str(blob.slice(from..to)), header + len))
    };
    match first {
        0x00..=0x7F => Ok((Item::Int(i64::from(first)), 1)),
        0x80..=0xBF => string(1, usize::from(first & 0x3F)),
        0xC0..=0xDF => {
            let low = fixed(1)?[0];
            let raw = (i64::from(first & 0x1F) << 8) | i64::from(low);
            // Two's complement over 13 bits.
            let value = if raw >= 1 << 12 { raw - (1 << 13) } else { raw };
            Ok((Item::Int(value), 2))
        }
        0xE0..=0xEF => {
            let low = fixed(1)?[0];
            string(2, (usize::from(first & 0x0F) << 8) | usize::from(low))
        }
        0xF0 => {
            let b = fixed(4)?;
            let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            string(5, usize::try_from(len).map_err(|_| truncated())?)
        }
        0xF1 => {
            let b = fixed(2)?;
            Ok((Item::Int(i16::from_le_bytes([b[0], b[1]]).into()), 3))
        }
        0xF2 => {
            let b = fixed(3)?;
            // Place the 24 bits at the top of an i32 and shift back to sign-extend.
            let value = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
            Ok((Item::Int(value.into()), 4))
        }
        0xF3 => {
            let b = fixed(4)?;
            Ok((
                Item::Int(i32::from_le_bytes([b[0], b[1], b[2], b[3]]).into()),
                5,
            ))
        }
        0xF4 => {
            let b = fixed(8)?;
            let mut raw = [0u8; 8];
            raw.copy_from_slice(b);
            Ok((Item::Int(i64::from_le_bytes(raw)), 9))
        }
        END => Err(err(at, "0xFF terminator before the last byte")),
        _ => Err(err(at, "unknown entry encoding byte")),
    }
}

/// The back-length Redis writes after an entry of `size` bytes: the bytes and how many are used.
/// Note Redis's thresholds: a size of exactly 16383, 2097151 or 268435455 takes one byte more
/// than the 7 bits per byte would need.
pub(crate) fn encode_backlen(size: usize) -> ([u8; 5], usize) {
    let n = match size {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    };
    let mut out = [0u8; 5];
    let size = size as u64;
    for (i, byte) in out.iter_mut().take(n).enumerate() {
        let shift = 7 * (n - 1 - i);
        // The first byte carries the high bits and no continuation flag; the others have it.
        let bits = ((size >> shift) & 0x7F) as u8;
        *byte = if i == 0 { bits } else { bits | 0x80 };
    }
    (out, n)
}

/// `n` bytes at `from`, if they end at or before `limit`.
fn window(blob: &[u8], from: usize, n: usize, limit: usize) -> Option<&[u8]> {
    let to = from.checked_add(n).filter(|&to| to <= limit)?;
    blob.get(from..to)
}

fn err(at: usize, what: &'static str) -> BlobError {
    BlobError::new(KIND, at, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wraps raw entries (encoding + data) into a listpack, adding back-lengths and the header.
    fn build(count: u16, entries: &[Vec<u8>]) -> Bytes {
        let mut body = Vec::new();
        for e in entries {
            body.extend_from_slice(e);
            let (b, n) = encode_backlen(e.len());
            body.extend_from_slice(&b[..n]);
        }
        with_header(count, &body)
    }

    fn with_header(count: u16, body: &[u8]) -> Bytes {
        let total = (HEADER + body.len() + 1) as u32;
        let mut out = total.to_le_bytes().to_vec();
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(body);
        out.push(END);
        Bytes::from(out)
    }

    fn s(x: &[u8]) -> Item {
        Item::Str(Bytes::copy_from_slice(x))
    }

    fn kind_at(blob: &Bytes) -> (usize, &'static str) {
        let e = decode(blob).expect_err("corrupt listpack must be rejected");
        assert_eq!(e.kind, KIND);
        (e.at, e.what)
    }

    #[test]
    fn empty_listpack() {
        let blob = with_header(0, &[]);
        assert_eq!(blob.len(), 7);
        assert_eq!(decode(&blob), Ok(vec![]));
    }

    #[test]
    fn integer_encodings() {
        let entries = vec![
            vec![0x00],
            vec![0x7F],
            vec![0xC0 | 0x10, 0x00], // 13-bit: 0x1000 = -4096
            vec![0xC0 | 0x0F, 0xFF], // 13-bit: 4095
            vec![0xDF, 0xFF],        // 13-bit: -1
            vec![0xC0, 0x80],        // 13-bit: 128
            vec![0xF1, 0x00, 0x80],  // i16 min
            vec![0xF1, 0xFF, 0x7F],  // i16 max
            vec![0xF2, 0x00, 0x00, 0x80],
            vec![0xF2, 0xFF, 0xFF, 0x7F],
            vec![0xF2, 0xFE, 0xFF, 0xFF],
            vec![0xF3, 0x00, 0x00, 0x00, 0x80],
            vec![0xF3, 0xFF, 0xFF, 0xFF, 0x7F],
            [vec![0xF4], i64::MIN.to_le_bytes().to_vec()].concat(),
            [vec![0xF4], i64::MAX.to_le_bytes().to_vec()].concat(),
        ];
        let expected = [
            0,
            127,
            -4096,
            4095,
            -1,
            128,
            -32768,
            32767,
            -8_388_608,
            8_388_607,
            -2,
            i64::from(i32::MIN),
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ];
        let blob = build(entries.len() as u16, &entries);
        let items = decode(&blob).expect("valid");
        assert_eq!(
            items,
            expected.iter().map(|&v| Item::Int(v)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn string_encodings_are_zero_copy_slices() {
        let long12 = vec![b'x'; 4095];
        let long32 = vec![b'y'; 4096];
        let entries = vec![
            vec![0x80],
            [vec![0x83], b"abc".to_vec()].concat(),
            [vec![0xE0, 64], vec![b'z'; 64]].concat(),
            [vec![0xEF, 0xFF], long12.clone()].concat(),
            [vec![0xF0], 4096u32.to_le_bytes().to_vec(), long32.clone()].concat(),
        ];
        let blob = build(5, &entries);
        let items = decode(&blob).expect("valid");
        assert_eq!(
            items,
            vec![s(b""), s(b"abc"), s(&[b'z'; 64]), s(&long12), s(&long32)]
        );
        let range = blob.as_ptr() as usize..blob.as_ptr() as usize + blob.len();
        for item in &items {
            if let Item::Str(b) = item {
                assert!(b.is_empty() || range.contains(&(b.as_ptr() as usize)));
            }
        }
    }

    #[test]
    fn multi_byte_back_lengths() {
        // 126-byte string with a 12-bit header: entry size 128, back-length 01 80.
        let mut body = vec![0xE0, 126];
        body.extend_from_slice(&[b'a'; 126]);
        body.extend_from_slice(&[0x01, 0x80]);
        assert_eq!(decode(&with_header(1, &body)), Ok(vec![s(&[b'a'; 126])]));

        // 16378-byte string with a 32-bit header: entry size 16383, which Redis writes with a
        // 3-byte back-length (00 FF FF) although 2 bytes would hold it.
        let mut body = vec![0xF0];
        body.extend_from_slice(&16378u32.to_le_bytes());
        body.extend_from_slice(&[b'b'; 16378]);
        body.extend_from_slice(&[0x00, 0xFF, 0xFF]);
        body.push(0x05); // a following 7-bit int
        body.push(0x01);
        let items = decode(&with_header(2, &body)).expect("valid");
        assert_eq!(items, vec![s(&[b'b'; 16378]), Item::Int(5)]);
    }

    #[test]
    fn back_length_thresholds() {
        assert_eq!(encode_backlen(127), ([127, 0, 0, 0, 0], 1));
        assert_eq!(encode_backlen(128), ([1, 0x80, 0, 0, 0], 2));
        assert_eq!(encode_backlen(16382), ([127, 0xFE, 0, 0, 0], 2));
        assert_eq!(encode_backlen(16383), ([0, 0xFF, 0xFF, 0, 0], 3));
        assert_eq!(encode_backlen(2097150).1, 3);
        assert_eq!(encode_backlen(2097151), ([0, 0xFF, 0xFF, 0xFF, 0], 4));
        assert_eq!(encode_backlen(268435454).1, 4);
        assert_eq!(encode_backlen(268435455), ([0, 0xFF, 0xFF, 0xFF, 0xFF], 5));
        assert_eq!(
            encode_backlen(u32::MAX as usize),
            ([0x0F, 0xFF, 0xFF, 0xFF, 0xFF], 5)
        );
    }

    #[test]
    fn unknown_count_is_counted() {
        let entries = vec![vec![0x01], vec![0x02], vec![0x81, b'q']];
        let blob = build(COUNT_UNKNOWN, &entries);
        assert_eq!(decode(&blob), Ok(vec![Item::Int(1), Item::Int(2), s(b"q")]));
    }

    #[test]
    fn cursor_reports_offsets() {
        let blob = build(2, &[vec![0x01], vec![0x82, b'h', b'i']]);
        let mut c = Cursor::new(&blob).expect("valid header");
        assert_eq!(c.next_item(), Ok(Some((6, Item::Int(1)))));
        assert_eq!(c.next_item(), Ok(Some((8, s(b"hi")))));
        assert_eq!(c.offset(), 12);
        assert_eq!(c.next_item(), Ok(None));
        assert_eq!(c.next_item(), Ok(None));
    }

    #[test]
    fn short_or_mismatched_header() {
        assert_eq!(kind_at(&Bytes::new()).0, 0);
        assert_eq!(kind_at(&Bytes::from_static(&[7, 0, 0, 0, 0, 0])).0, 0);
        // Header says 8 bytes, blob has 7.
        let (at, what) = kind_at(&Bytes::from_static(&[8, 0, 0, 0, 0, 0, 0xFF]));
        assert_eq!(
            (at, what),
            (0, "total-bytes header does not match the blob length")
        );
        // Header says 7 bytes, blob has 8 (trailing byte after the terminator).
        let (at, _) = kind_at(&Bytes::from_static(&[7, 0, 0, 0, 0, 0, 0xFF, 0xFF]));
        assert_eq!(at, 0);
    }

    #[test]
    fn missing_terminator() {
        let mut raw = build(1, &[vec![0x01]]).to_vec();
        *raw.last_mut().expect("non-empty") = 0x00;
        assert_eq!(
            kind_at(&Bytes::from(raw)),
            (8, "last byte is not the 0xFF terminator")
        );
    }

    #[test]
    fn early_terminator_with_bytes_after_it() {
        // A terminator, then a valid-looking entry and the real terminator.
        let blob = with_header(0, &[0xFF, 0x01, 0x01]);
        assert_eq!(kind_at(&blob), (6, "0xFF terminator before the last byte"));
    }

    #[test]
    fn wrong_count() {
        let blob = build(3, &[vec![0x01], vec![0x02]]);
        assert_eq!(
            kind_at(&blob),
            (4, "element count in the header does not match the entries")
        );
        let blob = build(1, &[vec![0x01], vec![0x02]]);
        assert_eq!(kind_at(&blob).0, 4);
    }

    #[test]
    fn overlong_string_lengths() {
        // 6-bit length 5 with only 2 bytes of data before the terminator.
        let blob = with_header(1, &[0x85, b'a', b'b']);
        assert_eq!(kind_at(&blob), (6, "entry runs past the terminator"));
        // 32-bit length of 4 GiB: rejected without allocating.
        let blob = with_header(1, &[0xF0, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
        assert_eq!(kind_at(&blob), (6, "entry runs past the terminator"));
        // 12-bit length header cut by the terminator.
        let blob = with_header(1, &[0xE1]);
        assert_eq!(kind_at(&blob), (6, "entry runs past the terminator"));
    }

    #[test]
    fn truncated_integers() {
        for enc in [0xF1u8, 0xF2, 0xF3, 0xF4, 0xC5] {
            let blob = with_header(1, &[enc, 0x01]);
            assert_eq!(kind_at(&blob).0, 6, "encoding {enc:#x}");
        }
    }

    #[test]
    fn bad_back_length() {
        let blob = with_header(1, &[0x01, 0x02]);
        assert_eq!(
            kind_at(&blob),
            (6, "entry back-length does not match the entry size")
        );
        // Back-length missing entirely: the entry ends right at the terminator.
        let blob = with_header(1, &[0x83, b'a', b'b', b'c']);
        assert_eq!(
            kind_at(&blob),
            (6, "entry back-length runs past the terminator")
        );
    }

    #[test]
    fn unknown_encodings() {
        for enc in 0xF5u8..=0xFE {
            let blob = with_header(1, &[enc, 0x01]);
            assert_eq!(kind_at(&blob), (6, "unknown entry encoding byte"));
        }
    }

    #[test]
    fn mutations_never_panic() {
        let entries = vec![
            vec![0x05],
            [vec![0x83], b"abc".to_vec()].concat(),
            vec![0xC1, 0x02],
            vec![0xF2, 1, 2, 3],
            [vec![0xE0, 70], vec![b'k'; 70]].concat(),
        ];
        let blob = build(5, &entries).to_vec();
        for cut in 0..blob.len() {
            let _ = decode(&Bytes::copy_from_slice(&blob[..cut]));
        }
        for i in 0..blob.len() {
            for v in [0x00, 0x7F, 0x80, 0xBF, 0xC0, 0xE0, 0xF0, 0xF4, 0xFE, 0xFF] {
                let mut m = blob.clone();
                m[i] = v;
                let _ = decode(&Bytes::from(m));
            }
        }
    }
}
