//! The slot planner, the stream's and the snapshot's last stage for a cluster destination:
//! which source dbs it takes (a cluster has only db 0; SELECT is tracked here and not sent),
//! the slot of each command's keys, multi-key commands whose keys span slots split per slot
//! where that keeps their meaning, and MULTI/EXEC kept a transaction when its keys share a
//! slot (else applied command by command, and counted). Every command leaves with its
//! [`Route`]; the cluster sink's router only maps a slot to the master that owns it now.
//! A write that spans slots and cannot be split (RENAME, SUNIONSTORE, a SORT whose patterns
//! read other keys…) stops the plan as a [`CrossSlot`]: the caller applies everything planned
//! before it, has the sink apply it from its effect, then plans on.
//!
//! It holds the state of one source stream (the selected db, a transaction being collected),
//! so each pipeline has its own; it must not know the destination's slot map (that changes
//! under it, and belongs to the sink). Pure: no I/O.

use std::collections::VecDeque;

use bytes::Bytes;

use std::sync::Arc;

use crate::cluster::commands::{CommandTable, Lookup};
use crate::cluster::keys::{split_kind, Keys, Split};
use crate::cluster::slot::key_slot;
use crate::cmd::{Command, Encoder, Op, Route};
use crate::display::printable;
use crate::resp::peek_args;

/// Which source dbs go to the cluster's db 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbMap {
    /// Source dbs mapped to db 0; `None` means every db.
    pub mapped: Option<Vec<u64>>,
}

impl DbMap {
    pub fn only_zero() -> Self {
        DbMap {
            mapped: Some(vec![0]),
        }
    }

    pub fn all() -> Self {
        DbMap { mapped: None }
    }

    pub fn maps(&self, db: u64) -> bool {
        self.mapped.as_ref().is_none_or(|m| m.contains(&db))
    }
}

/// What the slot planner did that an operator should know.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SlotStats {
    /// Commands whose keys spanned slots, sent as one command per slot.
    pub split_commands: u64,
    /// MULTI/EXEC blocks whose keys spanned slots, applied command by command.
    pub split_transactions: u64,
    /// Commands that could not be applied faithfully (logged with their keys).
    pub unsplittable: u64,
    /// Writes whose keys span slots, applied from their effect.
    pub cross_slot: u64,
}

/// A write whose keys span slots, to be applied from its effect (see
/// [`crate::dest::effect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossSlot {
    pub args: Vec<Bytes>,
    /// The argument indexes of its keys; none when the destination's table cannot tell and
    /// the sink must ask it (`COMMAND GETKEYS`).
    pub keys: Vec<usize>,
    /// Those of `keys` the command only reads.
    pub read_only: Vec<usize>,
    /// The keys are to be asked of the destination.
    pub ask_keys: bool,
    /// The source offset it completes, if any.
    pub offset: Option<u64>,
}

/// A write the planner refuses to pass (stops the run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    #[error(
        "a write to source db {db} (key {key}): a Redis Cluster has only db 0; map it with --db-map {db}:0 or --all-dbs-to 0"
    )]
    UnmappedDb { db: u64, key: String },
    #[error(
        "the destination cluster does not know the command {name} (it is not in its COMMAND table), so its keys cannot be routed: load the same modules and version of commands as the source"
    )]
    UnknownCommand { name: String },
    #[error("{0}: a Redis Cluster has only db 0, and this cannot be applied to the dbs it takes")]
    OtherDbs(String),
}

/// See the module documentation.
#[derive(Debug)]
pub struct SlotPlanner {
    dbs: DbMap,
    /// The destination's command table: where each command's keys are.
    table: Arc<CommandTable>,
    /// A write that cannot be applied to the cluster at all is logged and counted instead of
    /// stopping the plan.
    pub log_unsplittable: bool,
    /// The source's selected db.
    db: u64,
    /// A transaction being collected (after MULTI, until EXEC).
    tx: Option<Vec<Command>>,
    /// Ops not planned yet: the rest of a batch after a [`CrossSlot`], and the commands of a
    /// transaction that spans slots (planned one by one).
    pending: VecDeque<Op>,
    pub stats: SlotStats,
}

