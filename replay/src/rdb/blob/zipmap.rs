//! Zipmap decoding: the blob behind hash-zipmap values (RDB v2, Redis 2.4–2.6; converted to a
//! ziplist or hash table on load by later servers).
//!
//! Layout: a `u8` pair count (254 or more = unknown, count the pairs), then for each pair the
//! key length, the key, the value length, a `u8` count of free bytes, the value and that many
//! unused bytes; then the `0xFF` terminator as the last byte. A length is one byte if below 254,
//! else `FE` followed by a u32 LE.

use bytes::Bytes;

use crate::rdb::error::BlobError;

const KIND: &str = "zipmap";
const BIG_LEN: u8 = 0xFE;
const END: u8 = 0xFF;
/// Smallest possible pair: key length, value length and free-byte count, one byte each.
const MIN_PAIR: usize = 3;

/// Decodes the key/value pairs of a zipmap, in stored order. An empty zipmap, which Redis never
/// writes, decodes to an empty list.
pub fn decode(blob: &Bytes) -> Result<Vec<(Bytes, Bytes)>, BlobError> {
    let declared = *blob
        .first()
        .filter(|_| blob.len() >= 2)
        .ok_or_else(|| err(0, "shorter than a count and a terminator (2 bytes)"))?;
    let end = blob.len() - 1;
    if blob.get(end) != Some(&END) {
        return Err(err(end, "last byte is not the 0xFF terminator"));
    }
    let known = (declared < BIG_LEN).then_some(usize::from(declared));

    let room = (end - 1) / MIN_PAIR;
    let mut pairs = Vec::with_capacity(known.map_or(room, |n| n.min(room)));
    let mut pos = 1;
    while pos < end {
        let at = pos;
        let truncated = || err(at, "pair runs past the terminator");
        if blob.get(pos) == Some(&END) {
            return Err(err(pos, "0xFF terminator before the last byte"));
        }
        let (key_len, key_at) = read_len(blob, pos, end).ok_or_else(truncated)?;
        let key_end = span(key_at, key_len, end).ok_or_else(truncated)?;
        if window(blob, key_end, 1, end) == Some(&[END]) {
            return Err(err(key_end, "0xFF where a value length was expected"));
        }
        let (value_len, free_at) = read_len(blob, key_end, end).ok_or_else(truncated)?;
        let free = *window(blob, free_at, 1, end)
            .and_then(|b| b.first())
            .ok_or_else(truncated)?;
        let value_at = free_at + 1;
        let value_end = span(value_at, value_len, end).ok_or_else(truncated)?;
        pos = span(value_end, usize::from(free), end).ok_or_else(truncated)?;
        pairs.push((blob.slice(key_at..key_end), blob.slice(value_at..value_end)));
    }

    if known.is_some_and(|n| n != pairs.len()) {
        return Err(err(0, "pair count in the header does not match the pairs"));
    }
    Ok(pairs)
}

/// A length at `at` (a byte below 254, or `FE` + u32 LE) and the offset just after it.
fn read_len(blob: &[u8], at: usize, end: usize) -> Option<(usize, usize)> {
    match *window(blob, at, 1, end)?.first()? {
        BIG_LEN => {
            let b = window(blob, at + 1, 4, end)?;
            let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            Some((usize::try_from(len).ok()?, at + 5))
        }
        small => Some((usize::from(small), at + 1)),
    }
}

/// The end of `len` bytes starting at `from`, if it is at or before `limit`.
fn span(from: usize, len: usize, limit: usize) -> Option<usize> {
    from.checked_add(len).filter(|&to| to <= limit)
}

/// `n` bytes at `from`, if they end at or before `limit`.
fn window(blob: &[u8], from: usize, n: usize, limit: usize) -> Option<&[u8]> {
    blob.get(from..span(from, n, limit)?)
}

