//! Errors of the RDB layer. Every error names what went wrong and, where known, the absolute
//! byte offset in the RDB stream (counted from the first byte of the `REDIS` magic).

use bytes::Bytes;

/// An RDB decoding error. Offsets are absolute positions in the RDB stream.
#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    #[error("not an RDB file: bad magic {found} at byte 0")]
    BadMagic { found: String },
    #[error(
        "unsupported RDB version: {magic} version {version} (supported: REDIS versions 1 to 12)"
    )]
    UnsupportedVersion { magic: String, version: u32 },
    #[error("corrupt RDB at byte {offset}{}: {what}", key_suffix(.key))]
    Corrupt {
        offset: u64,
        key: Option<Bytes>,
        what: String,
    },
    #[error("RDB ended early at byte {offset}: {what}")]
    Truncated { offset: u64, what: String },
    #[error("RDB checksum mismatch: stored {stored:#018x}, computed {computed:#018x}")]
    Checksum { stored: u64, computed: u64 },
    #[error(
        "RDB value at byte {offset}{} needs {len} bytes in one piece, over the limit of {limit}",
        key_suffix(.key)
    )]
    TooLarge {
        offset: u64,
        key: Option<Bytes>,
        len: u64,
        limit: u64,
    },
    #[error("unsupported RDB value type {ty} at byte {offset}{}", key_suffix(.key))]
    UnsupportedType {
        offset: u64,
        key: Option<Bytes>,
        ty: u8,
    },
}

fn key_suffix(key: &Option<Bytes>) -> String {
    match key {
        Some(k) => format!(" (key {})", crate::display::printable(k)),
        None => String::new(),
    }
}

/// An error inside an encoded blob (ziplist, listpack, intset, zipmap, stream node), with the
/// offset inside the blob. The caller turns it into [`RdbError::Corrupt`] with the absolute
/// offset and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} blob byte {at}: {what}")]
pub struct BlobError {
    /// Which encoding was being read ("ziplist", "listpack", ...).
    pub kind: &'static str,
    /// Offset of the problem inside the blob.
    pub at: usize,
    pub what: &'static str,
}

impl BlobError {
    pub fn new(kind: &'static str, at: usize, what: &'static str) -> Self {
        BlobError { kind, at, what }
    }
}