impl SlotPlanner {
    pub fn new(dbs: DbMap, table: Arc<CommandTable>) -> Self {
        SlotPlanner {
            dbs,
            table,
            log_unsplittable: false,
            db: 0,
            tx: None,
            pending: VecDeque::new(),
            stats: SlotStats::default(),
        }
    }

    /// Plans a batch in order: every command in `out` has its route. Marks pass as they are,
    /// except inside a transaction being collected (its EXEC carries the offset). Stops at a
    /// write that must be applied from its effect, and returns it: everything in `out` comes
    /// before it; call again (with more ops, or none) to plan what follows it.
    pub fn plan(
        &mut self,
        ops: Vec<Op>,
        out: &mut Vec<Op>,
    ) -> Result<Option<CrossSlot>, SlotError> {
        self.pending.extend(ops);
        while let Some(op) = self.pending.pop_front() {
            match op {
                Op::Mark(o) => out.push(Op::Mark(o)),
                Op::Cmd(c) => {
                    if let Some(x) = self.command(c, out)? {
                        return Ok(Some(x));
                    }
                }
            }
        }
        Ok(None)
    }

    fn command(&mut self, cmd: Command, out: &mut Vec<Op>) -> Result<Option<CrossSlot>, SlotError> {
        let args = peek_args(cmd.chunks()[0], usize::MAX);
        let name = args
            .first()
            .map(|n| n.to_ascii_uppercase())
            .unwrap_or_default();
        match name.as_slice() {
            b"MULTI" => {
                self.tx = Some(Vec::new());
                return Ok(None);
            }
            b"EXEC" => {
                self.exec(cmd.offset, out)?;
                return Ok(None);
            }
            _ => {}
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.push(cmd);
            return Ok(None);
        }
        self.single(cmd, &args, out)
    }

    /// Plans one command outside a transaction.
    fn single(
        &mut self,
        cmd: Command,
        args: &[Bytes],
        out: &mut Vec<Op>,
    ) -> Result<Option<CrossSlot>, SlotError> {
        let offset = cmd.offset;
        match self.single_or_refuse(cmd, args, out) {
            Err(e @ (SlotError::OtherDbs(_) | SlotError::UnknownCommand { .. }))
                if self.log_unsplittable =>
            {
                self.stats.unsplittable += 1;
                tracing::warn!(error = %e, "not applied (--on-unsplittable log): the destination now differs from the source");
                if let Some(o) = offset {
                    out.push(Op::Mark(o));
                }
                Ok(None)
            }
            r => r,
        }
    }

    fn single_or_refuse(
        &mut self,
        cmd: Command,
        args: &[Bytes],
        out: &mut Vec<Op>,
    ) -> Result<Option<CrossSlot>, SlotError> {
        if let Some(effect) = self.db_effect(args)? {
            return match effect {
                Some(c) => {
                    let mut c = c;
                    c.offset = cmd.offset;
                    let args = peek_args(c.chunks()[0], usize::MAX);
                    self.single(c, &args, out)
                }
                None => {
                    if let Some(o) = cmd.offset {
                        out.push(Op::Mark(o));
                    }
                    Ok(None)
                }
            };
        }
        let (lookup, found) = self.table.lookup(args);
        let keys = match lookup {
            Lookup::Keys(k) => k,
            Lookup::Unknown => {
                return Err(SlotError::UnknownCommand {
                    name: args
                        .first()
                        .map(|n| printable(&n.to_ascii_uppercase()))
                        .unwrap_or_default(),
                })
            }
            Lookup::AskServer => {
                self.check_db(args.get(1))?;
                self.stats.cross_slot += 1;
                return Ok(Some(CrossSlot {
                    args: args.to_vec(),
                    keys: Vec::new(),
                    read_only: Vec::new(),
                    ask_keys: true,
                    offset: cmd.offset,
                }));
            }
        };
        match keys {
            Keys::Drop => {
                if args
                    .first()
                    .is_some_and(|n| n.eq_ignore_ascii_case(b"SELECT"))
                {
                    if let Some(db) = args
                        .get(1)
                        .and_then(|d| std::str::from_utf8(d).ok()?.parse().ok())
                    {
                        self.db = db;
                    }
                }
                // Not sent; the offset it completes still counts.
                if let Some(o) = cmd.offset {
                    out.push(Op::Mark(o));
                }
                Ok(None)
            }
            Keys::Broadcast => {
                self.check_db(args.get(1))?;
                out.push(Op::Cmd(cmd.with_route(Route::All)));
                Ok(None)
            }
            Keys::None => {
                self.check_db(None)?;
                out.push(Op::Cmd(cmd.with_route(Route::Any)));
                Ok(None)
            }
            Keys::At(idx) => {
                let keys: Vec<&Bytes> = idx.iter().filter_map(|&i| args.get(i)).collect();
                self.check_db(keys.first().copied())?;
                let Some(first) = keys.first() else {
                    out.push(Op::Cmd(cmd.with_route(Route::Any)));
                    return Ok(None);
                };
                let slot = key_slot(first);
                let one_slot = keys.iter().all(|k| key_slot(k) == slot);
                if one_slot && !reads_unnamed_keys(args) {
                    out.push(Op::Cmd(cmd.with_route(Route::Slot(slot))));
                    return Ok(None);
                }
                if one_slot || split_kind(&args[0]) == Split::No {
                    self.stats.cross_slot += 1;
                    return Ok(Some(CrossSlot {
                        args: args.to_vec(),
                        keys: idx,
                        read_only: found.read_only,
                        ask_keys: false,
                        offset: cmd.offset,
                    }));
                }
                self.split(cmd, args, &idx, out);
                Ok(None)
            }
        }
    }

