//! Ziplist decoding: the blob behind list-ziplist, zset-ziplist and hash-ziplist values and the
//! nodes of quicklist values (RDB v2–v9).
//!
//! Layout: `u32 LE total bytes`, `u32 LE offset of the last entry`, `u16 LE entry count`
//! (65535 = unknown, count the entries), the entries, then the `0xFF` terminator as the last byte.
//! Each entry is `prevlen` (size of the previous entry: 1 byte if < 254, else `FE` + u32 LE),
//! an encoding, then the data:
//!
//! | encoding      | meaning                                            |
//! |---------------|----------------------------------------------------|
//! | `00pppppp`    | string, 6-bit length                               |
//! | `01pppppp q`  | string, 14-bit length, **big-endian**              |
//! | `10______` +4 | string, u32 **big-endian** length (low bits unused)|
//! | `C0` `D0` `E0`| i16 / i32 / i64, little-endian                     |
//! | `F0`          | i24, little-endian                                 |
//! | `FE`          | i8                                                 |
//! | `F1`–`FD`     | immediate 0–12 (low nibble − 1), no data           |

use bytes::Bytes;

use super::Item;
use crate::rdb::error::BlobError;

const KIND: &str = "ziplist";
const HEADER: usize = 10;
const COUNT_UNKNOWN: u16 = u16::MAX;
const END: u8 = 0xFF;
const BIG_PREVLEN: u8 = 0xFE;
/// Smallest possible entry: a 1-byte prevlen and an immediate-integer encoding.
const MIN_ENTRY: usize = 2;

/// Decodes every element of a ziplist, in order.
pub fn decode(blob: &Bytes) -> Result<Vec<Item>, BlobError> {
    let header = blob
        .get(..HEADER)
        .filter(|_| blob.len() > HEADER)
        .ok_or_else(|| err(0, "shorter than a header and a terminator (11 bytes)"))?;
    let total = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    if usize::try_from(total).ok() != Some(blob.len()) {
        return Err(err(0, "total-bytes header does not match the blob length"));
    }
    let tail = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let declared = u16::from_le_bytes([header[8], header[9]]);
    let end = blob.len() - 1;
    if blob.get(end) != Some(&END) {
        return Err(err(end, "last byte is not the 0xFF terminator"));
    }

    let room = (end - HEADER) / MIN_ENTRY;
    let capacity = match declared {
        COUNT_UNKNOWN => room,
        n => room.min(n.into()),
    };
    let mut items = Vec::with_capacity(capacity);
    let mut pos = HEADER;
    let mut last_start = HEADER;
    let mut prev_size = 0;
    while pos < end {
        let (item, next) = read_entry(blob, pos, end, prev_size)?;
        items.push(item);
        prev_size = next - pos;
        last_start = pos;
        pos = next;
    }

    if usize::try_from(tail).ok() != Some(last_start) {
        return Err(err(4, "tail offset does not point at the last entry"));
    }
    if declared != COUNT_UNKNOWN && usize::from(declared) != items.len() {
        return Err(err(
            8,
            "entry count in the header does not match the entries",
        ));
    }
    Ok(items)
}

