//! Drives one replica link: connect and handshake, read the RDB as it arrives and feed it
//! through the parser and planner to the destination writer, then follow the replication
//! stream. Nothing here waits for the whole RDB, and everything sent to the writer goes through
//! its bounded channel.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use replay::cmd::{Command, Op};
use replay::dest::{Applied, Sink};
use replay::net::{Endpoint, Stream, WriteHalf};
use replay::pipeline::{Pipeline, SnapshotStage, StreamStage};
use replay::plan::stream::{Seen, StreamState};
use replay::plan::stream_restore::StreamRestore;
use replay::plan::{BatchLimits, Caps, PlanStats, RdbPlanner};
use replay::rdb::Limits;
use replay::resp::Conn;
use tokio_util::sync::CancellationToken;

use super::acker::AckState;
use super::feed::{drive_error, read_more, report_snapshot, sink_error, LinkFeed};
use super::handshake::{handshake, FullResync, Psync};
use super::transfer::{parse_header, Transfer};
use super::SourceError;
use crate::cli::OnFullResync;
use crate::spool::{SnapshotEnd, Spool, SpoolConfig};
use crate::state::saver::Checkpointer;
use crate::status::heartbeat::Heartbeats;
use crate::status::{Phase, Status};

/// How to reach the source and how to read it.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub endpoint: Endpoint,
    pub connect_timeout: Duration,
    /// Announced with `REPLCONF listening-port` (shown in the source's INFO replication).
    pub listening_port: u16,
    /// The link is given up when the source sends nothing for this long (the source pings its
    /// replicas every 10 s and sends newlines while it prepares a snapshot).
    pub read_timeout: Duration,
    pub limits: Limits,
    pub restore_max: usize,
    pub batch: BatchLimits,
    /// The spool between the socket and the planner (`read_timeout` is taken from above).
    pub spool: SpoolConfig,
}

/// What a link needs from the run it belongs to, kept across links.
#[derive(Debug)]
pub struct Session {
    pub caps: Caps,
    pub applied: Applied,
    pub ack: Arc<AckState>,
    pub stop: CancellationToken,
    pub checkpoint: Arc<Checkpointer>,
    pub on_full_resync: OnFullResync,
    /// The destination holds keys this run or an earlier one copied: a new copy replaces them.
    pub recopy: bool,
    pub full_resyncs: u64,
    pub partial_resyncs: u64,
    /// Links made so far (names the spool's files).
    pub links: u64,
    /// The most bytes the spool held on disk, and how often reading paused at its cap.
    pub spool_peak: u64,
    pub spool_pauses: u64,
    /// The way the source's stream goes to the destination, kept across links (its stages
    /// hold the stream's state: e.g. a transaction being collected for a cluster).
    pub pipeline: Pipeline,
    /// The cluster shard followed (a cluster source), and where its master is now.
    pub shard: Option<super::shard::ShardFollower>,
    pub master_at: super::shard::MasterAt,
    /// Every shard of a cluster source followed by this run: where keys moving between
    /// shards are matched, and this stream's shard index.
    pub migrations: Option<(Arc<super::migrations::Migrations>, usize)>,
    /// For metrics, INFO and the summary line.
    pub status: Arc<Status>,
    pub heartbeats: Arc<Heartbeats>,
    /// replicant's state keys on the destination (never copied back from a source).
    pub state_keys: replay::dest::once::StateKeys,
}

/// A link past the handshake: at the start of the RDB, or (continuing) of the stream.
#[derive(Debug)]
pub struct Link {
    spool: Spool,
    wr: Option<WriteHalf>,
    buf: BytesMut,
    /// The replication id and the offset the stream starts from.
    pub resync: FullResync,
    /// How the snapshot comes; `None` when the source continues the stream (no snapshot).
    pub transfer: Option<Transfer>,
    cfg: LinkConfig,
    /// `--on-full-resync keep` on a re-copy: the destination's keys before it.
    kept: Option<u64>,
}

