//! CRC-64 (Jones polynomial, reflected) as Redis uses it for the RDB trailer and DUMP payloads,
//! from the `crc` crate's catalogue.

use crc::{Crc, Digest, Table, CRC_64_REDIS};

/// Slice-by-16 tables: the checksum runs over every byte of a snapshot, so it is on the hot path.
pub static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// A running checksum.
pub type Crc64Digest = Digest<'static, u64, Table<16>>;

/// The trailer of a DUMP payload for a value of type `ty` whose RDB bytes are `value`: the RDB
/// version (u16 LE) and the CRC-64 (u64 LE) of everything before it.
pub fn dump_trailer(ty: u8, value: &[u8], version: u16) -> [u8; 10] {
    let mut d = CRC64.digest();
    d.update(&[ty]);
    d.update(value);
    let v = version.to_le_bytes();
    d.update(&v);
    let crc = d.finalize().to_le_bytes();
    let mut out = [0u8; 10];
    out[..2].copy_from_slice(&v);
    out[2..].copy_from_slice(&crc);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(CRC64.checksum(b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    #[test]
    fn dump_of_a_small_string_matches_redis() {
        // DUMP of SET k "hello" on Redis 7.0: \x00\x05hello\x0a\x00 + crc.
        let t = dump_trailer(0, b"\x05hello", 10);
        assert_eq!(&t[..2], &[10, 0]);
        let mut all = vec![0u8, 5];
        all.extend_from_slice(b"hello");
        all.extend_from_slice(&[10, 0]);
        assert_eq!(
            u64::from_le_bytes(t[2..].try_into().expect("8 bytes")),
            CRC64.checksum(&all)
        );
    }
}