/// Decodes the entry at `at` (before `end`); returns it and the offset of the next entry.
fn read_entry(
    blob: &Bytes,
    at: usize,
    end: usize,
    prev_size: usize,
) -> Result<(Item, usize), BlobError> {
    let truncated = || err(at, "entry runs past the terminator");
    let (prevlen, enc_at) = match blob.get(at).copied().ok_or_else(truncated)? {
        END => return Err(err(at, "0xFF terminator before the last byte")),
        BIG_PREVLEN => {
            let b = window(blob, at + 1, 4, end).ok_or_else(truncated)?;
            let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            (usize::try_from(len).ok(), at + 5)
        }
        small => (Some(usize::from(small)), at + 1),
    };
    if prevlen != Some(prev_size) {
        return Err(err(
            at,
            "previous-entry length does not match the previous entry",
        ));
    }

    let enc = *window(blob, enc_at, 1, end)
        .and_then(|b| b.first())
        .ok_or_else(truncated)?;
    let fixed = |n: usize| window(blob, enc_at + 1, n, end).ok_or_else(truncated);
    let string = |header: usize, len: usize| {
        let from = enc_at + header;
        let to = from
            .checked_add(len)
            .filter(|&to| to <= end)
            .ok_or_else(truncated)?;
        Ok((Item::Str(blob.slice(from..to)), to))
    };
    let int = |size: usize, value: i64| Ok((Item::Int(value), enc_at + 1 + size));
    match enc {
        0x00..=0x3F => string(1, usize::from(enc & 0x3F)),
        0x40..=0x7F => {
            let low = fixed(1)?[0];
            string(2, (usize::from(enc & 0x3F) << 8) | usize::from(low))
        }
        // Redis ignores the low six bits of the 32-bit string encoding byte.
        0x80..=0xBF => {
            let b = fixed(4)?;
            let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            string(5, usize::try_from(len).map_err(|_| truncated())?)
        }
        0xC0 => {
            let b = fixed(2)?;
            int(2, i16::from_le_bytes([b[0], b[1]]).into())
        }
        0xD0 => {
            let b = fixed(4)?;
            int(4, i32::from_le_bytes([b[0], b[1], b[2], b[3]]).into())
        }
        0xE0 => {
            let b = fixed(8)?;
            let mut raw = [0u8; 8];
            raw.copy_from_slice(b);
            int(8, i64::from_le_bytes(raw))
        }
        0xF0 => {
            let b = fixed(3)?;
            // Place the 24 bits at the top of an i32 and shift back to sign-extend.
            int(3, (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8).into())
        }
        0xFE => {
            let b = fixed(1)?;
            int(1, i8::from_le_bytes([b[0]]).into())
        }
        0xF1..=0xFD => int(0, i64::from(enc & 0x0F) - 1),
        _ => Err(err(enc_at, "unknown entry encoding byte")),
    }
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

    /// Wraps raw entries (encoding + data, without prevlen) into a ziplist, adding 1-byte or
    /// 5-byte prevlens, the tail offset and the header.
    fn build(count: u16, entries: &[Vec<u8>]) -> Bytes {
        let mut body = Vec::new();
        let mut prev = 0usize;
        let mut tail = HEADER;
        for e in entries {
            tail = HEADER + body.len();
            let start = body.len();
            if prev < 254 {
                body.push(prev as u8);
            } else {
                body.push(BIG_PREVLEN);
                body.extend_from_slice(&(prev as u32).to_le_bytes());
            }
            body.extend_from_slice(e);
            prev = body.len() - start;
        }
        with_header(tail as u32, count, &body)
    }

    fn with_header(tail: u32, count: u16, body: &[u8]) -> Bytes {
        let total = (HEADER + body.len() + 1) as u32;
        let mut out = total.to_le_bytes().to_vec();
        out.extend_from_slice(&tail.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(body);
        out.push(END);
        Bytes::from(out)
    }

    fn s(x: &[u8]) -> Item {
        Item::Str(Bytes::copy_from_slice(x))
    }

    fn kind_at(blob: &Bytes) -> (usize, &'static str) {
        let e = decode(blob).expect_err("corrupt ziplist must be rejected");
        assert_eq!(e.kind, KIND);
        (e.at, e.what)
    }

    #[test]
    fn example_from_the_redis_source() {
        let blob = Bytes::from_static(&[
            0x0f, 0, 0, 0, 0x0c, 0, 0, 0, 0x02, 0, 0x00, 0xf3, 0x02, 0xf6, 0xff,
        ]);
        assert_eq!(decode(&blob), Ok(vec![Item::Int(2), Item::Int(5)]));
    }

    #[test]
    fn empty_ziplist() {
        let blob = with_header(HEADER as u32, 0, &[]);
        assert_eq!(decode(&blob), Ok(vec![]));
    }

    #[test]
    fn integer_encodings() {
        let entries = vec![
            vec![0xF1],
            vec![0xFD],
            vec![0xFE, 0x80],
            vec![0xFE, 0x7F],
            vec![0xC0, 0x00, 0x80],
            vec![0xC0, 0xFF, 0x7F],
            vec![0xF0, 0x00, 0x00, 0x80],
            vec![0xF0, 0xFF, 0xFF, 0x7F],
            vec![0xF0, 0xFE, 0xFF, 0xFF],
            vec![0xD0, 0x00, 0x00, 0x00, 0x80],
            vec![0xD0, 0x40, 0x42, 0x0F, 0x00],
            [vec![0xE0], i64::MIN.to_le_bytes().to_vec()].concat(),
            [vec![0xE0], i64::MAX.to_le_bytes().to_vec()].concat(),
        ];
        let expected = [
            0,
            12,
            -128,
            127,
            -32768,
            32767,
            -8_388_608,
            8_388_607,
            -2,
            i64::from(i32::MIN),
            1_000_000,
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
    fn immediate_values() {
        let entries: Vec<Vec<u8>> = (0xF1u8..=0xFD).map(|e| vec![e]).collect();
        let items = decode(&build(13, &entries)).expect("valid");
        assert_eq!(items, (0..=12).map(Item::Int).collect::<Vec<_>>());
    }

    #[test]
    fn string_encodings_and_big_prevlen() {
        let mid = vec![b'm'; 300];
        let big = vec![b'b'; 16384];
        let entries = vec![
            vec![0x00],
            [vec![0x05], b"hello".to_vec()].concat(),
            // 14-bit big-endian length 300 = 0x012C.
            [vec![0x41, 0x2C], mid.clone()].concat(),
            // 32-bit big-endian length; the next entry needs a 5-byte prevlen.
            [vec![0x80, 0x00, 0x00, 0x40, 0x00], big.clone()].concat(),
            vec![0xF2],
        ];
        let blob = build(5, &entries);
        let items = decode(&blob).expect("valid");
        assert_eq!(
            items,
            vec![s(b""), s(b"hello"), s(&mid), s(&big), Item::Int(1)]
        );
        let range = blob.as_ptr() as usize..blob.as_ptr() as usize + blob.len();
        for item in &items {
            if let Item::Str(b) = item {
                assert!(b.is_empty() || range.contains(&(b.as_ptr() as usize)));
            }
        }
    }

    #[test]
    fn large_prevlen_holding_a_small_value_is_accepted() {
        // Redis never shrinks a prevlen field, so FE + u32 may hold a value below 254.
        let body = [0x00, 0xF2, 0xFE, 0x02, 0x00, 0x00, 0x00, 0xF3];
        let blob = with_header(12, 2, &body);
        assert_eq!(decode(&blob), Ok(vec![Item::Int(1), Item::Int(2)]));
    }

    #[test]
    fn unused_bits_of_32_bit_string_encoding_are_ignored() {
        let blob = build(1, &[vec![0xBF, 0, 0, 0, 2, b'o', b'k']]);
        assert_eq!(decode(&blob), Ok(vec![s(b"ok")]));
    }

    #[test]
    fn unknown_count_is_counted() {
        let blob = build(COUNT_UNKNOWN, &[vec![0xF1], vec![0xF2]]);
        assert_eq!(decode(&blob), Ok(vec![Item::Int(0), Item::Int(1)]));
    }

    #[test]
    fn short_or_mismatched_header() {
        assert_eq!(kind_at(&Bytes::new()).0, 0);
        assert_eq!(
            kind_at(&Bytes::from_static(&[10, 0, 0, 0, 10, 0, 0, 0, 0, 0])).0,
            0
        );
        let mut raw = build(1, &[vec![0xF1]]).to_vec();
        raw[0] += 1;
        assert_eq!(
            kind_at(&Bytes::from(raw)),
            (0, "total-bytes header does not match the blob length")
        );
    }

    #[test]
    fn missing_terminator() {
        let mut raw = build(1, &[vec![0xF1]]).to_vec();
        let last = raw.len() - 1;
        raw[last] = 0x00;
        assert_eq!(
            kind_at(&Bytes::from(raw)),
            (12, "last byte is not the 0xFF terminator")
        );
    }

    #[test]
    fn early_terminator_with_bytes_after_it() {
        let blob = with_header(10, 0, &[0xFF, 0x00, 0xF1]);
        assert_eq!(kind_at(&blob), (10, "0xFF terminator before the last byte"));
    }

    #[test]
    fn wrong_count_and_tail() {
        let blob = build(3, &[vec![0xF1], vec![0xF2]]);
        assert_eq!(
            kind_at(&blob),
            (8, "entry count in the header does not match the entries")
        );
        let blob = with_header(10, 2, &[0x00, 0xF1, 0x02, 0xF2]);
        assert_eq!(
            kind_at(&blob),
            (4, "tail offset does not point at the last entry")
        );
        let blob = with_header(11, 0, &[]);
        assert_eq!(kind_at(&blob).0, 4);
    }

    #[test]
    fn wrong_prevlen() {
        let blob = with_header(12, 2, &[0x00, 0xF1, 0x03, 0xF2]);
        assert_eq!(
            kind_at(&blob),
            (
                12,
                "previous-entry length does not match the previous entry"
            )
        );
        let blob = with_header(10, 1, &[0x01, 0xF1]);
        assert_eq!(kind_at(&blob).0, 10);
        // 5-byte prevlen cut by the terminator.
        let blob = with_header(10, 1, &[0xFE, 0x00, 0x00]);
        assert_eq!(kind_at(&blob), (10, "entry runs past the terminator"));
    }

    #[test]
    fn overlong_string_lengths() {
        let blob = with_header(10, 1, &[0x00, 0x05, b'a']);
        assert_eq!(kind_at(&blob), (10, "entry runs past the terminator"));
        let blob = with_header(10, 1, &[0x00, 0x80, 0xFF, 0xFF, 0xFF, 0xFF, b'a']);
        assert_eq!(kind_at(&blob), (10, "entry runs past the terminator"));
        let blob = with_header(10, 1, &[0x00, 0x7F]);
        assert_eq!(kind_at(&blob), (10, "entry runs past the terminator"));
        // Encoding byte missing: prevlen right before the terminator.
        let blob = with_header(10, 1, &[0x00]);
        assert_eq!(kind_at(&blob), (10, "entry runs past the terminator"));
    }

    #[test]
    fn truncated_integers() {
        for enc in [0xC0u8, 0xD0, 0xE0, 0xF0, 0xFE] {
            let blob = with_header(10, 1, &[0x00, enc]);
            assert_eq!(
                kind_at(&blob),
                (10, "entry runs past the terminator"),
                "{enc:#x}"
            );
        }
    }

    #[test]
    fn unknown_encodings() {
        for enc in [0xC1u8, 0xC8, 0xD5, 0xE1, 0xF0 | 0x0F] {
            let blob = with_header(
                10,
                1,
                &[0x00, enc, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
            );
            assert_eq!(
                kind_at(&blob),
                (11, "unknown entry encoding byte"),
                "{enc:#x}"
            );
        }
    }

    #[test]
    fn mutations_never_panic() {
        let entries = vec![
            vec![0xF5],
            [vec![0x03], b"abc".to_vec()].concat(),
            vec![0xF0, 1, 2, 3],
            [vec![0x40, 0xFF], vec![b'k'; 0xFF]].concat(),
            vec![0xFE, 0x80],
        ];
        let blob = build(5, &entries).to_vec();
        for cut in 0..blob.len() {
            let _ = decode(&Bytes::copy_from_slice(&blob[..cut]));
        }
        for i in 0..blob.len() {
            for v in [0x00, 0x3F, 0x40, 0x80, 0xC0, 0xE0, 0xF0, 0xFD, 0xFE, 0xFF] {
                let mut m = blob.clone();
                m[i] = v;
                let _ = decode(&Bytes::from(m));
            }
        }
    }
}