impl Link {
    /// Connects and runs the replica handshake; with `resume`, asks the source to continue the
    /// stream from there (PSYNC), else for a snapshot; reads the transfer header if one comes.
    pub async fn connect(
        cfg: LinkConfig,
        resume: Option<&FullResync>,
        seq: u64,
        ack: &Arc<AckState>,
    ) -> Result<Link, SourceError> {
        let stream = replay::net::connect(&cfg.endpoint, cfg.connect_timeout).await?;
        let mut conn = Conn::new(stream);
        let secs = cfg.read_timeout.as_secs();
        let psync = tokio::time::timeout(
            cfg.read_timeout,
            handshake(&mut conn, &cfg.endpoint, cfg.listening_port, resume),
        )
        .await
        .map_err(|_| SourceError::Silent(secs))??;
        let resync = match (psync, resume) {
            (Psync::Continue { replid }, Some(r)) => {
                let resync = FullResync {
                    replid: replid.unwrap_or_else(|| r.replid.clone()),
                    offset: r.offset,
                };
                tracing::info!(replid = %resync.replid, offset = resync.offset, "partial resync: the source continues the stream, no copy");
                let (stream, buf) = conn.into_parts();
                let (spool, wr) = spool_and_writer(stream, &cfg, seq, None)?;
                return Ok(Link {
                    spool,
                    wr: Some(wr),
                    buf,
                    resync,
                    transfer: None,
                    cfg,
                    kept: None,
                });
            }
            (Psync::Continue { .. }, None) => {
                return Err(SourceError::Protocol(
                    "source answered +CONTINUE to a PSYNC with no replication id".into(),
                ))
            }
            (Psync::Full(f), _) => f,
        };
        if resume.is_some() {
            tracing::warn!(replid = %resync.replid, offset = resync.offset, "the source could not continue the stream (its backlog no longer holds our offset, or its replication id changed): copying its snapshot again");
        } else {
            tracing::info!(replid = %resync.replid, offset = resync.offset, "full resync: the source is sending its snapshot");
        }
        let silent = || SourceError::Silent(secs);
        let transfer = loop {
            // Each newline (the source's keepalive while it prepares) restarts the clock.
            let line = tokio::time::timeout(cfg.read_timeout, conn.read_line())
                .await
                .map_err(|_| silent())??;
            if !line.is_empty() {
                break parse_header(&line)?;
            }
        };
        let (stream, buf) = conn.into_parts();
        // The source streams only after a first ACK once the snapshot has arrived: the acker
        // must not wait until the planner has read it.
        let end = match transfer {
            Transfer::Sized(len) => SnapshotEnd::After(len.saturating_sub(buf.len() as u64)),
            Transfer::Diskless(mark) => SnapshotEnd::Mark(mark),
        };
        let arrived = ack.clone();
        let on_end: crate::spool::OnSnapshotEnd = Box::new(move || {
            arrived.streaming.store(true, Ordering::Release);
            arrived.now.notify_one();
        });
        let already = match &end {
            SnapshotEnd::After(0) => true,
            SnapshotEnd::Mark(m) => buf.ends_with(m),
            SnapshotEnd::After(_) => false,
        };
        let watch = if already {
            on_end();
            None
        } else {
            Some((end, on_end))
        };
        let (spool, wr) = spool_and_writer(stream, &cfg, seq, watch)?;
        Ok(Link {
            spool,
            wr: Some(wr),
            buf,
            resync,
            transfer: Some(transfer),
            cfg,
            kept: None,
        })
    }

    /// The write half, for the acker.
    pub fn take_writer(&mut self) -> Option<WriteHalf> {
        self.wr.take()
    }

