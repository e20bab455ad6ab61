//! The sink of a cluster destination: the router in front of one writer per master, and the
//! recovery that keeps the run going while the cluster changes under it. When a writer hands
//! commands back (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, LOADING, a lost connection), routing
//! stops, every writer is drained, the slot map is read again (with capped, jittered backoff
//! while the cluster settles), writers are opened for new masters, and the commands handed
//! back are sent again in their original order before anything new — so the order of writes
//! to a key is kept through every redirection. Applied offsets are frozen meanwhile.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::effect::Record;
use super::effect::{Effects, Failure, Ran, Stage};
use super::once::{self, Ledger, StateKeys};
use super::recovery::{Recovery, Returned};
use super::writer::{Writer, WriterConfig};
use super::{probe, DestError, Progress};
use crate::cluster::{NodeAddr, Router, Topology};
use crate::cmd::{Command, Op, Route};
use crate::net::Endpoint;
use crate::plan::slots::CrossSlot;

/// The progress of every writer of a destination (the set changes with the cluster).
#[derive(Debug, Clone, Default)]
pub struct Applied(pub Arc<RwLock<Vec<Arc<Progress>>>>);

impl Applied {
    pub fn new(list: Vec<Arc<Progress>>) -> Self {
        Applied(Arc::new(RwLock::new(list)))
    }

