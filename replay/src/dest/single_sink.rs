//! The sink of a standalone destination: one writer, and the recovery that keeps the run going
//! when the destination answers LOADING, BUSY (a script running), TRYAGAIN or MASTERDOWN for a
//! while (`--retry-errors`), or the connection is lost (`--retry-connect`). The writer hands
//! such commands back instead of stopping; the sink waits until nothing is in flight, backs
//! off (reconnecting if the connection is gone), and sends them again in their original order,
//! each in the db it was sent in, before anything new. Applied offsets are frozen meanwhile.
//!
//! Sending again is at-least-once, unless the sink delivers exactly once ([`super::once`]):
//! then the stream goes out in recorded blocks, and after a lost connection the record is read
//! back first, and a block the destination applied is not sent again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cluster_sink::Applied;
use super::once::{self, Ledger, StateKeys};
use super::recovery::{returned_kind, Recovery, Returned};
use super::writer::{Writer, WriterConfig};
use super::{DestError, OpSender, Progress, SinkError};
use crate::cmd::Command;
use crate::cmd::Op;
use crate::net::{connect_and_auth, Endpoint};
use crate::resp::frame_error;

/// See the module documentation.
#[derive(Debug)]
pub struct SingleSink {
    /// `None` only between losing a connection and making the next one.
    writer: Option<Writer>,
    tx: OpSender,
    recovery: Arc<Recovery>,
    applied: Applied,
    cfg: WriterConfig,
    /// The last source offset handed over.
    last: Option<u64>,
    /// Commands a stopped writer did not take.
    refused: Vec<Command>,
    /// Recoveries so far.
    pub recoveries: u64,
    /// Exactly-once delivery: the state keys, and (once the stream started) the record.
    once_keys: Option<StateKeys>,
    ledger: Option<Ledger>,
    /// The part of a source transaction whose EXEC has not arrived yet.
    carry: Vec<Op>,
}

impl SingleSink {
    /// Connects the writer.
    pub async fn open(mut cfg: WriterConfig) -> Result<SingleSink, DestError> {
        cfg.hold_on_refusal = true;
        let recovery = Arc::new(Recovery::default());
        let mut wcfg = cfg.clone();
        wcfg.recovery = Some(recovery.clone());
        let progress = Arc::new(Progress::for_node(cfg.endpoint.to_string()));
        let writer = Writer::start(wcfg, progress.clone()).await?;
        Ok(SingleSink {
            tx: writer.sender(),
            writer: Some(writer),
            recovery,
            applied: Applied::new(vec![progress]),
            cfg,
            last: None,
            refused: Vec::new(),
            recoveries: 0,
            once_keys: None,
            ledger: None,
            carry: Vec::new(),
        })
    }

    /// Delivers the stream exactly once, recorded in `keys` (`None`: at least once).
    pub fn set_exactly_once(&mut self, keys: Option<StateKeys>) {
        self.once_keys = keys;
    }

    /// The record of exactly-once delivery, once a stream started.
    pub fn ledger(&self) -> Option<&Ledger> {
        self.ledger.as_ref()
    }

    /// A stream of `replid` starts at `offset` (everything before it applied). With
    /// exactly-once delivery and `read_back` (a stream continued, not one after a snapshot),
    /// what the destination holds beyond `offset` is read back and not sent again.
    pub async fn begin_stream(
        &mut self,
        replid: &str,
        offset: u64,
        read_back: bool,
    ) -> Result<(), DestError> {
        let Some(keys) = &self.once_keys else {
            return Ok(());
        };
        let Some(mut ledger) =
            Ledger::begin(keys, self.ledger.as_ref(), replid, offset, read_back, false)
        else {
            return Ok(());
        };
        if read_back {
            once::read::read_single(&self.cfg.endpoint, self.cfg.connect_timeout, &mut ledger)
                .await?;
            ledger.say_ahead();
        }
        self.carry.clear();
        self.ledger = Some(ledger);
        Ok(())
    }

    /// A snapshot follows: nothing is recorded until the next stream.
    pub fn end_stream(&mut self) {
        self.ledger = None;
        self.carry.clear();
    }

    pub fn applied(&self) -> Applied {
        self.applied.clone()
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.cfg.endpoint
    }

    /// Hands a batch over (recovering first if needed), waiting while the queue is full.
    pub async fn send(&mut self, ops: Vec<Op>) -> Result<(), SinkError> {
        if self.needs_recovery() {
            self.recover().await?;
        }
        let ops = match self.ledger.as_mut() {
            Some(l) => {
                let ops = once::wrap::complete(&mut self.carry, ops);
                l.wrap(ops, 0)
            }
            None => ops,
        };
        self.dispatch(ops).await;
        Ok(())
    }