    /// Reads the snapshot (if one comes) and then the stream until `stop` is cancelled (`Ok`)
    /// or something fails. `tx` is the destination's input; `stream` is where the stream stands
    /// (kept by the caller across reconnections: a continued stream picks up its state, e.g.
    /// an open MULTI).
    pub async fn run(
        mut self,
        run: &mut Session,
        tx: &mut Sink,
        stream: &mut Option<StreamState>,
    ) -> Result<(), SourceError> {
        let result = self.follow(run, tx, stream).await;
        let spooled = self.spool.stats();
        run.spool_peak = run.spool_peak.max(spooled.disk_peak);
        run.spool_pauses += spooled.pauses;
        result
    }

    async fn follow(
        &mut self,
        run: &mut Session,
        tx: &mut Sink,
        stream: &mut Option<StreamState>,
    ) -> Result<(), SourceError> {
        let stop = run.stop.clone();
        run.status.set_replid(&self.resync.replid);
        let mut snapshot_scripts = Vec::new();
        if let Some(transfer) = self.transfer.clone() {
            *stream = None;
            run.full_resyncs += 1;
            run.status.full_resyncs.fetch_add(1, Ordering::Relaxed);
            run.status.set_phase(Phase::Snapshot);
            let total = match transfer {
                Transfer::Sized(len) => len,
                Transfer::Diskless(_) => 0,
            };
            run.status.snapshot_total.store(total, Ordering::Relaxed);
            run.status.snapshot_read.store(0, Ordering::Relaxed);
            if !self.begin_copy(run, tx).await? {
                return Ok(());
            }
            let own = run.heartbeats.prefix.clone();
            let Some(stats) = self.snapshot(run, transfer, tx, &stop, own).await? else {
                return Ok(());
            };
            run.checkpoint.position.set_replid(&self.resync.replid);
            snapshot_scripts.clone_from(&stats.lua);
            // Handed over with the stream's first batch, before anything of the stream.
            run.pipeline.push(Op::Mark(self.resync.offset));
            tracing::info!(
                offset = self.resync.offset,
                "snapshot read; following the replication stream"
            );
            if let Some(before) = self.kept {
                report_kept(tx, before, &stats, &stop).await?;
            }
        } else {
            run.partial_resyncs += 1;
            run.status.partial_resyncs.fetch_add(1, Ordering::Relaxed);
            run.checkpoint.position.set_replid(&self.resync.replid);
        }
        // Exactly-once delivery: after a snapshot the stream starts from it; a continued
        // stream first reads back what the destination recorded beyond the checkpoint.
        tx.begin_stream(
            &self.resync.replid,
            self.resync.offset,
            self.transfer.is_none(),
        )
        .await
        .map_err(sink_error)?;
        run.status.set_phase(Phase::Streaming);
        run.ack.streaming.store(true, Ordering::Release);
        run.ack.now.notify_one();

        let mut st = stream
            .take()
            .unwrap_or_else(|| StreamState::new(self.resync.offset));
        st.own_prefix = Some(run.heartbeats.prefix.clone());
        st.own_key = Some(run.heartbeats.key.clone());
        st.own_state = Some(run.state_keys.clone());
        st.scoped = run.shard.is_some();
        st.migrations = run.migrations.is_some();
        for body in snapshot_scripts {
            st.scripts.learn(body);
        }
        if st.restore.is_none() {
            let planner = RdbPlanner::new(run.caps, self.cfg.restore_max, self.cfg.batch);
            st.restore = Some(StreamRestore::new(planner, run.caps.rdb_version));
        }
        let (position, ack, beats, moving) = (
            run.checkpoint.position.clone(),
            run.ack.clone(),
            run.heartbeats.clone(),
            run.migrations.clone(),
        );
        let mut stage = StreamStage::new(
            st,
            Box::new(move |offset, seen: &Seen| {
                if let Some(db) = seen.selected {
                    position.selected(offset, db);
                }
                if seen.getack {
                    ack.now.notify_one();
                }
                if let Some(ts) = seen.heartbeat {
                    beats.read(offset, ts);
                }
                if let (false, Some((m, shard))) = (seen.deleted.is_empty(), &moving) {
                    m.deleted(*shard, offset, &seen.deleted);
                }
            }),
        );
        let shard_slots = run.shard.as_ref().map(|f| f.shard.slot_set());
        let mut feed = LinkFeed {
            spool: &mut self.spool,
            tx,
            stop: &stop,
            status: &run.status,
            snapshot_len: None,
            shard_slots,
            timeout: self.cfg.connect_timeout,
            migrations: run.migrations.clone(),
        };
        let driven = run
            .pipeline
            .drive(&mut stage, &mut self.buf, &mut feed)
            .await;
        // Kept whatever happened: the next link continues from here.
        *stream = Some(stage.into_state());
        driven.map(|_| ()).map_err(drive_error)
    }

