//! The pipeline every write goes through, whatever brought the bytes: bytes (an RDB snapshot
//! or a replication stream) → parser → planner → [`Batch`] → later planner stages → sink. A
//! [`Stage`] is a parser and its planner ([`SnapshotStage`]: RDB events planned as RESTORE or
//! rewrites; [`StreamStage`]: stream frames planned as forwards, transactions and offsets);
//! a [`Pipeline`] runs one over a [`Feed`], the caller's side of it: where more bytes come
//! from (the source link's spool, a file) and how a batch is handed to the destination. The
//! stages after it (for a cluster destination, the slot planner: db map, slots, splits,
//! transactions) run on each batch before it is handed over.
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
use crate::plan::slots::{CrossSlot, SlotError, SlotPlanner, SlotStats};
use crate::rdb::RdbError;

/// Why a stage could not plan its bytes.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Rdb(#[from] RdbError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Slot(#[from] SlotError),
}

/// Where a stage stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The batch is full: hand it over, then step again.
    Full,
    /// Everything in the buffer is planned: more bytes are needed.
    More,
    /// The input ended (an RDB's EOF opcode and checksum); bytes after it stay in the buffer.
    Done,
    /// Everything planned so far must be applied, then the caller do this, before the stage
    /// goes on.
    Barrier(Barrier),
}

/// What a stage needs done on the destination in the middle of its stream, with everything
/// before it applied and nothing after it sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Barrier {
    /// A FLUSHALL/FLUSHDB of one shard of a cluster source, which emptied only the slots that
    /// shard serves: remove the destination's keys of those slots; the stream is then at
    /// `offset`.
    ClearShard { offset: u64 },
    /// A `RESTORE-ASKING` of `key` (a MIGRATE into this shard): wait until the shard it came
    /// from has applied its `DEL` of the key, so that the destination sees the old shard's
    /// writes to it, then its deletion, then the new shard's copy and writes.
    AwaitMigration { key: bytes::Bytes },
    /// A write whose keys span slots of a cluster destination and which no split keeps
    /// faithful: the sink applies it from its effect; the stream is then at its offset.
    CrossSlot(CrossSlot),
}

/// A parser and its planner: takes bytes from the front of a buffer, appends ops to a batch.
pub trait Stage {
    /// Plans what `buf` holds into `out`, until `out` is full, the bytes run out or the input
    /// ends. Bytes that do not make a whole unit yet stay in `buf`.
    fn step(&mut self, buf: &mut BytesMut, out: &mut Batch) -> Result<Step, PlanError>;
}

/// Where planned batches go: the destination's side of a pipeline.
#[allow(async_fn_in_trait)] // driven on the caller's task: no Send bound is wanted
pub trait Deliver {
    type Error;
    /// Hands a batch to the destination (waiting while it is full: backpressure).
    async fn deliver(&mut self, ops: Vec<Op>) -> Result<(), Self::Error>;
    /// Does what a [`Barrier`] asks, once everything delivered before it is applied.
    async fn barrier(&mut self, b: Barrier) -> Result<(), Self::Error>;
}

/// The caller's side of a pipeline: where the bytes come from, where the batches go.
#[allow(async_fn_in_trait)]
pub trait Feed<S: Stage>: Deliver {
    /// Appends more bytes to `buf`: `Ok(false)` when there are none to come (stopped, or the
    /// input ended where it may). `stage` is there for progress reports and for end checks.
    async fn more(&mut self, stage: &S, buf: &mut BytesMut) -> Result<bool, Self::Error>;
}

/// What stopped a pipeline.
#[derive(Debug)]
pub enum DriveError<E> {
    /// The bytes could not be planned (bad input), or a write cannot go where it must.
    Plan(PlanError),
    /// The feed failed (reading, or handing over).
    Feed(E),
}

/// One source stream's way to the destination: the batch being filled and the stages after
/// the parser's planner that keep state across links (for a cluster destination, the slot
/// planner). A run keeps it for as long as it follows that stream.
#[derive(Debug, Default)]
pub struct Pipeline {
    batch: Batch,
    slots: Option<SlotPlanner>,
}

impl Pipeline {
    /// `slots`: the slot planner, for a cluster destination.
    pub fn new(slots: Option<SlotPlanner>) -> Self {
        Pipeline {
            batch: Batch::default(),
            slots,
        }
    }

    /// An op of the caller's own (a FLUSHALL before a copy, the snapshot's end offset),
    /// planned and handed over with the next batch.
    pub fn push(&mut self, op: Op) {
        self.batch.push(op);
    }

    /// What the slot planner did (cluster destinations).
    pub fn slot_stats(&self) -> Option<&SlotStats> {
        self.slots.as_ref().map(|s| &s.stats)
    }

    /// Hands over what the batch holds, planned by the later stages; a write the slot planner
    /// stops at goes to the feed as a [`Barrier::CrossSlot`] once what came before it is
    /// handed over, and the rest is planned after it.
    pub async fn flush<D: Deliver>(&mut self, to: &mut D) -> Result<(), DriveError<D::Error>> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let mut ops = self.batch.take();
        let Some(p) = self.slots.as_mut() else {
            return to.deliver(ops).await.map_err(DriveError::Feed);
        };
        loop {
            let mut planned = Vec::with_capacity(ops.len() + 8);
            let cross = p
                .plan(std::mem::take(&mut ops), &mut planned)
                .map_err(|e| DriveError::Plan(e.into()))?;
            if !planned.is_empty() {
                to.deliver(planned).await.map_err(DriveError::Feed)?;
            }
            match cross {
                None => return Ok(()),
                Some(c) => to
                    .barrier(Barrier::CrossSlot(c))
                    .await
                    .map_err(DriveError::Feed)?,
            }
        }
    }

    /// Runs `stage` over what `feed` brings until the input ends (`Ok(true)`; everything
    /// planned is handed over) or the feed has no more (`Ok(false)`).
    pub async fn drive<S: Stage, F: Feed<S>>(
        &mut self,
        stage: &mut S,
        buf: &mut BytesMut,
        feed: &mut F,
    ) -> Result<bool, DriveError<F::Error>> {
        loop {
            match stage.step(buf, &mut self.batch).map_err(DriveError::Plan)? {
                Step::Full => self.flush(feed).await?,
                Step::Barrier(b) => {
                    self.flush(feed).await?;
                    feed.barrier(b).await.map_err(DriveError::Feed)?;
                }
                Step::Done => {
                    self.flush(feed).await?;
                    return Ok(true);
                }
                Step::More => {
                    self.flush(feed).await?;
                    if !feed.more(stage, buf).await.map_err(DriveError::Feed)? {
                        return Ok(false);
                    }
                }
            }
        }
    }
}
