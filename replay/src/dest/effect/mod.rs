//! A write whose keys span slots of a cluster destination, applied from its effect (the
//! cluster sink calls this once every writer is drained, so the destination holds exactly the
//! source's state before that write): each key it names is copied (`DUMP` + `PTTL`, then
//! `RESTORE … REPLACE`) to a scratch key in one slot ([`plan`]), the command runs there on
//! the copies, the copies are copied back over the real keys (a copy that is gone removes the
//! real key), and the scratch keys are removed. The result is the source's, TTLs included.
//! A `SORT … STORE` whose patterns read other keys is computed instead ([`sort`]): its
//! elements and the values its patterns name are read, and the list is written.
//!
//! It owns its own connections to the masters (not the writers'), and never decides the
//! order of anything: the sink calls it between batches. A step that meets a changing cluster
//! (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, a lost connection) is retried from its start: copying
//! in and running again is safe because the real keys are untouched until copying back, and
//! copying back again is safe because the scratch keys are untouched by it.

pub mod plan;
pub mod sort;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;

pub use plan::EffectPlan;

use super::once::StateKeys;
use super::reply::{classify_error, Action};
use super::DestError;
use crate::cluster::slot::key_slot;
use crate::cluster::{NodeAddr, Topology};
use crate::display::printable;
use crate::net::{connect_and_auth, Endpoint, Stream};
use crate::plan::slots::CrossSlot;
use crate::resp::{frame_error, Conn, Frame};

/// Why a step did not complete.
#[derive(Debug)]
pub enum Failure {
    /// The cluster changed under it, or a connection was lost: read the slot map again, retry.
    Retry(DestError),
    /// The run must stop.
    Fatal(DestError),
}

impl From<crate::resp::ConnError> for Failure {
    fn from(e: crate::resp::ConnError) -> Self {
        Failure::Retry(e.into())
    }
}

/// What running the command on the copies came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// Applied: copy back.
    Applied,
    /// The destination refused it for one key (logged and counted, as any per-key error).
    KeyError(String),
}

/// What a write across slots records with exactly-once delivery: each slot it writes gets
/// `SET <state key of the slot> <value>` in the same transaction as the write, and the slots
/// that hold the record already (a run stopped half-way) are not written again.
#[derive(Debug, Clone)]
pub struct Record {
    pub keys: StateKeys,
    /// `<replid>:<offset>` of the command.
    pub value: Bytes,
    /// Slots whose record says the command is applied there.
    pub done: Vec<u16>,
}

impl Record {
    /// The commands that wrap `writes` to `slot`: `MULTI`, the writes, the record, `EXEC`.
    fn wrap(&self, slot: u16, writes: Vec<Vec<Bytes>>) -> Vec<Vec<Bytes>> {
        let mut tx = Vec::with_capacity(writes.len() + 3);
        tx.push(vec![b("MULTI")]);
        tx.extend(writes);
        tx.push(vec![
            b("SET"),
            self.keys.applied(Some(slot)),
            self.value.clone(),
        ]);
        tx.push(vec![b("EXEC")]);
        tx
    }
}

/// The slots a planned write across slots writes (for its record).
pub fn written_slots(stage: &Stage, args: &[Bytes]) -> Vec<u16> {
    let mut slots = match stage {
        Stage::Direct(slot) => vec![*slot],
        Stage::Run(_) if !crate::cluster::keys::sort_patterns(args).is_empty() => sort::parse(args)
            .ok()
            .and_then(|spec| spec.store)
            .map(|store| vec![key_slot(&store)])
            .unwrap_or_default(),
        Stage::Run(p) => p
            .keys
            .iter()
            .zip(&p.written)
            .filter(|(_, w)| **w)
            .map(|((real, _), _)| key_slot(real))
            .collect(),
        _ => Vec::new(),
    };
    slots.sort_unstable();
    slots.dedup();
    slots
}

