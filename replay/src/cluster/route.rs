//! The router of a cluster destination: each command to the master that owns its keys' slot.
//! SELECT is tracked and mapped (a cluster has only db 0), FLUSHALL/FLUSHDB/FUNCTION/SCRIPT go
//! to every master, multi-key commands whose keys span slots are split per slot where that
//! keeps their meaning, and a MULTI/EXEC stays a transaction when its keys share a slot (else
//! it is applied command by command, and counted). Source offsets ride along so that each
//! master's applied offset only claims what it applied; the destination's applied offset is
//! the smallest of them. Pure: no I/O.

use bytes::Bytes;

use super::keys::{keys, split_kind, Keys, Split};
use super::slot::key_slot;
use super::topology::Topology;
use crate::cmd::{Command, Encoder, Op};
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

/// What the router did that an operator should know.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RouteStats {
    /// Commands whose keys spanned slots, sent as one command per slot.
    pub split_commands: u64,
    /// MULTI/EXEC blocks whose keys spanned slots, applied command by command.
    pub split_transactions: u64,
    /// Commands that could not be applied faithfully (logged with their keys).
    pub unsplittable: u64,
}

/// A command the router refuses to pass (stops the run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("slot {slot} (key {key}) has no master in the destination cluster")]
    Unassigned { slot: u16, key: String },
    #[error(
        "a write to source db {db} (key {key}): a Redis Cluster has only db 0; map it with --db-map {db}:0 or --all-dbs-to 0"
    )]
    UnmappedDb { db: u64, key: String },
}

/// The router. See the module documentation.
#[derive(Debug)]
pub struct Router {
    topo: Topology,
    dbs: DbMap,
    /// The source's selected db.
    db: u64,
    /// A transaction being collected (after MULTI, until EXEC).
    tx: Option<Vec<Command>>,
    /// The last source offset seen, handed to every master at the end of each batch.
    offset: Option<u64>,
    /// The last source offset ever routed.
    last: Option<u64>,
    pub stats: RouteStats,
}

impl Router {
    pub fn new(topo: Topology, dbs: DbMap) -> Self {
        Router {
            topo,
            dbs,
            db: 0,
            tx: None,
            offset: None,
            last: None,
            stats: RouteStats::default(),
        }
    }

    pub fn masters(&self) -> usize {
        self.topo.masters.len()
    }

    /// A new slot map (the masters' order is the writers' order).
    pub fn set_topology(&mut self, topo: Topology) {
        self.topo = topo;
    }

    /// The last source offset routed.
    pub fn last_offset(&self) -> Option<u64> {
        self.last
    }

    /// Forgets the offsets routed so far (a new stream starts).
    pub fn forget_offsets(&mut self) {
        self.offset = None;
        self.last = None;
    }

    /// Routes a batch: `out[i]` receives what master `i` must do.
    pub fn route(&mut self, ops: Vec<Op>, out: &mut [Vec<Op>]) -> Result<(), RouteError> {
        for op in ops {
            match op {
                Op::Mark(o) => self.offset = Some(o),
                Op::Cmd(c) => self.command(c, out)?,
            }
        }
        // Every master learns how far the source got, so idle ones do not hold the offset back.
        if let Some(o) = self.offset.take() {
            self.last = Some(o);
            for node in out.iter_mut() {
                node.push(Op::Mark(o));
            }
        }
        Ok(())
    }

    fn command(&mut self, cmd: Command, out: &mut [Vec<Op>]) -> Result<(), RouteError> {
        if let Some(o) = cmd.offset {
            self.offset = Some(o);
        }
        let args = peek_args(cmd.chunks()[0], usize::MAX);
        let name = args
            .first()
            .map(|n| n.to_ascii_uppercase())
            .unwrap_or_default();
        match name.as_slice() {
            b"MULTI" => {
                self.tx = Some(Vec::new());
                return Ok(());
            }
            b"EXEC" => return self.exec(cmd.offset, out),
            _ => {}
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.push(cmd);
            return Ok(());
        }
        self.single(cmd, &args, out)
    }

