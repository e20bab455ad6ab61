//! The link's side of the pipeline ([`replay::pipeline::Feed`]): bytes from the spool (the
//! destination is tended while waiting for them), batches to the sink with backpressure,
//! progress for metrics and INFO, and the end checks of a snapshot transfer. It owns no
//! socket: the link's spool and the run's sink are lent to it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use replay::cmd::Op;
use replay::dest::{Sink, SinkError};
use replay::pipeline::{Barrier, Deliver, DriveError, Feed, PlanError, SnapshotStage, StreamStage};
use tokio_util::sync::CancellationToken;

use super::SourceError;
use crate::spool::{Spool, SpoolEnd};
use crate::status::Status;

/// Reads more bytes from the source (through the spool), tending the destination meanwhile.
/// `Ok(false)` when stopped.
pub async fn read_more(
    spool: &mut Spool,
    buf: &mut BytesMut,
    tx: &mut Sink,
    stop: &CancellationToken,
) -> Result<bool, SourceError> {
    if buf.capacity() - buf.len() < 32 * 1024 {
        buf.reserve(256 * 1024);
    }
    loop {
        let attention = tokio::select! {
            _ = stop.cancelled() => return Ok(false),
            _ = tx.attention() => true,
            r = spool.read_into(buf) => return r.map(|_| true).map_err(SourceError::Spool),
        };
        if attention {
            // The destination needs tending (a writer stopped, or commands came back).
            tx.service().await.map_err(sink_error)?;
        }
    }
}

/// The link's side of the pipeline: bytes from the spool, batches to the sink.
pub struct LinkFeed<'a> {
    pub spool: &'a mut Spool,
    pub tx: &'a mut Sink,
    pub stop: &'a CancellationToken,
    pub status: &'a Status,
    /// The announced length of a sized snapshot transfer.
    pub snapshot_len: Option<u64>,
    /// The slots of the cluster shard the stream is of (a cluster source), for a barrier that
    /// removes its keys from the destination.
    pub shard_slots: Option<Vec<bool>>,
    pub timeout: Duration,
    /// Keys moving between the shards of a cluster source followed whole, and this shard.
    pub migrations: Option<(std::sync::Arc<super::migrations::Migrations>, usize)>,
}

/// How long a stream at a MIGRATE's `RESTORE-ASKING` waits for the other shard's `DEL`.
const MIGRATION_WAIT: Duration = Duration::from_secs(10);

impl Deliver for LinkFeed<'_> {
    type Error = SourceError;

    async fn deliver(&mut self, ops: Vec<Op>) -> Result<(), SourceError> {
        send(self.tx, ops, self.stop).await
    }

    async fn barrier(&mut self, b: Barrier) -> Result<(), SourceError> {
        let offset = match b {
            Barrier::ClearShard { offset } => offset,
            Barrier::CrossSlot(c) => {
                // Not cut short by a stop: a write half copied back would be half applied.
                self.tx.apply_cross_slot(&c).await.map_err(sink_error)?;
                if let Some(o) = c.offset {
                    send(self.tx, vec![Op::Mark(o)], self.stop).await?;
                }
                return Ok(());
            }
            Barrier::AwaitMigration { key } => {
                let Some((m, shard)) = &self.migrations else {
                    return Ok(());
                };
                let matched = tokio::select! {
                    m = m.wait_for(*shard, &key, MIGRATION_WAIT) => m,
                    _ = self.stop.cancelled() => return Ok(()),
                };
                if !matched {
                    tracing::warn!(key = %replay::display::printable(&key), waited_s = MIGRATION_WAIT.as_secs(), "a key migrated into this shard without a deletion from another shard in time (a MIGRATE with COPY, or one that failed half-way?): applying its copy now");
                }
                return Ok(());
            }
        };
        let Some(slots) = &self.shard_slots else {
            return Err(SourceError::Protocol(
                "a shard's barrier in the stream of a source that is not a cluster shard".into(),
            ));
        };
        tokio::select! {
            r = self.tx.drain() => r.map_err(sink_error)?,
            _ = self.stop.cancelled() => return Ok(()),
        }
        let removed = crate::apply::clear_slots(&self.tx.nodes(), slots, self.timeout)
            .await
            .map_err(SourceError::Dest)?;
        tracing::warn!(removed, offset, "a FLUSHALL/FLUSHDB on this source shard: its keys are removed from the destination (the other shards' stay)");
        send(self.tx, vec![Op::Mark(offset)], self.stop).await
    }
}

