//! The pipeline every write goes through, whatever brought the bytes: bytes (an RDB snapshot
//! or a replication stream) → parser → planner → [`Batch`] → sink. A [`Stage`] is a parser
//! and its planner ([`SnapshotStage`]: RDB events planned as RESTORE or rewrites;
//! [`StreamStage`]: stream frames planned as forwards, transactions and offsets); [`drive`]
//! runs one over a [`Feed`], the caller's side of it: where more bytes come from (the source
//! link's spool, a file) and how a full batch is handed to the destination.
//!
//! This module owns the order of the work (plan what the buffer holds, hand full batches over,
//! then ask for more) and the bounds of a batch. It must not touch sockets, files or the
//! destination itself: those are the feed's, so that `sync` (one pipeline per source link) and
//! `load` (one over a file) run the same code.

pub mod batch;
pub mod snapshot;
pub mod stream;

use bytes::BytesMut;

pub use batch::Batch;
pub use snapshot::SnapshotStage;
pub use stream::{StreamError, StreamStage};

use crate::cmd::Op;
use crate::rdb::RdbError;

/// Why a stage could not plan its bytes.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Rdb(#[from] RdbError),
    #[error(transparent)]
    Stream(#[from] StreamError),
}

/// Where a stage stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The batch is full: hand it over, then step again.
    Full,
    /// Everything in the buffer is planned: more bytes are needed.
    More,
    /// The input ended (an RDB's EOF opcode and checksum); bytes after it stay in the buffer.
    Done,
}

/// A parser and its planner: takes bytes from the front of a buffer, appends ops to a batch.
pub trait Stage {
    /// Plans what `buf` holds into `out`, until `out` is full, the bytes run out or the input
    /// ends. Bytes that do not make a whole unit yet stay in `buf`.
    fn step(&mut self, buf: &mut BytesMut, out: &mut Batch) -> Result<Step, PlanError>;
}

/// The caller's side of a pipeline.
#[allow(async_fn_in_trait)] // driven on the caller's task: no Send bound is wanted
pub trait Feed<S: Stage> {
    type Error;
    /// Hands a batch to the destination (waiting while it is full: backpressure).
    async fn deliver(&mut self, ops: Vec<Op>) -> Result<(), Self::Error>;
    /// Appends more bytes to `buf`: `Ok(false)` when there are none to come (stopped, or the
    /// input ended where it may). `stage` is there for progress reports and for end checks.
    async fn more(&mut self, stage: &S, buf: &mut BytesMut) -> Result<bool, Self::Error>;
}

/// What stopped [`drive`].
#[derive(Debug)]
pub enum DriveError<E> {
    /// The bytes could not be planned (bad input).
    Plan(PlanError),
    /// The feed failed (reading, or handing over).
    Feed(E),
}

/// Runs `stage` over what `feed` brings until the input ends (`Ok(true)`; the last batch is
/// handed over) or the feed has no more (`Ok(false)`).
pub async fn drive<S: Stage, F: Feed<S>>(
    stage: &mut S,
    buf: &mut BytesMut,
    batch: &mut Batch,
    feed: &mut F,
) -> Result<bool, DriveError<F::Error>> {
    loop {
        match stage.step(buf, batch).map_err(DriveError::Plan)? {
            Step::Full => feed.deliver(batch.take()).await.map_err(DriveError::Feed)?,
            Step::Done => {
                if !batch.is_empty() {
                    feed.deliver(batch.take()).await.map_err(DriveError::Feed)?;
                }
                return Ok(true);
            }
            Step::More => {
                if !batch.is_empty() {
                    feed.deliver(batch.take()).await.map_err(DriveError::Feed)?;
                }
                if !feed.more(stage, buf).await.map_err(DriveError::Feed)? {
                    return Ok(false);
                }
            }
        }
    }
}