/// The reply of a transaction's commands: the `i`-th command's own (from the EXEC array), or
/// why the transaction was refused.
fn tx_reply(replies: &[Frame], i: usize) -> Frame {
    match replies.last() {
        Some(Frame::Array(items)) => items.get(i).cloned().unwrap_or(Frame::Null),
        Some(Frame::Error(e)) => {
            // EXECABORT: the queued command's own refusal says more.
            replies
                .iter()
                .skip(1)
                .find(|f| matches!(f, Frame::Error(_)))
                .cloned()
                .unwrap_or_else(|| Frame::Error(e.clone()))
        }
        other => other.cloned().unwrap_or(Frame::Null),
    }
}

/// Connections to the masters, kept between commands.
#[derive(Debug)]
pub struct Effects {
    /// Scratch keys are `<prefix>fx:…`.
    pub prefix: Bytes,
    /// Exactly-once delivery: what the writes of the command being applied record.
    pub record: Option<Record>,
    timeout: Duration,
    conns: HashMap<NodeAddr, Conn<Stream>>,
}

impl Effects {
    pub fn new(prefix: Bytes, timeout: Duration) -> Self {
        Effects {
            prefix,
            record: None,
            timeout,
            conns: HashMap::new(),
        }
    }

    async fn conn(
        &mut self,
        seed: &Endpoint,
        node: &NodeAddr,
    ) -> Result<&mut Conn<Stream>, Failure> {
        if !self.conns.contains_key(node) {
            let ep = seed.with_addr(&node.host, node.port);
            let c = connect_and_auth(&ep, self.timeout)
                .await
                .map_err(|e| Failure::Retry(e.into()))?;
            self.conns.insert(node.clone(), c);
        }
        self.conns
            .get_mut(node)
            .ok_or_else(|| Failure::Fatal(DestError::Unsupported("connection gone".into())))
    }

    /// Forgets every connection (after a failure: they may be in any state).
    pub fn reset(&mut self) {
        self.conns.clear();
    }