fn err(at: usize, what: &'static str) -> BlobError {
    BlobError::new(KIND, at, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &[u8], v: &[u8]) -> (Bytes, Bytes) {
        (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v))
    }

    fn kind_at(blob: &[u8]) -> (usize, &'static str) {
        let e = decode(&Bytes::copy_from_slice(blob)).expect_err("corrupt zipmap must be rejected");
        assert_eq!(e.kind, KIND);
        (e.at, e.what)
    }

    #[test]
    fn example_from_the_redis_source() {
        let blob = Bytes::from_static(b"\x02\x03foo\x03\x00bar\x05hello\x05\x00world\xff");
        let pairs = decode(&blob).expect("valid");
        assert_eq!(pairs, vec![pair(b"foo", b"bar"), pair(b"hello", b"world")]);
        let range = blob.as_ptr() as usize..blob.as_ptr() as usize + blob.len();
        for (k, v) in &pairs {
            assert!(range.contains(&(k.as_ptr() as usize)));
            assert!(range.contains(&(v.as_ptr() as usize)));
        }
    }

    #[test]
    fn free_bytes_are_skipped() {
        let blob = Bytes::from_static(b"\x02\x01a\x01\x03b___\x01c\x00\x00\xff");
        assert_eq!(decode(&blob), Ok(vec![pair(b"a", b"b"), pair(b"c", b"")]));
    }

    #[test]
    fn five_byte_lengths() {
        let key = vec![b'k'; 300];
        let value = vec![b'v'; 254];
        let mut raw = vec![0x01, BIG_LEN];
        raw.extend_from_slice(&300u32.to_le_bytes());
        raw.extend_from_slice(&key);
        raw.push(BIG_LEN);
        raw.extend_from_slice(&254u32.to_le_bytes());
        raw.push(0x00);
        raw.extend_from_slice(&value);
        raw.push(END);
        assert_eq!(decode(&Bytes::from(raw)), Ok(vec![pair(&key, &value)]));
    }

    #[test]
    fn empty_and_unknown_count() {
        assert_eq!(decode(&Bytes::from_static(b"\x00\xff")), Ok(vec![]));
        let blob = Bytes::from_static(b"\xfe\x01a\x01\x00b\xff");
        assert_eq!(decode(&blob), Ok(vec![pair(b"a", b"b")]));
    }

    #[test]
    fn too_short() {
        assert_eq!(kind_at(b"").0, 0);
        assert_eq!(kind_at(b"\xff").0, 0);
    }

    #[test]
    fn missing_terminator() {
        assert_eq!(
            kind_at(b"\x01\x01a\x01\x00b"),
            (5, "last byte is not the 0xFF terminator")
        );
    }

    #[test]
    fn early_terminator_with_bytes_after_it() {
        assert_eq!(
            kind_at(b"\x01\x01a\x01\x00b\xff\x01\xff"),
            (6, "0xFF terminator before the last byte")
        );
    }

    #[test]
    fn wrong_count() {
        assert_eq!(
            kind_at(b"\x02\x01a\x01\x00b\xff"),
            (0, "pair count in the header does not match the pairs")
        );
    }

    #[test]
    fn overlong_lengths() {
        assert_eq!(
            kind_at(b"\x01\x09ab\x01\x00b\xff"),
            (1, "pair runs past the terminator")
        );
        assert_eq!(
            kind_at(b"\x01\x01a\x09\x00b\xff"),
            (1, "pair runs past the terminator")
        );
        assert_eq!(kind_at(b"\x01\xfe\xff\xff\xff\xffa\xff").0, 1);
        // Free-byte count that runs past the terminator.
        assert_eq!(kind_at(b"\x01\x01a\x01\x05b\xff").0, 1);
        // 5-byte length cut by the terminator.
        assert_eq!(kind_at(b"\x01\xfe\x01\x00\xff").0, 1);
    }

    #[test]
    fn missing_value() {
        assert_eq!(
            kind_at(b"\x01\x01a\xff\xff"),
            (3, "0xFF where a value length was expected")
        );
        // The key ends right at the terminator: no value length, no free byte.
        assert_eq!(
            kind_at(b"\x01\x01a\xff"),
            (1, "pair runs past the terminator")
        );
        // Value length present, free byte missing.
        assert_eq!(
            kind_at(b"\x01\x01a\x00\xff"),
            (1, "pair runs past the terminator")
        );
    }

    #[test]
    fn mutations_never_panic() {
        let blob = b"\x02\x03foo\x03\x01bar_\x05hello\x05\x00world\xff".to_vec();
        for cut in 0..blob.len() {
            let _ = decode(&Bytes::copy_from_slice(&blob[..cut]));
        }
        for i in 0..blob.len() {
            for v in [0x00, 0x01, 0x05, 0x7F, 0xFD, 0xFE, 0xFF] {
                let mut m = blob.clone();
                m[i] = v;
                let _ = decode(&Bytes::from(m));
            }
        }
    }
}