    /// MOVE, SWAPDB and COPY … DB name other dbs, which a cluster does not have: each as its
    /// effect on the dbs the cluster takes (`Some(None)`: none; `None`: not such a command).
    fn db_effect(&mut self, args: &[Bytes]) -> Result<Option<Option<Command>>, SlotError> {
        let name = args
            .first()
            .map(|n| n.to_ascii_uppercase())
            .unwrap_or_default();
        let db = |i: usize| -> Option<u64> { std::str::from_utf8(args.get(i)?).ok()?.parse().ok() };
        let shown = || {
            args.iter()
                .map(|a| printable(a))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match name.as_slice() {
            b"MOVE" => {
                let (Some(key), Some(to)) = (args.get(1), db(2)) else {
                    return Ok(None);
                };
                if !self.dbs.maps(self.db) {
                    if self.dbs.maps(to) {
                        return Err(SlotError::OtherDbs(format!(
                            "{} moves a key from source db {} (not copied) into one the cluster takes",
                            shown(),
                            self.db
                        )));
                    }
                    return Ok(Some(None));
                }
                // Into a db the cluster merges into db 0 too: the key stays where it is.
                if self.dbs.maps(to) {
                    return Ok(Some(None));
                }
                Ok(Some(Some(Command::new(&[&b"DEL"[..], key]))))
            }
            b"SWAPDB" => {
                let (Some(a), Some(b)) = (db(1), db(2)) else {
                    return Ok(None);
                };
                if self.dbs.maps(a) == self.dbs.maps(b) {
                    // Neither is taken, or both are merged into db 0: no change there.
                    return Ok(Some(None));
                }
                Err(SlotError::OtherDbs(format!(
                    "{} exchanges a db the cluster takes with one it does not",
                    shown()
                )))
            }
            b"COPY" => {
                let Some(at) = (3..args.len()).find(|&i| args[i].eq_ignore_ascii_case(b"DB"))
                else {
                    return Ok(None);
                };
                let Some(to) = db(at + 1) else {
                    return Ok(None);
                };
                self.check_db(args.get(1))?;
                if !self.dbs.maps(to) {
                    return Ok(Some(None));
                }
                let kept: Vec<&Bytes> = args
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != at && *i != at + 1)
                    .map(|(_, a)| a)
                    .collect();
                Ok(Some(Some(Command::new(&kept))))
            }
            _ => Ok(None),
        }
    }

    fn check_db(&self, key: Option<&Bytes>) -> Result<(), SlotError> {
        if self.dbs.maps(self.db) {
            return Ok(());
        }
        Err(SlotError::UnmappedDb {
            db: self.db,
            key: key.map(|k| printable(k)).unwrap_or_default(),
        })
    }

