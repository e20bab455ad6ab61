//! The fast path: a value the destination understands goes as `RESTORE key ttl payload ABSTTL
//! REPLACE`, its payload being the raw RDB bytes of the value (sent from the read buffer, not
//! copied) between a type byte and the DUMP trailer (RDB version + CRC-64).

use bytes::{BufMut, Bytes, BytesMut};

use crate::cmd::{put_array_len, put_bulk, put_bulk_len, Command};
use crate::rdb::crc64::dump_trailer;
use crate::rdb::KeyMeta;

/// `RESTORE` of `raw` (the value bytes of an RDB entry) stamped with RDB version `version`.
pub fn restore(meta: &KeyMeta, raw: &Bytes, version: u16) -> Command {
    let ttl = meta.expire_ms.unwrap_or(0).max(0);
    let extra: Option<(&[u8], i64)> = match (meta.idle, meta.freq) {
        (Some(idle), _) => Some((b"IDLETIME", i64::try_from(idle).unwrap_or(i64::MAX))),
        (None, Some(freq)) => Some((b"FREQ", i64::from(freq))),
        (None, None) => None,
    };
    let argc = 6 + if extra.is_some() { 2 } else { 0 };
    let mut head = BytesMut::with_capacity(64 + meta.key.len());
    put_array_len(&mut head, argc);
    put_bulk(&mut head, b"RESTORE");
    put_bulk(&mut head, &meta.key);
    put_bulk(&mut head, itoa::Buffer::new().format(ttl).as_bytes());
    put_bulk_len(&mut head, 1 + raw.len() + 10);
    head.put_u8(meta.ty);

    let mut tail = BytesMut::with_capacity(64);
    tail.put_slice(&dump_trailer(meta.ty, raw, version));
    tail.put_slice(b"\r\n");
    put_bulk(&mut tail, b"ABSTTL");
    put_bulk(&mut tail, b"REPLACE");
    if let Some((name, n)) = extra {
        put_bulk(&mut tail, name);
        put_bulk(&mut tail, itoa::Buffer::new().format(n).as_bytes());
    }
    Command::chunked(head.freeze(), raw.clone(), tail.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::Logical;

    #[test]
    fn payload_is_type_value_trailer() {
        let meta = KeyMeta {
            db: 0,
            key: Bytes::from_static(b"k"),
            ty: 0,
            logical: Logical::String,
            expire_ms: Some(1_700_000_000_000),
            idle: None,
            freq: None,
            offset: 0,
        };
        let raw = Bytes::from_static(b"\x05hello");
        let c = restore(&meta, &raw, 10);
        let wire: Vec<u8> = c.chunks().iter().flat_map(|b| b.iter().copied()).collect();
        let text = String::from_utf8_lossy(&wire);
        assert!(text.starts_with("*6\r\n$7\r\nRESTORE\r\n$1\r\nk\r\n$13\r\n1700000000000\r\n$17\r\n\x00\x05hello\x0a\x00"));
        assert!(text.ends_with("\r\n$6\r\nABSTTL\r\n$7\r\nREPLACE\r\n"));
        // The value itself is not copied.
        assert_eq!(c.chunks()[1].as_ptr(), raw.as_ptr());
    }
}
