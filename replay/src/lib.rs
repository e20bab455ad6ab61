//! The destination side of replicant: everything between bytes that describe a dataset (an RDB
//! snapshot, a replication stream) and a destination Redis that has applied them.
//!
//! It knows nothing of where the bytes come from: the source link lives in the `replicant`
//! crate, and this crate can be used on its own, e.g. to load an RDB file.
//!
//! # Layout
//! - [`rdb`]: the streaming RDB parser (push bytes in, take events out), its primitives and the
//!   blob encodings (ziplist, listpack, intset, zipmap, stream nodes).
#![forbid(unsafe_code)]

pub mod cmd;
pub mod display;
pub mod net;
pub mod rdb;
pub mod resp;