    /// Sends `cmds` to the master of `slot` in one write and reads their replies.
    async fn call(
        &mut self,
        seed: &Endpoint,
        topo: &Topology,
        slot: u16,
        cmds: &[Vec<Bytes>],
    ) -> Result<Vec<Frame>, Failure> {
        let node = topo
            .owner
            .get(usize::from(slot))
            .copied()
            .flatten()
            .and_then(|i| topo.masters.get(i))
            .cloned()
            .ok_or_else(|| {
                Failure::Retry(DestError::Unsupported(format!("slot {slot} has no master")))
            })?;
        let wait = self.timeout * 6;
        let conn = self.conn(seed, &node).await?;
        let encoded: Vec<crate::cmd::Command> =
            cmds.iter().map(|c| crate::cmd::Command::new(c)).collect();
        let exchange = async {
            conn.send_many(&encoded).await?;
            let mut out = Vec::with_capacity(cmds.len());
            for _ in cmds {
                out.push(conn.read_frame().await?);
            }
            Ok(out)
        };
        // A node that stops answering (stopped, or a large value slow to load) is waited for
        // a while, then the step is tried again from its start.
        let r: Result<Vec<Frame>, Failure> = tokio::time::timeout(wait, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(Failure::Retry(DestError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("{}:{} did not answer", node.host, node.port),
                ))))
            });
        if r.is_err() {
            self.conns.remove(&node);
        }
        r
    }

    /// Copies `from` (in its own slot) over `to` (wherever it hashes); removes `to` when
    /// `from` does not exist.
    async fn copy(
        &mut self,
        seed: &Endpoint,
        topo: &Topology,
        from: &Bytes,
        to: &Bytes,
    ) -> Result<(), Failure> {
        let write = self.dump_as(seed, topo, from, to).await?;
        let r = self.call(seed, topo, key_slot(to), &[write]).await?;
        check("RESTORE", to, &r[0])
    }

    /// The write that makes `to` a copy of `from` (read now): a `RESTORE … REPLACE`, or a
    /// `DEL` when `from` does not exist.
    async fn dump_as(
        &mut self,
        seed: &Endpoint,
        topo: &Topology,
        from: &Bytes,
        to: &Bytes,
    ) -> Result<Vec<Bytes>, Failure> {
        let dumped = self
            .call(
                seed,
                topo,
                key_slot(from),
                &[vec![b("DUMP"), from.clone()], vec![b("PTTL"), from.clone()]],
            )
            .await?;
        Ok(match (&dumped[0], &dumped[1]) {
            (Frame::BulkString(payload), Frame::Integer(ttl)) if *ttl != -2 => vec![
                b("RESTORE"),
                to.clone(),
                Bytes::from((*ttl).max(0).to_string()),
                payload.clone(),
                b("REPLACE"),
            ],
            (Frame::Null, _) | (_, Frame::Integer(-2)) => vec![b("DEL"), to.clone()],
            (d, t) => return Err(refusal("DUMP", from, d, t)),
        })
    }

    /// Copies the command's keys to the scratch slot, and runs it there.
    pub async fn run(
        &mut self,
        seed: &Endpoint,
        topo: &Topology,
        plan: &EffectPlan,
        args: &[Bytes],
    ) -> Result<Ran, Failure> {
        if !crate::cluster::keys::sort_patterns(args).is_empty() {
            return self.sort_store(seed, topo, args).await;
        }
        for (real, scratch) in &plan.keys {
            self.copy(seed, topo, real, scratch).await?;
        }
        let r = self
            .call(seed, topo, plan.slot, std::slice::from_ref(&plan.command))
            .await?;
        match frame_error(&r[0]) {
            None => Ok(Ran::Applied),
            Some(e) if retry_code(&e) => Err(Failure::Retry(refused(&plan.command, &e))),
            // Only a key-level refusal (WRONGTYPE, BUSYKEY…) is the key's: the source ran the
            // command on the same data, so any other error is a fault to stop at.
            Some(e) if classify_error(&e) == Action::PerKey && !e.starts_with("ERR") => {
                Ok(Ran::KeyError(e))
            }
            Some(e) => Err(Failure::Fatal(refused(args, &e))),
        }
    }

    /// Copies the scratch keys back over the real ones, then removes every scratch key.
    /// (Nothing to do for a computed SORT: it wrote its result itself.)
    pub async fn copy_back(
        &mut self,
        seed: &Endpoint,
        topo: &Topology,
        plan: &EffectPlan,
        applied: bool,
        args: &[Bytes],
    ) -> Result<(), Failure> {
        if !crate::cluster::keys::sort_patterns(args).is_empty() {
            return Ok(());
        }
        if applied {
            match self.record.clone() {
                Some(rec) => self.copy_back_recorded(seed, topo, plan, &rec).await?,
                None => {
                    for ((real, scratch), written) in plan.keys.iter().zip(&plan.written) {
                        if *written {
                            self.copy(seed, topo, scratch, real).await?;
                        }
                    }
                }
            }
        }
        let mut del = vec![b("DEL")];
        del.extend(plan.keys.iter().map(|(_, s)| s.clone()));
        let r = self.call(seed, topo, plan.slot, &[del]).await?;
        check("DEL", &plan.prefix_key(), &r[0])
    }

    /// Copies back, one transaction per slot written (its keys and its record together), the
    /// slots that do not hold the record yet.
    async fn copy_back_recorded(
        &mut self,
        seed: &Endpoint,
        topo: &Topology,
        plan: &EffectPlan,
        rec: &Record,
    ) -> Result<(), Failure> {
        let mut per_slot: std::collections::BTreeMap<u16, Vec<(Bytes, Vec<Bytes>)>> =
            std::collections::BTreeMap::new();
        for ((real, scratch), written) in plan.keys.iter().zip(&plan.written) {
            let slot = key_slot(real);
            if !*written || rec.done.contains(&slot) {
                continue;
            }
            let write = self.dump_as(seed, topo, scratch, real).await?;
            per_slot
                .entry(slot)
                .or_default()
                .push((real.clone(), write));
        }
        for (slot, writes) in per_slot {
            let keys: Vec<Bytes> = writes.iter().map(|(k, _)| k.clone()).collect();
            let tx = rec.wrap(slot, writes.into_iter().map(|(_, w)| w).collect());
            let r = self.call(seed, topo, slot, &tx).await?;
            for (i, key) in keys.iter().enumerate() {
                check("RESTORE", key, &tx_reply(&r, i))?;
            }
        }
        Ok(())
    }

    /// A `SORT … STORE` whose patterns read other keys: read the elements and what the
    /// patterns name, sort, and replace the stored list (in one MULTI/EXEC on its master).
    async fn sort_store(
        &mut self,
        seed: &Endpoint,
        topo: &Topology,
        args: &[Bytes],
    ) -> Result<Ran, Failure> {
        let fatal = |what: String| Failure::Fatal(DestError::Unsupported(what));
        let spec = sort::parse(args).map_err(fatal)?;
        let (Some(key), Some(store)) = (args.get(1), spec.store.clone()) else {
            return Err(fatal("SORT without STORE is not a write".into()));
        };
        let slot = key_slot(key);
        let kind = self
            .call(seed, topo, slot, &[vec![b("TYPE"), key.clone()]])
            .await?;
        let (kind, read) = match crate::resp::frame_text(&kind[0]).as_str() {
            "list" => (
                sort::Kind::List,
                vec![b("LRANGE"), key.clone(), b("0"), b("-1")],
            ),
            "set" => (sort::Kind::Set, vec![b("SMEMBERS"), key.clone()]),
            "zset" => (
                sort::Kind::Zset,
                vec![b("ZRANGE"), key.clone(), b("0"), b("-1")],
            ),
            "none" => (sort::Kind::List, Vec::new()),
            other => {
                return Ok(Ran::KeyError(format!(
                    "WRONGTYPE the key to sort is a {other}"
                )))
            }
        };
        let mut elements = Vec::new();
        if !read.is_empty() {
            let r = self.call(seed, topo, slot, &[read]).await?;
            let Frame::Array(items) = &r[0] else {
                return Err(fatal(
                    "SORT: the elements of the sorted key could not be read".into(),
                ));
            };
            elements.extend(items.iter().filter_map(|e| match e {
                Frame::BulkString(e) => Some(e.clone()),
                _ => None,
            }));
        }
        // The values the patterns name, read from their masters in pipelined groups.
        let patterns: Vec<Bytes> = spec
            .by
            .iter()
            .chain(spec.gets.iter().filter(|g| &g[..] != b"#"))
            .cloned()
            .collect();
        let mut lookups: Vec<(u16, (Bytes, Bytes), Vec<Bytes>)> = Vec::new();
        for e in &elements {
            for p in &patterns {
                let Some((k, field)) = plan::pattern_key(p, e) else {
                    continue;
                };
                let k = Bytes::from(k);
                let cmd = match field {
                    Some(f) => vec![b("HGET"), k.clone(), Bytes::from(f)],
                    None => vec![b("GET"), k.clone()],
                };
                lookups.push((key_slot(&k), (p.clone(), e.clone()), cmd));
            }
        }
        let mut values = sort::Values::new();
        let owner = |s: u16| topo.owner.get(usize::from(s)).copied().flatten();
        lookups.sort_by_key(|l| owner(l.0));
        for group in lookups.chunk_by(|a, b| owner(a.0) == owner(b.0)) {
            for chunk in group.chunks(512) {
                let cmds: Vec<Vec<Bytes>> = chunk.iter().map(|l| l.2.clone()).collect();
                let replies = self.call(seed, topo, chunk[0].0, &cmds).await?;
                for (l, r) in chunk.iter().zip(replies) {
                    let v = match r {
                        Frame::BulkString(v) => Some(v),
                        // Missing, or not a string (a hash for `->`): Redis reads nothing.
                        _ => None,
                    };
                    values.insert(l.1.clone(), v);
                }
            }
        }
        let list = sort::sort(&spec, kind, elements, &values).map_err(fatal)?;
        let mut tx = vec![vec![b("MULTI")], vec![b("DEL"), store.clone()]];
        for chunk in list.chunks(1024) {
            let mut push = vec![b("RPUSH"), store.clone()];
            push.extend(chunk.iter().cloned());
            tx.push(push);
        }
        let store_slot = key_slot(&store);
        if let Some(rec) = &self.record {
            if rec.done.contains(&store_slot) {
                return Ok(Ran::Applied);
            }
            tx.push(vec![
                b("SET"),
                rec.keys.applied(Some(store_slot)),
                rec.value.clone(),
            ]);
        }
        tx.push(vec![b("EXEC")]);
        let r = self.call(seed, topo, store_slot, &tx).await?;
        match r.last() {
            Some(Frame::Array(_)) => Ok(Ran::Applied),
            Some(last) => Err(refusal("SORT … STORE (computed)", &store, last, last)),
            None => Err(fatal("SORT: no reply to EXEC".into())),
        }
    }
}

