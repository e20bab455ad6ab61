//! Decoders for the compact encodings an RDB value may hold as one string: ziplist, listpack,
//! intset, zipmap, and the listpack nodes of streams. Each is a pure function of the blob bytes,
//! validates every length against the blob before reading, and hands out `Bytes` slices of the
//! blob (no copy) for string elements.

pub mod intset;
pub mod listpack;
pub mod stream_node;
pub mod ziplist;
pub mod zipmap;

use bytes::Bytes;

/// One element of an encoded blob: strings are slices of the blob, integers stay integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Str(Bytes),
    Int(i64),
}

impl Item {
    /// The element as Redis would return it to a client: integers in decimal.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Item::Str(b) => b,
            Item::Int(i) => Bytes::copy_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        }
    }
}