    async fn dispatch(&mut self, ops: Vec<Op>) {
        let (mut cmds, mut bytes) = (0i64, 0i64);
        for op in &ops {
            match op {
                Op::Cmd(c) => {
                    cmds += 1;
                    bytes += c.len() as i64;
                    if c.offset.is_some() {
                        self.last = c.offset;
                    }
                }
                Op::Mark(o) => self.last = Some(*o),
            }
        }
        let progress = self.writer.as_ref().map(|w| w.progress().clone());
        if let Some(p) = &progress {
            p.queued(cmds, bytes);
        }
        if let Err(back) = self.tx.send_or_return(ops).await {
            if let Some(p) = &progress {
                p.queued(-cmds, -bytes);
            }
            self.refused
                .extend(back.into_iter().filter_map(|o| match o {
                    Op::Cmd(c) => Some(c),
                    Op::Mark(_) => None,
                }));
        }
    }

    /// Whether commands are waiting to be sent again, or the writer has stopped.
    pub fn needs_recovery(&self) -> bool {
        self.recovery.pending() || self.writer.as_ref().is_none_or(Writer::is_closed)
    }

    /// Resolves when [`SingleSink::recover`] is needed.
    pub async fn attention(&self) {
        while !self.needs_recovery() {
            tokio::select! {
                _ = self.tx.closed() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }

    /// Waits until every command handed over so far is answered (recovering as needed).
    pub async fn drain(&mut self) -> Result<(), SinkError> {
        loop {
            if self.needs_recovery() {
                self.recover().await?;
            }
            self.wait_idle(Instant::now() + self.cfg.retry_errors)
                .await?;
            if !self.needs_recovery() {
                return Ok(());
            }
        }
    }

    /// Waits until the writer has an answer for everything, or has stopped and handed back
    /// what it held.
    async fn wait_idle(&self, deadline: Instant) -> Result<(), DestError> {
        loop {
            let idle = match &self.writer {
                None => true,
                Some(w) if w.is_closed() => w.is_finished(),
                Some(w) => w.progress().outstanding.load(Ordering::Acquire) <= 0,
            };
            if idle {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(DestError::Unsupported(
                    "the destination did not answer the commands in flight in time".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Sends again what came back, until nothing does; then unfreezes the applied offset.
    pub async fn recover(&mut self) -> Result<(), DestError> {
        let started = Instant::now();
        let mut round = 0u32;
        loop {
            self.wait_idle(started + self.cfg.retry_errors).await?;
            // The db every command handed to the writer so far has selected, in order.
            let mut db_end = self
                .writer
                .as_ref()
                .map_or(0, |w| w.progress().db.load(Ordering::Acquire));
            let mut items: Vec<(Command, Option<u64>)> = self
                .recovery
                .take()
                .into_iter()
                .map(|h| (h.cmd, Some(h.db)))
                .collect();
            // Never given to the writer: they follow the commands above, in their db.
            for cmd in self.refused.drain(..) {
                if let Some(db) = cmd.selected_db() {
                    db_end = db;
                }
                items.push((cmd, None));
            }
            let dead = self.writer.as_ref().is_none_or(Writer::is_closed);
            if items.is_empty() && !dead {
                break;
            }
            round += 1;
            self.recoveries += 1;
            if started.elapsed() > self.cfg.retry_errors && !dead {
                return Err(DestError::Unsupported(format!(
                    "gave up after {} s (--retry-errors): the destination kept refusing {} commands (LOADING, BUSY, TRYAGAIN or MASTERDOWN)",
                    self.cfg.retry_errors.as_secs(),
                    items.len()
                )));
            }
            if dead {
                self.reconnect(started, &mut round).await?;
            } else {
                tracing::info!(
                    commands = items.len(),
                    round,
                    "the destination refuses writes for now; sending them again once it takes them"
                );
                tokio::time::sleep(backoff(round)).await;
            }
            self.wait_ready(started).await?;
            if dead {
                self.sent_before(&mut items).await?;
            }
            // In the db each was meant for, whatever the connection has selected now; then
            // in the db the stream is in.
            let mut ops = Vec::with_capacity(items.len() + 3);
            // A transaction handed back may still be open on a live connection.
            if self.recovery.take_discard() && !dead {
                ops.push(Op::Cmd(Command::new(&["DISCARD"])));
            }
            let mut cur = None;
            for (cmd, db) in items {
                if let Some(db) = db {
                    if cur != Some(db) {
                        ops.push(Op::Cmd(select(db)));
                        cur = Some(db);
                    }
                }
                if let Some(d) = cmd.selected_db() {
                    cur = Some(d);
                }
                ops.push(Op::Cmd(cmd));
            }
            if cur != Some(db_end) {
                ops.push(Op::Cmd(select(db_end)));
            }
            // Sent again in order: from here on, offsets are published as they are applied.
            self.recovery.unfreeze();
            self.dispatch(ops).await;
        }
        self.recovery.unfreeze();
        if let Some(last) = self.last {
            self.dispatch(vec![Op::Mark(last)]).await;
        }
        Ok(())
    }

    /// With exactly-once delivery, after a lost connection: leaves out of `items` the blocks
    /// the destination applied (their replies were lost), from its record read back now.
    async fn sent_before(
        &mut self,
        items: &mut Vec<(Command, Option<u64>)>,
    ) -> Result<(), DestError> {
        let Some(ledger) = self.ledger.as_mut() else {
            return Ok(());
        };
        once::read::read_single(&self.cfg.endpoint, self.cfg.connect_timeout, ledger).await?;
        ledger.drop_applied(items, |(c, _)| c);
        Ok(())
    }

    /// Waits (within `--retry-errors`) until the destination takes commands again: a probe
    /// that LOADING and BUSY refuse, on a connection of its own.
    async fn wait_ready(&self, started: Instant) -> Result<(), DestError> {
        let Ok(mut conn) = connect_and_auth(&self.cfg.endpoint, self.cfg.connect_timeout).await
        else {
            // The writer meets the same fault and says so.
            return Ok(());
        };
        let mut round = 0u32;
        loop {
            let Ok(reply) = conn.call(&["EXISTS", "replicant:probe"]).await else {
                return Ok(());
            };
            match frame_error(&reply) {
                Some(e) if returned_kind(&e) == Some(Returned::Transient) => {
                    if started.elapsed() > self.cfg.retry_errors {
                        return Err(DestError::Unsupported(format!(
                            "gave up after {} s (--retry-errors): the destination still answers {e}",
                            self.cfg.retry_errors.as_secs()
                        )));
                    }
                    round += 1;
                    tokio::time::sleep(backoff(round)).await;
                }
                _ => return Ok(()),
            }
        }
    }

    /// Replaces a stopped writer by a new connection, retrying for `--retry-connect`; unless
    /// the writer stopped for an error that ends the run.
    async fn reconnect(&mut self, started: Instant, round: &mut u32) -> Result<(), DestError> {
        if let Some(old) = self.writer.take() {
            if let Err(e) = old.finish().await {
                if !matches!(e, DestError::Io(_) | DestError::Conn(_)) {
                    return Err(e);
                }
            }
        }
        let floor = self.applied.offset();
        let mut wcfg = self.cfg.clone();
        wcfg.recovery = Some(self.recovery.clone());
        loop {
            tokio::time::sleep(backoff(*round)).await;
            let progress = Arc::new(Progress::for_node(self.cfg.endpoint.to_string()));
            progress.applied_offset.store(floor, Ordering::Release);
            match Writer::start(wcfg.clone(), progress.clone()).await {
                Ok(w) => {
                    self.tx = w.sender();
                    self.writer = Some(w);
                    self.applied.set(vec![progress]);
                    tracing::info!(target = %self.cfg.endpoint, "reconnected to the destination");
                    return Ok(());
                }
                Err(e @ (DestError::Connect(_) | DestError::Conn(_) | DestError::Io(_)))
                    if started.elapsed() < self.cfg.retry_connect =>
                {
                    *round += 1;
                    tracing::warn!(error = %e, attempt = *round, "cannot reach the destination yet");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Closes the input and waits until everything is answered (recovering first if needed).
    pub async fn finish(mut self) -> Result<(), DestError> {
        if self.needs_recovery() {
            self.recover().await?;
        }
        drop(self.tx);
        match self.writer {
            Some(w) => w.finish().await,
            None => Ok(()),
        }
    }

    pub fn abort(&self) {
        if let Some(w) = &self.writer {
            w.abort();
        }
    }
}

fn select(db: u64) -> Command {
    Command::new(&["SELECT", db.to_string().as_str()])
}

/// 100 ms doubling per round up to 5 s, with up to 50 % jitter.
fn backoff(round: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << round.min(6)).min(5000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    Duration::from_millis(base + nanos % (base / 2 + 1))
}