/// Where a write across slots stands; kept across retries, so that a retried step starts
/// where it may.
#[derive(Debug)]
pub enum Stage {
    /// Its keys are to be found.
    Keys,
    /// Its keys share one slot after all (or it has none): it goes to that slot as it is.
    Direct(u16),
    /// Its keys are known: copy them in and run it on the copies.
    Run(EffectPlan),
    /// It ran on the copies: copy the results back.
    Back(EffectPlan, Ran),
    Done(Ran),
}

impl Effects {
    /// Takes `stage` one step on; on failure it stays where it was.
    pub async fn step(
        &mut self,
        seed: &Endpoint,
        topo: &Topology,
        c: &CrossSlot,
        stage: &mut Stage,
    ) -> Result<(), Failure> {
        let next = match stage {
            Stage::Keys => {
                let (at, read_only) = if c.ask_keys {
                    (self.getkeys(seed, topo, &c.args).await?, Vec::new())
                } else {
                    (c.keys.clone(), c.read_only.clone())
                };
                let slots: Vec<u16> = at
                    .iter()
                    .filter_map(|&i| c.args.get(i))
                    .map(|k| key_slot(k))
                    .collect();
                let one_slot = slots.windows(2).all(|w| w[0] == w[1]);
                if one_slot && crate::cluster::keys::sort_patterns(&c.args).is_empty() {
                    Stage::Direct(slots.first().copied().unwrap_or(0))
                } else {
                    Stage::Run(plan::plan(&c.args, &at, &read_only, &self.prefix))
                }
            }
            Stage::Direct(slot) => Stage::Done(self.direct(seed, topo, *slot, &c.args).await?),
            Stage::Run(p) => {
                let ran = self.run(seed, topo, p, &c.args).await?;
                Stage::Back(p.clone(), ran)
            }
            Stage::Back(p, ran) => {
                let applied = *ran == Ran::Applied;
                self.copy_back(seed, topo, p, applied, &c.args).await?;
                Stage::Done(ran.clone())
            }
            Stage::Done(_) => return Ok(()),
        };
        *stage = next;
        Ok(())
    }

