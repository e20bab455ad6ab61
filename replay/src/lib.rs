//! The destination side of replicant: everything between bytes that describe a dataset (an RDB
//! snapshot, a replication stream) and a destination Redis that has applied them.
//!
//! It knows nothing of where the bytes come from: the source link lives in the `replicant`
//! crate, and this crate can be used on its own, e.g. to load an RDB file.
//!
//! # Layout (in the order data flows)
//! - [`rdb`]: the streaming RDB parser (push bytes in, take events out), its primitives and the
//!   blob encodings (ziplist, listpack, intset, zipmap, stream nodes).
//! - [`plan`]: what to send for each RDB event: `RESTORE` of the raw bytes, or a rewrite as
//!   ordinary commands in bounded batches; the destination's capabilities; what to forward of
//!   the replication stream.
//! - [`pipeline`]: parser → planner → batch, driven over a feed of bytes: the one loop that
//!   `sync` (per source link) and `load` (over a file) both run.
//! - [`cmd`]: the command model (wire chunks + the source offset a command completes) and
//!   [`cmd::Op`], the unit the pipeline hands on.
//! - [`dest`]: the pipelined writer with its in-flight window, reply policy and progress.
//! - [`resp`], [`net`]: RESP connections, endpoints, TCP options, TLS and AUTH.
//! - [`display`]: keys rendered for logs.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod cmd;
pub mod dest;
pub mod display;
pub mod net;
pub mod pipeline;
pub mod plan;
pub mod rdb;
pub mod resp;

#[cfg(test)]
mod test_util;