    /// Before a snapshot: everything earlier applied, the checkpoint saying "copying" (so that
    /// a restart copies again), and — when the destination already holds an earlier copy —
    /// the `--on-full-resync` policy. `Ok(false)` when stopped.
    async fn begin_copy(&mut self, run: &mut Session, tx: &mut Sink) -> Result<bool, SourceError> {
        tokio::select! {
            r = tx.drain() => r.map_err(sink_error)?,
            _ = run.stop.cancelled() => return Ok(false),
        }
        tx.forget_offsets();
        run.checkpoint.position.begin_copy();
        let ck = run.checkpoint.clone();
        tokio::task::spawn_blocking(move || ck.save())
            .await
            .map_err(|e| SourceError::State(e.to_string()))?
            .map_err(|e| SourceError::State(e.to_string()))?;
        if !std::mem::replace(&mut run.recopy, true) {
            return Ok(true);
        }
        match run.on_full_resync {
            OnFullResync::Flush => match run.shard.as_ref().map(|f| f.shard.slot_set()) {
                // The destination holds the other shards' keys too: only this shard's go.
                Some(slots) => {
                    tracing::warn!("copying this source shard's snapshot again: removing the destination's keys of the shard's slots first (--on-full-resync flush)");
                    let removed =
                        crate::apply::clear_slots(&tx.nodes(), &slots, self.cfg.connect_timeout)
                            .await
                            .map_err(SourceError::Dest)?;
                    tracing::info!(
                        removed,
                        "the destination's keys of the shard's slots are removed"
                    );
                }
                None => {
                    tracing::warn!("copying the snapshot again: emptying the destination first (FLUSHALL, --on-full-resync flush)");
                    run.pipeline.push(Op::Cmd(Command::new(&["FLUSHALL"])));
                }
            },
            OnFullResync::Keep => {
                let before = crate::apply::key_count(&tx.nodes(), self.cfg.connect_timeout)
                    .await
                    .map_err(SourceError::Dest)?;
                tracing::warn!(keys = before, "copying the snapshot again over the destination's keys (--on-full-resync keep)");
                self.kept = Some(before);
            }
        }
        Ok(true)
    }