    /// The argument indexes of the keys of `args`, as the destination finds them
    /// (`COMMAND GETKEYS`): each key it names is the first argument not taken yet with
    /// those bytes.
    async fn getkeys(
        &mut self,
        seed: &Endpoint,
        topo: &Topology,
        args: &[Bytes],
    ) -> Result<Vec<usize>, Failure> {
        let mut cmd = vec![b("COMMAND"), b("GETKEYS")];
        cmd.extend(args.iter().cloned());
        let r = self.call(seed, topo, 0, &[cmd]).await?;
        let names = match &r[0] {
            Frame::Array(a) => a.clone(),
            Frame::Error(e) if e.contains("no key arguments") => Vec::new(),
            other => {
                return Err(Failure::Fatal(DestError::Refused {
                    cmd: format!(
                        "COMMAND GETKEYS {} (its keys cannot be found, so it cannot be routed)",
                        args.first().map(|n| printable(n)).unwrap_or_default()
                    ),
                    key: None,
                    reply: crate::resp::frame_text(other),
                }))
            }
        };
        let mut at: Vec<usize> = Vec::new();
        for n in names {
            let Frame::BulkString(n) = n else { continue };
            match (1..args.len()).find(|i| args[*i] == n && !at.contains(i)) {
                Some(i) => at.push(i),
                None => {
                    return Err(Failure::Fatal(DestError::Unsupported(format!(
                        "COMMAND GETKEYS named the key {} that is not an argument of {}",
                        printable(&n),
                        args.first().map(|n| printable(n)).unwrap_or_default()
                    ))))
                }
            }
        }
        Ok(at)
    }

