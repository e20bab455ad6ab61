//! The `replicant` command as a library (the binary is `main.rs`; the fuzz targets parse its
//! flags and URLs through it): migrate a live Redis to another Redis by registering with the
//! source as a replica, copying its snapshot and following its replication stream.
//!
//! # Layout
//! - `cli`: the command line. `config`: URLs and which side is which. `fatal`: the one-line
//!   error a failed run ends with. `shutdown`: signals as a cancellation token.
//! - `source`: the replica link (handshake, RDB transfer, replication stream, ACKs).
//! - `apply`: the destination writer set up from the command line (the work itself is in the
//!   `replay` crate).
//! - `spool`: the buffer (memory, then disk) between the source socket and the planner.
//! - `state`: the state directory and its checkpoint, for continuing after a restart.
//! - `status`: what the run reports: metrics, health, the admin port, heartbeats, summaries.
//! - `sync`, `load`: the two commands that write; `verify`: the comparison of both sides;
//!   `cleanup`: removes replicant's state keys from a destination.
#![forbid(unsafe_code)]

pub mod apply;
pub mod check;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod cutover;
pub mod fatal;
pub mod load;
pub mod shutdown;
pub mod source;
pub mod spool;
pub mod state;
pub mod status;
pub mod sync;
pub mod verify;