    /// A command whose keys span slots: one command per slot where that means the same.
    fn split(&mut self, cmd: Command, args: &[Bytes], idx: &[usize], out: &mut Vec<Op>) {
        let name = &args[0];
        let per_item: usize = if split_kind(name) == Split::Pairs {
            2
        } else {
            1
        };
        self.stats.split_commands += 1;
        // Group the items by slot, keeping their order.
        let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
        for &i in idx {
            let slot = key_slot(&args[i]);
            match groups.iter_mut().find(|g| g.0 == slot) {
                Some(g) => g.1.push(i),
                None => groups.push((slot, vec![i])),
            }
        }
        // MSETNX succeeded on the source (it is propagated only then): its effect is MSET.
        let out_name: &[u8] = if per_item == 2 { b"MSET" } else { name };
        for (slot, items) in groups {
            let size: usize = items
                .iter()
                .map(|&i| args[i].len() + args.get(i + 1).map_or(0, |v| v.len()) + 32)
                .sum();
            let mut e = Encoder::new(1 + items.len() * per_item, size + 32);
            e.arg(out_name);
            for &i in &items {
                e.arg(&args[i]);
                if per_item == 2 {
                    e.arg(args.get(i + 1).map_or(&b""[..], |v| &v[..]));
                }
            }
            let mut part = e.finish().with_route(Route::Slot(slot));
            part.offset = cmd.offset;
            out.push(Op::Cmd(part));
        }
    }

    /// The end of a transaction: one slot keeps it a transaction, else command by command.
    fn exec(&mut self, offset: Option<u64>, out: &mut Vec<Op>) -> Result<(), SlotError> {
        let Some(cmds) = self.tx.take() else {
            return Ok(());
        };
        let mut slot: Option<u16> = None;
        let mut one_slot = true;
        for c in &cmds {
            let args = peek_args(c.chunks()[0], usize::MAX);
            if self.db_effect(&args)?.is_some() {
                one_slot = false;
            }
            match self.table.lookup(&args).0 {
                Lookup::Keys(Keys::Drop) => {}
                Lookup::Keys(Keys::Broadcast | Keys::None)
                | Lookup::AskServer
                | Lookup::Unknown => one_slot = false,
                Lookup::Keys(Keys::At(idx)) => {
                    if reads_unnamed_keys(&args) {
                        one_slot = false;
                    }
                    for k in idx.iter().filter_map(|&i| args.get(i)) {
                        let s = key_slot(k);
                        if *slot.get_or_insert(s) != s {
                            one_slot = false;
                        }
                    }
                }
            }
        }
        if one_slot {
            if let Some(s) = slot {
                let route = Route::Slot(s);
                // SELECTs inside are tracked in order, so each command's db is checked.
                let mut block = vec![Op::Cmd(Command::new(&["MULTI"]).with_route(route))];
                for c in cmds {
                    let args = peek_args(c.chunks()[0], usize::MAX);
                    if self.table.lookup(&args).0 == Lookup::Keys(Keys::Drop) {
                        self.single(c, &args, &mut Vec::new())?;
                        continue;
                    }
                    self.check_db(args.get(1))?;
                    block.push(Op::Cmd(c.with_route(route)));
                }
                let mut exec = Command::new(&["EXEC"]).with_route(route);
                exec.offset = offset;
                block.push(Op::Cmd(exec));
                out.extend(block);
                return Ok(());
            }
        }
        if slot.is_some() {
            self.stats.split_transactions += 1;
            tracing::info!(
                commands = cmds.len(),
                "a MULTI/EXEC spans slots of the destination cluster: applied command by command"
            );
        }
        // Planned one by one next (any of them may have to be applied from its effect), before
        // what followed the EXEC.
        if let Some(o) = offset {
            self.pending.push_front(Op::Mark(o));
        }
        for c in cmds.into_iter().rev() {
            self.pending.push_front(Op::Cmd(c));
        }
        Ok(())
    }
}

/// Whether a write reads keys its arguments do not name (a SORT whose BY/GET patterns make
/// key names from the elements): those keys may be anywhere in a cluster.
fn reads_unnamed_keys(args: &[Bytes]) -> bool {
    !crate::cluster::keys::sort_patterns(args).is_empty()
}

#[cfg(test)]
mod tests;