    /// Reads and applies the RDB; what the planner did. `Ok(None)` when stopped before it
    /// ended.
    async fn snapshot(
        &mut self,
        run: &mut Session,
        transfer: Transfer,
        tx: &mut Sink,
        stop: &CancellationToken,
        own: bytes::Bytes,
    ) -> Result<Option<PlanStats>, SourceError> {
        let status = &run.status;
        let planner = RdbPlanner::new(run.caps, self.cfg.restore_max, self.cfg.batch)
            .skip_prefix(Some(own))
            .skip_state(Some(run.state_keys.clone()));
        let mut stage = SnapshotStage::new(self.cfg.limits, planner);
        let mut feed = LinkFeed {
            spool: &mut self.spool,
            tx,
            stop,
            status,
            snapshot_len: match transfer {
                Transfer::Sized(len) => Some(len),
                Transfer::Diskless(_) => None,
            },
            shard_slots: None,
            timeout: self.cfg.connect_timeout,
            migrations: None,
        };
        let ended = run
            .pipeline
            .drive(&mut stage, &mut self.buf, &mut feed)
            .await
            .map_err(drive_error)?;
        if !ended {
            return Ok(None);
        }
        match transfer {
            Transfer::Sized(len) if stage.offset() != len => {
                return Err(SourceError::Protocol(format!(
                    "RDB ended at byte {} but the transfer announced {len} bytes",
                    stage.offset()
                )));
            }
            Transfer::Sized(_) => {}
            Transfer::Diskless(mark) => {
                while self.buf.len() < mark.len() {
                    if !self.read_more(tx, stop).await? {
                        return Ok(None);
                    }
                }
                if self.buf[..mark.len()] != mark {
                    return Err(SourceError::Protocol(
                        "diskless transfer: the EOF mark does not follow the RDB".into(),
                    ));
                }
                let _ = self.buf.split_to(mark.len());
            }
        }
        report_snapshot(status, &stage);
        let s = stage.stats();
        tracing::info!(
            rdb_bytes = stage.offset(),
            restored = s.keys_restored,
            rewritten = s.keys_rewritten,
            big = s.keys_big,
            expired_skipped = s.keys_expired,
            field_ttls_dropped = s.field_ttls_dropped,
            functions = s.functions,
            "snapshot planned"
        );
        Ok(Some(s.clone()))
    }

    /// Reads more bytes from the source (through the spool). `Ok(false)` when stopped.
    async fn read_more(
        &mut self,
        tx: &mut Sink,
        stop: &CancellationToken,
    ) -> Result<bool, SourceError> {
        read_more(&mut self.spool, &mut self.buf, tx, stop).await
    }
}

/// The spool reading the link (on a thread of its own for plain TCP) and the write half for
/// the acker.
fn spool_and_writer(
    stream: Stream,
    cfg: &LinkConfig,
    seq: u64,
    watch: Option<(SnapshotEnd, crate::spool::OnSnapshotEnd)>,
) -> Result<(Spool, WriteHalf), SourceError> {
    let name = format!("link{seq}");
    match stream {
        Stream::Tcp(tcp) => {
            let std = tcp.into_std()?;
            let reader = std.try_clone()?;
            let (_, wr) = tokio::net::TcpStream::from_std(std)?.into_split();
            let spool = Spool::start_thread(reader, spool_config(cfg), &name, watch)?;
            Ok((spool, WriteHalf::Tcp(wr)))
        }
        tls => {
            let (rd, wr) = tls.into_split();
            Ok((Spool::start(rd, spool_config(cfg), &name, watch), wr))
        }
    }
}

fn spool_config(cfg: &LinkConfig) -> SpoolConfig {
    SpoolConfig {
        read_timeout: cfg.read_timeout,
        ..cfg.spool.clone()
    }
}

/// `--on-full-resync keep`: once the copy is applied, how many of the destination's keys the
/// new snapshot did not have (they are kept; expired ones may be among them).
async fn report_kept(
    tx: &mut Sink,
    before: u64,
    stats: &PlanStats,
    stop: &CancellationToken,
) -> Result<(), SourceError> {
    tokio::select! {
        r = tx.drain() => r.map_err(sink_error)?,
        _ = stop.cancelled() => return Ok(()),
    }
    let after = crate::apply::key_count(&tx.nodes(), Duration::from_secs(10))
        .await
        .map_err(SourceError::Dest)?;
    let copied = stats.keys_restored + stats.keys_rewritten;
    let stale = after.saturating_sub(copied);
    if stale > 0 {
        tracing::warn!(
            kept = stale,
            keys_before = before,
            keys_after = after,
            copied,
            "the destination keeps keys the source's new snapshot does not have (--on-full-resync keep); they may have been deleted on the source while the link was down"
        );
    } else {
        tracing::info!(copied, keys = after, "the new copy left no keys behind");
    }
    Ok(())
}