impl Feed<SnapshotStage> for LinkFeed<'_> {
    async fn more(
        &mut self,
        stage: &SnapshotStage,
        buf: &mut BytesMut,
    ) -> Result<bool, SourceError> {
        if let Some(len) = self.snapshot_len {
            if stage.offset() + buf.len() as u64 >= len {
                return Err(stage
                    .finish(buf)
                    .err()
                    .map(SourceError::from)
                    .unwrap_or_else(|| {
                        SourceError::Protocol("RDB shorter than announced".into())
                    }));
            }
        }
        report_snapshot(self.status, stage);
        match read_more(self.spool, buf, self.tx, self.stop).await {
            Err(SourceError::Spool(SpoolEnd::Closed)) => {
                Err(stage
                    .finish(buf)
                    .err()
                    .map_or(SourceError::Spool(SpoolEnd::Closed), |e| {
                        SourceError::Protocol(format!(
                            "the source closed the link during the snapshot: {e}"
                        ))
                    }))
            }
            r => r,
        }
    }
}

impl Feed<StreamStage> for LinkFeed<'_> {
    async fn more(&mut self, stage: &StreamStage, buf: &mut BytesMut) -> Result<bool, SourceError> {
        self.status
            .read_offset
            .store(stage.state.offset, Ordering::Relaxed);
        self.status
            .source_commands
            .store(stage.state.frames, Ordering::Relaxed);
        read_more(self.spool, buf, self.tx, self.stop).await
    }
}

/// The snapshot's progress, for metrics and INFO.
pub fn report_snapshot(status: &Status, stage: &SnapshotStage) {
    let s = stage.stats();
    status
        .snapshot_read
        .store(stage.offset(), Ordering::Relaxed);
    status
        .keys_restored
        .store(s.keys_restored, Ordering::Relaxed);
    status
        .keys_rewritten
        .store(s.keys_rewritten, Ordering::Relaxed);
    status.keys_expired.store(s.keys_expired, Ordering::Relaxed);
}

pub fn drive_error(e: DriveError<SourceError>) -> SourceError {
    match e {
        DriveError::Plan(PlanError::Rdb(e)) => SourceError::Rdb(e),
        DriveError::Plan(PlanError::Stream(e)) => SourceError::Protocol(e.to_string()),
        DriveError::Plan(PlanError::Slot(e)) => SourceError::Slot(e),
        DriveError::Feed(e) => e,
    }
}

/// Hands the batch to the writer, waiting while its queue is full (backpressure).
pub async fn send(
    tx: &mut Sink,
    batch: Vec<Op>,
    stop: &CancellationToken,
) -> Result<(), SourceError> {
    if batch.is_empty() {
        return Ok(());
    }
    let r = tokio::select! {
        r = tx.send(batch) => r.map_err(sink_error),
        // Stopping: what is not handed over is not applied, and not acknowledged either.
        _ = stop.cancelled() => Ok(()),
    };
    // One thread runs every task: after each batch, let the spool read the socket (so the
    // source never waits on the planner) and the writers write.
    tokio::task::yield_now().await;
    r
}

pub fn sink_error(e: SinkError) -> SourceError {
    match e {
        SinkError::Closed(_) => SourceError::WriterGone,
        SinkError::Route(e) => SourceError::Route(e),
        SinkError::Dest(e) => SourceError::Dest(e),
    }
}
