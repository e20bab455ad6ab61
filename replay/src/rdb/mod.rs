//! RDB decoding: a streaming parser that is fed bytes as they arrive and hands out events
//! (aux fields, db changes, whole small values as raw bytes, big values piece by piece).
//!
//! - [`parser`]: the state machine over the opcodes of a file and the events it emits.
//! - `value`: a resumable reader of one value, unit by unit (skim or decode).
//! - `cursor`: the primitives (lengths, strings, LZF, doubles) over a slice that may end early.
//! - [`blob`]: ziplist, listpack, intset, zipmap and stream-node decoders.
//! - [`decoded`]: the decoded content of a value ([`Piece`]), for the rewrite path.
//! - [`types`]: what each type code is, and which server versions understand it.
//! - [`crc64`]: the RDB and DUMP checksum.

pub mod blob;
pub mod crc64;
pub(crate) mod cursor;
pub mod decoded;
pub mod error;
pub mod parser;
pub mod types;
pub(crate) mod value;

pub use decoded::Piece;
pub use error::{BlobError, RdbError};
pub use parser::{Entry, Event, KeyMeta, Limits, RdbParser};
pub use types::Logical;

use bytes::Bytes;

/// Decodes a whole value (as held by [`Entry::raw`]) into pieces of about `piece_bytes`, for
/// the rewrite path. `None` when the type cannot be decoded (module values).
pub fn decode_value(
    meta: &KeyMeta,
    raw: &Bytes,
    piece_bytes: usize,
    mut sink: impl FnMut(Vec<Piece>),
) -> Result<Option<()>, RdbError> {
    let Some((lay, logical)) = types::layout(meta.ty) else {
        return Ok(None);
    };
    if logical == Logical::Module {
        return Ok(None);
    }
    let mut reader = value::ValueReader::new(lay, logical, u64::MAX);
    let mut off = 0usize;
    let fail = |at: usize, what: String| RdbError::Corrupt {
        offset: meta.offset + at as u64,
        key: Some(meta.key.clone()),
        what,
    };
    while !reader.done() {
        let (n, unit) = match reader.next_unit(&raw[off..]) {
            Ok(u) => u,
            Err(cursor::Fail::Corrupt { at, what }) => return Err(fail(off + at, what)),
            Err(_) => return Err(fail(off, "value ends early".into())),
        };
        let bytes = raw.slice(off..off + n);
        match reader.materialize(unit, &bytes) {
            Ok(()) => {}
            Err(cursor::Fail::Corrupt { what, .. }) => return Err(fail(off, what)),
            Err(_) => return Err(fail(off, "value ends early".into())),
        }
        off += n;
        if reader.pending_weight() >= piece_bytes {
            sink(reader.take());
        }
    }
    let rest = reader.take();
    if !rest.is_empty() {
        sink(rest);
    }
    if off != raw.len() {
        return Err(fail(off, "bytes left after the value".into()));
    }
    Ok(Some(()))
}