    /// Routes one command outside a transaction.
    fn single(
        &mut self,
        cmd: Command,
        args: &[Bytes],
        out: &mut [Vec<Op>],
    ) -> Result<(), RouteError> {
        match keys(args) {
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
                Ok(())
            }
            Keys::Broadcast => {
                self.check_db(args.get(1))?;
                for node in out.iter_mut() {
                    node.push(Op::Cmd(cmd.clone()));
                }
                Ok(())
            }
            Keys::None => {
                self.check_db(None)?;
                out[0].push(Op::Cmd(cmd));
                Ok(())
            }
            Keys::At(idx) => {
                let keys: Vec<&Bytes> = idx.iter().filter_map(|&i| args.get(i)).collect();
                self.check_db(keys.first().copied())?;
                let Some(first) = keys.first() else {
                    out[0].push(Op::Cmd(cmd));
                    return Ok(());
                };
                let slot = key_slot(first);
                if keys.iter().all(|k| key_slot(k) == slot) {
                    let node = self.owner(slot, first)?;
                    out[node].push(Op::Cmd(cmd));
                    return Ok(());
                }
                self.split(cmd, args, &idx, out)
            }
        }
    }

    fn check_db(&self, key: Option<&Bytes>) -> Result<(), RouteError> {
        if self.dbs.maps(self.db) {
            return Ok(());
        }
        Err(RouteError::UnmappedDb {
            db: self.db,
            key: key.map(|k| printable(k)).unwrap_or_default(),
        })
    }

    fn owner(&self, slot: u16, key: &[u8]) -> Result<usize, RouteError> {
        self.topo.owner[usize::from(slot)].ok_or_else(|| RouteError::Unassigned {
            slot,
            key: printable(key),
        })
    }

    /// A command whose keys span slots: one command per slot where that means the same.
    fn split(
        &mut self,
        cmd: Command,
        args: &[Bytes],
        idx: &[usize],
        out: &mut [Vec<Op>],
    ) -> Result<(), RouteError> {
        let name = &args[0];
        let per_item: usize = match split_kind(name) {
            Split::PerKey => 1,
            Split::Pairs => 2,
            Split::No => {
                self.stats.unsplittable += 1;
                let shown: Vec<String> = idx
                    .iter()
                    .filter_map(|&i| args.get(i))
                    .map(|k| printable(k))
                    .collect();
                tracing::warn!(
                    command = %String::from_utf8_lossy(name).to_uppercase(),
                    keys = %shown.join(" "),
                    "command not applied: its keys span slots of the destination cluster and it cannot be split without changing its meaning"
                );
                return Ok(());
            }
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
            let node = self.owner(slot, &args[items[0]])?;
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
            let mut part = e.finish();
            part.offset = cmd.offset;
            out[node].push(Op::Cmd(part));
        }
        Ok(())
    }

    /// The end of a transaction: one node if its keys share a slot, else command by command.
    fn exec(&mut self, offset: Option<u64>, out: &mut [Vec<Op>]) -> Result<(), RouteError> {
        let Some(cmds) = self.tx.take() else {
            return Ok(());
        };
        let mut slot: Option<u16> = None;
        let mut one_slot = true;
        for c in &cmds {
            let args = peek_args(c.chunks()[0], usize::MAX);
            match keys(&args) {
                Keys::Drop => {}
                Keys::Broadcast | Keys::None => one_slot = false,
                Keys::At(idx) => {
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
                // SELECTs inside are tracked in order, so each command's db is checked.
                let mut node_ops = vec![Op::Cmd(Command::new(&["MULTI"]))];
                for c in cmds {
                    let args = peek_args(c.chunks()[0], usize::MAX);
                    if keys(&args) == Keys::Drop {
                        self.single(c, &args, out)?;
                        continue;
                    }
                    self.check_db(args.get(1))?;
                    node_ops.push(Op::Cmd(c));
                }
                let mut exec = Command::new(&["EXEC"]);
                exec.offset = offset;
                node_ops.push(Op::Cmd(exec));
                let key = Bytes::new();
                let node = self.owner(s, &key)?;
                out[node].extend(node_ops);
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
        for c in cmds {
            let args = peek_args(c.chunks()[0], usize::MAX);
            self.single(c, &args, out)?;
        }
        if let Some(o) = offset {
            self.offset = Some(o);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::topology::NodeAddr;

    fn two_masters() -> Topology {
        let mut owner = vec![Some(0); 16384];
        for o in owner.iter_mut().skip(8192) {
            *o = Some(1);
        }
        Topology {
            masters: vec![
                NodeAddr {
                    host: "a".into(),
                    port: 1,
                },
                NodeAddr {
                    host: "b".into(),
                    port: 2,
                },
            ],
            owner,
        }
    }

    fn cmd(s: &str) -> Op {
        let args: Vec<&str> = s.split(' ').collect();
        Op::Cmd(Command::new(&args))
    }

    fn names(ops: &[Op]) -> Vec<String> {
        ops.iter()
            .filter_map(|o| match o {
                Op::Cmd(c) => Some(
                    peek_args(c.chunks()[0], usize::MAX)
                        .iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                Op::Mark(_) => None,
            })
            .collect()
    }

    #[test]
    fn routes_by_slot_and_splits() {
        let mut r = Router::new(two_masters(), DbMap::only_zero());
        let mut out = vec![Vec::new(), Vec::new()];
        // foo: 12182 (node 1); bar: 5061 (node 0).
        r.route(
            vec![
                cmd("SET foo 1"),
                cmd("MSET foo 1 bar 2"),
                cmd("DEL foo bar"),
                Op::Mark(42),
            ],
            &mut out,
        )
        .expect("routes");
        assert_eq!(names(&out[1]), vec!["SET foo 1", "MSET foo 1", "DEL foo"]);
        assert_eq!(names(&out[0]), vec!["MSET bar 2", "DEL bar"]);
        assert_eq!(r.stats.split_commands, 2);
        assert!(matches!(out[0].last(), Some(Op::Mark(42))));
        assert!(matches!(out[1].last(), Some(Op::Mark(42))));
    }

    #[test]
    fn transactions() {
        let mut r = Router::new(two_masters(), DbMap::only_zero());
        let mut out = vec![Vec::new(), Vec::new()];
        r.route(
            vec![
                cmd("MULTI"),
                cmd("INCR {foo}a"),
                cmd("INCR {foo}b"),
                cmd("EXEC"),
            ],
            &mut out,
        )
        .expect("routes");
        assert_eq!(
            names(&out[1]),
            vec!["MULTI", "INCR {foo}a", "INCR {foo}b", "EXEC"]
        );
        let mut out = vec![Vec::new(), Vec::new()];
        r.route(
            vec![cmd("MULTI"), cmd("INCR foo"), cmd("INCR bar"), cmd("EXEC")],
            &mut out,
        )
        .expect("routes");
        assert_eq!(names(&out[1]), vec!["INCR foo"]);
        assert_eq!(names(&out[0]), vec!["INCR bar"]);
        assert_eq!(r.stats.split_transactions, 1);
    }

    #[test]
    fn broadcasts_selects_and_refusals() {
        let mut r = Router::new(two_masters(), DbMap::only_zero());
        let mut out = vec![Vec::new(), Vec::new()];
        r.route(
            vec![cmd("FLUSHALL"), cmd("SELECT 0"), cmd("RENAME foo bar")],
            &mut out,
        )
        .expect("routes");
        assert_eq!(names(&out[0]), vec!["FLUSHALL"]);
        assert_eq!(names(&out[1]), vec!["FLUSHALL"]);
        assert_eq!(r.stats.unsplittable, 1);
        let err = r.route(vec![cmd("SELECT 5"), cmd("SET x 1")], &mut out);
        assert!(matches!(err, Err(RouteError::UnmappedDb { db: 5, .. })));
        let mut r = Router::new(
            two_masters(),
            DbMap {
                mapped: Some(vec![0, 5]),
            },
        );
        r.route(vec![cmd("SELECT 5"), cmd("SET x 1")], &mut out)
            .expect("mapped");
    }
}