    fn read(&self) -> Vec<Arc<Progress>> {
        self.0
            .read()
            .map(|l| l.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub(crate) fn set(&self, list: Vec<Arc<Progress>>) {
        match self.0.write() {
            Ok(mut l) => *l = list,
            Err(p) => *p.into_inner() = list,
        }
    }

    /// The source offset the whole destination has applied: the smallest of its writers'.
    pub fn offset(&self) -> u64 {
        self.read().iter().map(|p| p.applied()).min().unwrap_or(0)
    }

    /// Commands and bytes handed to the writers and not answered yet.
    pub fn outstanding(&self) -> (u64, u64) {
        self.read().iter().fold((0, 0), |(c, b), p| {
            (
                c + p.outstanding.load(Ordering::Acquire).max(0) as u64,
                b + p.outstanding_bytes.load(Ordering::Acquire).max(0) as u64,
            )
        })
    }

    /// Every writer's progress (one per destination node).
    pub fn nodes(&self) -> Vec<Arc<Progress>> {
        self.read()
    }

    /// Sets every writer's applied offset (nothing may be in flight).
    pub fn reset(&self, offset: u64) {
        for p in self.read() {
            p.applied_offset.store(offset, Ordering::Release);
        }
    }

    pub fn commands(&self) -> u64 {
        self.read()
            .iter()
            .map(|p| p.commands.load(Ordering::Relaxed))
            .sum()
    }

    pub fn key_errors(&self) -> u64 {
        self.read()
            .iter()
            .map(|p| p.key_errors.load(Ordering::Relaxed))
            .sum()
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct ClusterSink {
    pub(crate) router: Router,
    /// One per master, in the router's order.
    writers: Vec<(NodeAddr, Writer)>,
    applied: Applied,
    recovery: Arc<Recovery>,
    /// Batches a stopped writer did not take, per master, handed back after its own.
    refused: Vec<Vec<Command>>,
    /// Commands handed back and not yet sent again (a refresh failed).
    carry: Vec<(Command, Returned)>,
    seed: Endpoint,
    template: WriterConfig,
    /// Redirections and reconnections so far.
    pub recoveries: u64,
    /// Writes whose keys span slots, applied from their effect ([`super::effect`]).
    effects: Effects,
    /// How many so far.
    pub cross_slot: u64,
    /// Exactly-once delivery: the state keys, and (once the stream started) the record.
    once_keys: Option<StateKeys>,
    ledger: Option<Ledger>,
    /// The part of a source transaction whose EXEC has not arrived yet.
    open_tx: Vec<Op>,
    /// Each master's lowest slot (where its keyless commands are recorded).
    homes: Vec<u16>,
}

impl ClusterSink {
    /// Opens a writer per master of `topo`.
    pub async fn open(
        topo: Topology,
        router: Router,
        seed: Endpoint,
        template: WriterConfig,
    ) -> Result<ClusterSink, DestError> {
        let recovery = Arc::new(Recovery::default());
        let mut sink = ClusterSink {
            router,
            writers: Vec::new(),
            applied: Applied::default(),
            recovery,
            refused: Vec::new(),
            carry: Vec::new(),
            seed,
            effects: Effects::new(Bytes::from_static(b"replicant:"), template.connect_timeout),
            template,
            recoveries: 0,
            cross_slot: 0,
            once_keys: None,
            ledger: None,
            open_tx: Vec::new(),
            homes: Vec::new(),
        };
        sink.adopt(topo).await?;
        Ok(sink)
    }

    pub fn applied(&self) -> Applied {
        self.applied.clone()
    }

    /// Routes a batch and hands it to the masters' writers; recovers first if needed.
    pub async fn send(&mut self, ops: Vec<Op>) -> Result<(), super::SinkError> {
        if self.needs_recovery() {
            self.recover().await?;
        }
        let ops = match self.ledger.is_some() {
            true => {
                let mut ops = once::wrap::complete(&mut self.open_tx, ops);
                once::wrap::stamp(&mut ops);
                ops
            }
            false => ops,
        };
        let mut out: Vec<Vec<Op>> = self.writers.iter().map(|_| Vec::new()).collect();
        self.router.route(ops, &mut out)?;
        if let Some(l) = self.ledger.as_mut() {
            for (batch, home) in out.iter_mut().zip(&self.homes) {
                *batch = l.wrap(std::mem::take(batch), *home);
            }
        }
        self.dispatch(out).await;
        Ok(())
    }

    /// Delivers the stream exactly once, recorded in `keys` (`None`: at least once).
    pub fn set_exactly_once(&mut self, keys: Option<StateKeys>) {
        self.once_keys = keys;
        self.set_failover_peers();
    }

    /// With exactly-once delivery, a hung master that the cluster failed over is followed
    /// (its writers ask the other masters); without, it is waited for.
    fn set_failover_peers(&self) {
        let peers = match self.once_keys {
            Some(_) => self.nodes(),
            None => Vec::new(),
        };
        self.template.failover_peers.set(peers);
    }

    /// The record of exactly-once delivery, once a stream started.
    pub fn ledger(&self) -> Option<&Ledger> {
        self.ledger.as_ref()
    }

    /// A stream of `replid` starts at `offset` (see [`super::SingleSink::begin_stream`]): each
    /// slot's record is read back from the master that owns it.
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
            Ledger::begin(keys, self.ledger.as_ref(), replid, offset, read_back, true)
        else {
            return Ok(());
        };
        if read_back {
            let topo = self.router.topology().clone();
            once::read::read_cluster(
                &self.seed,
                &topo,
                self.template.connect_timeout,
                &mut ledger,
                None,
            )
            .await?;
            ledger.say_ahead();
        }
        self.open_tx.clear();
        self.ledger = Some(ledger);
        Ok(())
    }

    /// A snapshot follows: nothing is recorded until the next stream.
    pub fn end_stream(&mut self) {
        self.ledger = None;
        self.open_tx.clear();
    }

    /// With exactly-once delivery, before a planned write across slots runs: reads the records
    /// of the slots it writes, and has every write of it record itself. Where every slot holds
    /// the record, the write was applied before (a restart): only its scratch keys go. Where
    /// some do, a run stopped while copying back: the copying back resumes for the others.
    async fn record_cross_slot(
        &mut self,
        c: &CrossSlot,
        topo: &crate::cluster::Topology,
        stage: &mut Stage,
    ) -> Result<(), DestError> {
        let (Some(ledger), Some(offset)) = (self.ledger.as_mut(), c.offset) else {
            return Ok(());
        };
        let slots = super::effect::written_slots(stage, &c.args);
        once::read::read_cluster(
            &self.seed,
            topo,
            self.template.connect_timeout,
            ledger,
            Some(&slots),
        )
        .await?;
        let done: Vec<u16> = slots
            .iter()
            .copied()
            .filter(|s| ledger.applied_at(*s) >= offset)
            .collect();
        let sort = !crate::cluster::keys::sort_patterns(&c.args).is_empty();
        if !done.is_empty() {
            let whole = done.len() == slots.len();
            if whole {
                ledger.skipped += 1;
            }
            tracing::info!(
                offset,
                slots = slots.len(),
                holding = done.len(),
                "the destination holds a write across slots already: {}",
                if whole {
                    "not applied again"
                } else {
                    "copying back the rest"
                }
            );
            match &*stage {
                Stage::Run(p) if !sort => *stage = Stage::Back(p.clone(), Ran::Applied),
                _ if whole => *stage = Stage::Done(Ran::Applied),
                _ => {}
            }
        }
        self.effects.record = Some(Record {
            keys: ledger.keys.clone(),
            value: once::encode(&ledger.replid, offset),
            done,
        });
        Ok(())
    }

    /// With exactly-once delivery, after a lost connection: leaves out of `items` the blocks
    /// the destination applied (their replies were lost), from the records read back now.
    async fn sent_before(&mut self, items: &mut Vec<(Command, Returned)>) -> Result<(), DestError> {
        let Some(ledger) = self.ledger.as_mut() else {
            return Ok(());
        };
        if !items.iter().any(|(_, why)| *why == Returned::Lost) {
            return Ok(());
        }
        let cmds: Vec<&Command> = items.iter().map(|(c, _)| c).collect();
        let slots = ledger.slots_of(&cmds);
        let topo = self.router.topology().clone();
        once::read::read_cluster(
            &self.seed,
            &topo,
            self.template.connect_timeout,
            ledger,
            Some(&slots),
        )
        .await?;
        ledger.drop_applied(items, |(c, _)| c);
        Ok(())
    }

    /// Scratch keys of writes applied from their effect are `<prefix>fx:…`.
    pub fn set_scratch_prefix(&mut self, prefix: &str) {
        self.effects.prefix = Bytes::from(prefix.to_string());
    }

    /// Applies a write whose keys span slots from its effect, once everything handed over
    /// before it is applied ([`super::effect`]); what the cluster does meanwhile (MOVED, a
    /// failover) is waited out within `--retry-errors`.
    pub async fn apply_cross_slot(&mut self, c: &CrossSlot) -> Result<(), DestError> {
        if !self.open_tx.is_empty() {
            // A source transaction with a write across slots in it: what came before that
            // write goes first, outside any record (at least once, for this transaction).
            tracing::warn!("a source transaction holds a write across slots: its commands before that write are applied without a record (at least once)");
            let ops: Vec<Op> = std::mem::take(&mut self.open_tx)
                .into_iter()
                .filter(
                    |op| !matches!(op, Op::Cmd(c) if c.is_named(b"MULTI") || c.is_named(b"EXEC")),
                )
                .collect();
            let mut out: Vec<Vec<Op>> = self.writers.iter().map(|_| Vec::new()).collect();
            self.router.route(ops, &mut out)?;
            self.dispatch(out).await;
        }
        self.drain().await?;
        let deadline = Instant::now() + self.template.retry_errors;
        let mut stage = Stage::Keys;
        let mut round = 0u32;
        // Exactly-once delivery: the write's record, once its slots are known.
        let mut recorded = self.ledger.is_none() || c.offset.is_none();
        let ran = loop {
            if let Stage::Done(r) = &stage {
                break r.clone();
            }
            let topo = self.router.topology().clone();
            let planned = matches!(stage, Stage::Direct(_) | Stage::Run(_));
            if planned && !recorded {
                match self.record_cross_slot(c, &topo, &mut stage).await {
                    Ok(()) => recorded = true,
                    Err(e) => {
                        round += 1;
                        if Instant::now() > deadline {
                            return Err(e);
                        }
                        tracing::info!(error = %e, round, "cannot read the records of a write across slots yet; retrying");
                        tokio::time::sleep(backoff(round)).await;
                        let _ = self.refresh().await;
                    }
                }
                continue;
            }
            match self.effects.step(&self.seed, &topo, c, &mut stage).await {
                Ok(()) => {}
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(e)) => {
                    self.effects.reset();
                    // The write may have been applied before its reply was lost: its record
                    // is read again before it is tried again.
                    recorded = self.ledger.is_none() || c.offset.is_none();
                    round += 1;
                    if Instant::now() > deadline {
                        return Err(e);
                    }
                    tracing::info!(error = %e, round, "a write across slots met a changing destination cluster: reading its slot map again");
                    tokio::time::sleep(backoff(round)).await;
                    if let Err(e) = self.refresh().await {
                        tracing::warn!(error = %e, round, "the destination cluster is not ready yet; retrying");
                    }
                }
            }
        };
        self.effects.record = None;
        self.cross_slot += 1;
        if let Ran::KeyError(reply) = ran {
            let (name, key) = (
                c.args
                    .first()
                    .map(|n| String::from_utf8_lossy(n).to_uppercase()),
                c.args.get(1).map(|k| crate::display::printable(k)),
            );
            tracing::warn!(command = name.unwrap_or_default(), key = key.unwrap_or_default(), %reply, "the destination refused a write across slots for its key");
            if let Some((_, w)) = self.writers.first() {
                w.progress().key_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Whether commands are waiting to be sent again, or a writer has stopped.
    pub fn needs_recovery(&self) -> bool {
        self.recovery.pending() || self.writers.iter().any(|(_, w)| w.is_closed())
    }

    async fn dispatch(&mut self, out: Vec<Vec<Op>>) {
        for (i, batch) in out.into_iter().enumerate() {
            let (cmds, bytes) = batch.iter().fold((0i64, 0i64), |(c, b), o| match o {
                Op::Cmd(cmd) => (c + 1, b + cmd.len() as i64),
                Op::Mark(_) => (c, b),
            });
            let (_, w) = &self.writers[i];
            w.progress().queued(cmds, bytes);
            if let Err(back) = w.sender().send_or_return(batch).await {
                w.progress().queued(-cmds, -bytes);
                self.refused[i].extend(back.into_iter().filter_map(|o| match o {
                    Op::Cmd(c) => Some(c),
                    Op::Mark(_) => None,
                }));
            }
        }
    }

    /// Waits until every live writer has an answer for everything, and every stopped one has
    /// handed back what it held.
    async fn wait_idle(&self, deadline: Instant) -> Result<(), DestError> {
        loop {
            let idle = self.writers.iter().all(|(_, w)| {
                if w.is_closed() {
                    w.is_finished()
                } else {
                    w.progress().outstanding.load(Ordering::Acquire) <= 0
                }
            });
            if idle {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(DestError::Unsupported(
                    "the destination cluster did not answer the commands in flight in time".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until every command handed over so far is answered (recovering as needed).
    pub async fn drain(&mut self) -> Result<(), DestError> {
        loop {
            if self.needs_recovery() {
                self.recover().await?;
            }
            self.wait_idle(Instant::now() + self.template.retry_errors)
                .await?;
            if !self.needs_recovery() {
                return Ok(());
            }
        }
    }

    /// Forgets the source offsets routed so far (a new stream starts).
    pub fn forget_offsets(&mut self) {
        self.router.forget_offsets();
    }

    /// The masters, with the seed's credentials.
    pub fn nodes(&self) -> Vec<Endpoint> {
        self.writers
            .iter()
            .map(|(a, _)| self.seed.with_addr(&a.host, a.port))
            .collect()
    }

    /// Sends again what came back, until nothing does; then unfreezes the applied offsets.
    pub async fn recover(&mut self) -> Result<(), DestError> {
        let deadline = Instant::now() + self.template.retry_errors;
        let mut round = 0u32;
        let mut dead = false;
        loop {
            self.wait_idle(deadline).await?;
            let mut items = std::mem::take(&mut self.carry);
            items.extend(self.recovery.take().into_iter().map(|h| (h.cmd, h.why)));
            for r in self.refused.iter_mut() {
                items.extend(r.drain(..).map(|c| (c, Returned::Lost)));
            }
            whole_blocks(&mut items);
            // A stopped writer either lost its connection (what it held is in `items`) or met
            // an error that stops the run: that error must not be lost with it.
            let mut i = 0;
            while i < self.writers.len() {
                if self.writers[i].1.is_closed() {
                    let (addr, w) = self.writers.remove(i);
                    if let Err(e) = w.finish().await {
                        if !matches!(e, DestError::Io(_) | DestError::Conn(_)) {
                            return Err(e);
                        }
                    }
                    tracing::info!(node = %format!("{}:{}", addr.host, addr.port), "closed the connection to a destination cluster node");
                    dead = true;
                } else {
                    i += 1;
                }
            }
            if items.is_empty() && !dead {
                break;
            }
            round += 1;
            self.recoveries += 1;
            if Instant::now() > deadline {
                return Err(DestError::Unsupported(format!(
                    "gave up after {} s (--retry-errors): the destination cluster kept redirecting or refusing {} commands",
                    self.template.retry_errors.as_secs(),
                    items.len()
                )));
            }
            let transient = dead
                || items
                    .iter()
                    .any(|(_, k)| matches!(k, Returned::Transient | Returned::Lost));
            if transient || round > 1 {
                tokio::time::sleep(backoff(round)).await;
            }
            tracing::info!(
                commands = items.len(),
                round,
                "the destination cluster changed: reading its slot map again and sending {} commands again",
                items.len()
            );
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, round, "the destination cluster is not ready yet; retrying");
                self.carry = items;
                continue;
            }
            dead = false;
            if let Err(e) = self.sent_before(&mut items).await {
                tracing::warn!(error = %e, round, "cannot read the applied offsets back yet; retrying");
                self.carry = items;
                continue;
            }
            let mut out: Vec<Vec<Op>> = self.writers.iter().map(|_| Vec::new()).collect();
            // A transaction handed back may still be open on one of the connections.
            if self.recovery.take_discard() {
                for o in out.iter_mut() {
                    o.push(Op::Cmd(Command::new(&["DISCARD"])));
                }
            }
            for (cmd, why) in items {
                // The sink's own ASKING and DISCARD (never planned) are not sent again as they
                // were: an ASKING is added again for an ASK below, a DISCARD by the recovery.
                if cmd.route == Route::Unplanned
                    && (cmd.is_named(b"ASKING") || cmd.is_named(b"DISCARD"))
                {
                    continue;
                }
                match why {
                    Returned::Ask { addr } => match self.node_index(&addr) {
                        Some(i) => {
                            out[i].push(Op::Cmd(Command::new(&["ASKING"])));
                            out[i].push(Op::Cmd(cmd));
                        }
                        None => self.router.route(vec![Op::Cmd(cmd)], &mut out)?,
                    },
                    // Where the node said the slot lives, as clients do (the fresh map agrees
                    // unless it changed again meanwhile).
                    Returned::Moved { addr } => match self.node_index(&addr) {
                        Some(i) => out[i].push(Op::Cmd(cmd)),
                        None => self.router.route(vec![Op::Cmd(cmd)], &mut out)?,
                    },
                    _ => self.router.route(vec![Op::Cmd(cmd)], &mut out)?,
                }
            }
            self.dispatch(out).await;
        }
        self.recovery.unfreeze();
        // Everything routed so far is applied: every master may say so.
        if let Some(last) = self.router.last_offset() {
            let marks = self.writers.iter().map(|_| vec![Op::Mark(last)]).collect();
            self.dispatch(marks).await;
        }
        Ok(())
    }

    fn node_index(&self, addr: &str) -> Option<usize> {
        let (host, port) = addr.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        self.writers
            .iter()
            .position(|(a, _)| a.host == host && a.port == port)
    }

    /// Reads the slot map from the seed or any known master, and adopts it.
    async fn refresh(&mut self) -> Result<(), DestError> {
        let mut candidates = vec![self.seed.clone()];
        candidates.extend(
            self.writers
                .iter()
                .map(|(a, _)| self.seed.with_addr(&a.host, a.port)),
        );
        let mut last = None;
        for ep in candidates {
            match probe(&ep, self.template.connect_timeout).await {
                Ok(t) => match t.cluster {
                    Some(topo) if topo.unassigned() == 0 => return self.adopt(topo).await,
                    Some(topo) => {
                        last = Some(DestError::Unsupported(format!(
                            "{} slots have no master",
                            topo.unassigned()
                        )))
                    }
                    None => {
                        last = Some(DestError::Unsupported(format!(
                            "{ep} is not in cluster mode"
                        )))
                    }
                },
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| DestError::Unsupported("no node to ask".into())))
    }

    /// Writers aligned with `topo`'s masters: live ones kept, new ones opened, others closed.
    async fn adopt(&mut self, topo: Topology) -> Result<(), DestError> {
        let floor = self.applied.offset();
        let mut old = std::mem::take(&mut self.writers);
        let mut writers = Vec::with_capacity(topo.masters.len());
        for m in &topo.masters {
            let reuse = old
                .iter()
                .position(|(a, w)| a == m && !w.is_closed())
                .map(|i| old.swap_remove(i));
            let pair = match reuse {
                Some(p) => p,
                None => {
                    let mut cfg = self.template.clone();
                    cfg.endpoint = self.seed.with_addr(&m.host, m.port);
                    cfg.recovery = Some(self.recovery.clone());
                    let progress = Arc::new(Progress::for_node(format!("{}:{}", m.host, m.port)));
                    progress.applied_offset.store(floor, Ordering::Release);
                    match Writer::start(cfg, progress).await {
                        Ok(w) => (m.clone(), w),
                        Err(e) => {
                            // Keep what we had; the next round tries again.
                            old.extend(writers);
                            self.writers = old;
                            return Err(e);
                        }
                    }
                }
            };
            writers.push(pair);
        }
        for (_, w) in old {
            // Idle (drained) or stopped: nothing of theirs is lost by closing them.
            tokio::spawn(async move {
                let _ = w.finish().await;
            });
        }
        self.applied
            .set(writers.iter().map(|(_, w)| w.progress().clone()).collect());
        self.refused = writers.iter().map(|_| Vec::new()).collect();
        self.writers = writers;
        self.homes = (0..topo.masters.len())
            .map(|m| {
                topo.owner
                    .iter()
                    .position(|o| *o == Some(m))
                    .map_or(0, |s| s as u16)
            })
            .collect();
        self.router.set_topology(topo);
        self.set_failover_peers();
        Ok(())
    }

    /// Closes every writer and waits until each has drained; the first error wins.
    pub async fn finish(mut self) -> Result<(), DestError> {
        if self.needs_recovery() {
            self.recover().await?;
        }
        let mut first = Ok(());
        for (_, w) in self.writers {
            let r = w.finish().await;
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    pub fn abort(&self) {
        for (_, w) in &self.writers {
            w.abort();
        }
    }
}

/// A transaction given back goes again as one, to one node: where one of its commands was
/// redirected (MOVED before ASK), every command of it is (they share a slot), else they are
/// routed by slot together. Blocks are followed per slot (several connections' may be
/// interleaved).
fn whole_blocks(items: &mut [(Command, Returned)]) {
    let mut open: std::collections::HashMap<crate::cmd::Route, Vec<usize>> =
        std::collections::HashMap::new();
    for i in 0..items.len() {
        let (cmd, _) = &items[i];
        let route = cmd.route;
        if cmd.is_named(b"MULTI") {
            open.insert(route, vec![i]);
            continue;
        }
        let Some(members) = open.get_mut(&route) else {
            continue;
        };
        members.push(i);
        if !cmd.is_named(b"EXEC") {
            continue;
        }
        let members = open.remove(&route).unwrap_or_default();
        let why = |want: fn(&Returned) -> bool| {
            members
                .iter()
                .map(|&m| &items[m].1)
                .find(|w| want(w))
                .cloned()
        };
        let unified = why(|w| matches!(w, Returned::Moved { .. }))
            .or_else(|| why(|w| matches!(w, Returned::Ask { .. })));
        if let Some(w) = unified {
            for m in members {
                items[m].1 = w.clone();
            }
        }
    }
}

/// 100 ms doubling per round up to 2 s, with up to 50 % jitter.
fn backoff(round: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << round.min(5)).min(2000);
    let nanos = Instant::now().elapsed().subsec_nanos() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
    Duration::from_millis(base + nanos % (base / 2 + 1))
}