    /// Sends a write whose keys share `slot` to that slot's master as it is.
    async fn direct(
        &mut self,
        seed: &Endpoint,
        topo: &Topology,
        slot: u16,
        args: &[Bytes],
    ) -> Result<Ran, Failure> {
        let reply = match self.record.clone() {
            Some(rec) if rec.done.contains(&slot) => return Ok(Ran::Applied),
            Some(rec) => {
                let r = self
                    .call(seed, topo, slot, &rec.wrap(slot, vec![args.to_vec()]))
                    .await?;
                tx_reply(&r, 0)
            }
            None => {
                let mut r = self.call(seed, topo, slot, &[args.to_vec()]).await?;
                r.swap_remove(0)
            }
        };
        match frame_error(&reply) {
            None => Ok(Ran::Applied),
            Some(e) if retry_code(&e) => Err(Failure::Retry(refused(args, &e))),
            Some(e) if classify_error(&e) == Action::PerKey => Ok(Ran::KeyError(e)),
            Some(e) => Err(Failure::Fatal(refused(args, &e))),
        }
    }
}

impl EffectPlan {
    fn prefix_key(&self) -> Bytes {
        self.keys
            .first()
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Replies that mean the cluster is changing: the step is tried again.
fn retry_code(e: &str) -> bool {
    let code = e.split(' ').next().unwrap_or("");
    matches!(
        code,
        "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" | "BUSY" | "MASTERDOWN"
    )
}

fn refused(args: &[Bytes], reply: &str) -> DestError {
    DestError::Refused {
        cmd: format!(
            "{} (keys in several slots, applied from its effect)",
            args.first()
                .map(|n| String::from_utf8_lossy(n).to_uppercase())
                .unwrap_or_default()
        ),
        key: args.get(1).map(|k| printable(k)),
        reply: reply.to_string(),
    }
}

fn refusal(cmd: &str, key: &Bytes, a: &Frame, b: &Frame) -> Failure {
    let reply = frame_error(a)
        .or_else(|| frame_error(b))
        .unwrap_or_else(|| "an unexpected reply".into());
    let e = DestError::Refused {
        cmd: cmd.into(),
        key: Some(printable(key)),
        reply: reply.clone(),
    };
    if retry_code(&reply) {
        Failure::Retry(e)
    } else {
        Failure::Fatal(e)
    }
}

fn check(cmd: &str, key: &Bytes, reply: &Frame) -> Result<(), Failure> {
    match frame_error(reply) {
        None => Ok(()),
        Some(_) => Err(refusal(cmd, key, reply, reply)),
    }
}
