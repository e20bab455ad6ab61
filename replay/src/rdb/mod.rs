//! RDB decoding: a streaming parser that is fed bytes as they arrive and hands out events
//! (aux fields, db changes, whole small values as raw bytes, big values element by element).

pub mod blob;
pub mod error;

pub use error::{BlobError, RdbError};
