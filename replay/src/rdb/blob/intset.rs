//! Intset decoding: the blob behind set-intset values (RDB v2+).
//!
//! Layout: `u32 LE` element width in bytes (2, 4 or 8), `u32 LE` element count, then the
//! elements as little-endian signed integers of that width, strictly ascending. There is no
//! terminator: the blob must be exactly header + count × width bytes.

use bytes::Bytes;

use crate::rdb::error::BlobError;

const KIND: &str = "intset";
const HEADER: usize = 8;

/// Decodes the members of an intset, in their stored (ascending) order. An empty intset, which
/// Redis never writes, decodes to an empty list.
pub fn decode(blob: &Bytes) -> Result<Vec<i64>, BlobError> {
    let header = blob
        .get(..HEADER)
        .ok_or_else(|| err(0, "shorter than the 8-byte header"))?;
    let width = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let count = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let width: usize = match width {
        2 | 4 | 8 => width as usize,
        _ => return Err(err(0, "element width is not 2, 4 or 8")),
    };
    let body = &blob[HEADER..];
    if u64::from(count) * width as u64 != body.len() as u64 {
        return Err(err(4, "element count does not match the blob length"));
    }

    let mut members: Vec<i64> = Vec::with_capacity(body.len() / width);
    for (i, raw) in body.chunks_exact(width).enumerate() {
        let value = match *raw {
            [a, b] => i16::from_le_bytes([a, b]).into(),
            [a, b, c, d] => i32::from_le_bytes([a, b, c, d]).into(),
            [a, b, c, d, e, f, g, h] => i64::from_le_bytes([a, b, c, d, e, f, g, h]),
            _ => return Err(err(HEADER + i * width, "element of the wrong width")),
        };
        if members.last().is_some_and(|&prev| prev >= value) {
            return Err(err(
                HEADER + i * width,
                "elements are not strictly ascending",
            ));
        }
        members.push(value);
    }
    Ok(members)
}

fn err(at: usize, what: &'static str) -> BlobError {
    BlobError::new(KIND, at, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(width: u32, count: u32, body: &[u8]) -> Bytes {
        let mut out = width.to_le_bytes().to_vec();
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(body);
        Bytes::from(out)
    }

    fn kind_at(blob: &Bytes) -> (usize, &'static str) {
        let e = decode(blob).expect_err("corrupt intset must be rejected");
        assert_eq!(e.kind, KIND);
        (e.at, e.what)
    }

    #[test]
    fn sixteen_bit() {
        let body: Vec<u8> = [i16::MIN, -1, 0, 7, i16::MAX]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            decode(&build(2, 5, &body)),
            Ok(vec![-32768, -1, 0, 7, 32767])
        );
    }

    #[test]
    fn thirty_two_bit() {
        let body: Vec<u8> = [i32::MIN, 70_000, i32::MAX]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            decode(&build(4, 3, &body)),
            Ok(vec![i32::MIN.into(), 70_000, i32::MAX.into()])
        );
    }

    #[test]
    fn sixty_four_bit() {
        let body: Vec<u8> = [i64::MIN, -5, 1 << 40, i64::MAX]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            decode(&build(8, 4, &body)),
            Ok(vec![i64::MIN, -5, 1 << 40, i64::MAX])
        );
    }

    #[test]
    fn empty_set() {
        assert_eq!(decode(&build(2, 0, &[])), Ok(vec![]));
    }

    #[test]
    fn short_header() {
        assert_eq!(
            kind_at(&Bytes::new()),
            (0, "shorter than the 8-byte header")
        );
        assert_eq!(kind_at(&Bytes::from_static(&[2, 0, 0, 0, 1, 0, 0])).0, 0);
    }

    #[test]
    fn bad_width() {
        for width in [0, 1, 3, 16, u32::MAX] {
            assert_eq!(
                kind_at(&build(width, 1, &[0; 16])),
                (0, "element width is not 2, 4 or 8")
            );
        }
    }

    #[test]
    fn count_does_not_match_length() {
        // Truncated: three elements announced, two present.
        assert_eq!(
            kind_at(&build(2, 3, &[1, 0, 2, 0])),
            (4, "element count does not match the blob length")
        );
        // Trailing bytes after the last element.
        assert_eq!(kind_at(&build(2, 1, &[1, 0, 9])).0, 4);
        // A count whose byte size overflows 32 bits: no allocation, no overflow.
        assert_eq!(kind_at(&build(8, u32::MAX, &[0; 8])).0, 4);
    }

    #[test]
    fn out_of_order_or_duplicate() {
        assert_eq!(
            kind_at(&build(2, 3, &[1, 0, 3, 0, 2, 0])),
            (12, "elements are not strictly ascending")
        );
        assert_eq!(kind_at(&build(4, 2, &[5, 0, 0, 0, 5, 0, 0, 0])).0, 12);
    }

    #[test]
    fn mutations_never_panic() {
        let blob = build(4, 3, &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]).to_vec();
        for cut in 0..blob.len() {
            let _ = decode(&Bytes::copy_from_slice(&blob[..cut]));
        }
        for i in 0..blob.len() {
            for v in [0x00, 0x02, 0x04, 0x08, 0x80, 0xFF] {
                let mut m = blob.clone();
                m[i] = v;
                let _ = decode(&Bytes::from(m));
            }
        }
    }
}
