//! The wrapping, worked out without I/O: a batch for one writer becomes blocks of
//! `MULTI … SET <state key> <replid>:<offset> EXEC` — one block per slot on a cluster
//! destination (the only transactions it takes), the batch's order kept within each slot and
//! around every keyless command (FLUSHALL, PUBLISH, FUNCTION …, which goes in a block of its
//! own, in the master's lowest slot); one block for a standalone destination. The source's own
//! MULTI/EXEC are dropped (their commands are inside a block anyway: blocks do not nest).
//! What the destination holds already is left out, command by command; and the commands
//! [`Ledger::keep`] is given back after a lost connection are sent again only where the
//! destination did not apply their block.

use std::collections::HashMap;

use bytes::Bytes;

use super::{decode, encode, Ledger};
use crate::cmd::{Command, Op, Route};

/// Takes the part of `carry ++ ops` that a source offset completes and leaves the rest (a
/// source transaction whose EXEC has not arrived yet) in `carry`, for the next batch.
pub fn complete(carry: &mut Vec<Op>, ops: Vec<Op>) -> Vec<Op> {
    let mut all = std::mem::take(carry);
    all.extend(ops);
    let end = all
        .iter()
        .rposition(|op| match op {
            Op::Mark(_) => true,
            Op::Cmd(c) => c.offset.is_some(),
        })
        .map_or(0, |i| i + 1);
    *carry = all.split_off(end);
    all
}

/// Gives every command of a batch (after [`complete`]) the source offset it completes: its
/// own, or the next one after it. A cluster sink does this before routing, because the part
/// of a split command or of a source transaction that goes to one master does not see the
/// offset that goes on with another master's part.
pub fn stamp(ops: &mut [Op]) {
    let mut next = None;
    for op in ops.iter_mut().rev() {
        match op {
            Op::Mark(o) => next = Some(*o),
            Op::Cmd(c) => match c.offset {
                Some(o) => next = Some(o),
                None => c.offset = next,
            },
        }
    }
}

/// A block given back, being read: its commands' indexes, and the record it writes.
type GivenBack = (Vec<usize>, Option<(u16, u64)>);

/// One block being built.
struct Block {
    slot: u16,
    cmds: Vec<Command>,
    /// Commands other than SELECT (a block of SELECTs alone needs no record).
    writes: usize,
    /// A FLUSHALL/FLUSHDB is in it: the master's floor moves too.
    flush: bool,
}

impl Ledger {
    /// Wraps one writer's batch (see the module documentation). `home` is the slot keyless
    /// commands are recorded in (the master's lowest; any value for a standalone destination).
    /// A batch without a source offset (nothing of the stream) goes out as it is.
    pub fn wrap(&mut self, ops: Vec<Op>, home: u16) -> Vec<Op> {
        let Some(end) = ops.iter().rev().find_map(|op| match op {
            Op::Mark(o) => Some(*o),
            Op::Cmd(c) => c.offset,
        }) else {
            return ops;
        };
        // The offset each command completes: its own, or the next one after it.
        let mut done = vec![end; ops.len()];
        let mut next = end;
        for (i, op) in ops.iter().enumerate().rev() {
            match op {
                Op::Mark(o) => next = *o,
                Op::Cmd(c) => next = c.offset.unwrap_or(next),
            }
            done[i] = next;
        }
        let mut out = Vec::with_capacity(ops.len() + 8);
        let mut open: Vec<Block> = Vec::new();
        // Where each slot's block is in `open`.
        let mut at: HashMap<u16, usize> = HashMap::new();
        for (op, done) in ops.into_iter().zip(done) {
            let Op::Cmd(mut c) = op else { continue };
            if c.is_named(b"MULTI") || c.is_named(b"EXEC") {
                continue;
            }
            let keyless = self.cluster && matches!(c.route, Route::Any | Route::All);
            let slot = match c.route {
                Route::Slot(s) if self.cluster => s,
                _ => home,
            };
            let select = c.selected_db().is_some();
            if !select && done <= self.applied_at(slot) {
                self.skipped += 1;
                continue;
            }
            c.offset = None;
            if keyless {
                // Nothing moves across it: what came before is recorded first.
                for b in open.drain(..) {
                    self.close(b, end, &mut out);
                }
                at.clear();
                let name = c.describe().0;
                let flush = name == "FLUSHALL" || name == "FLUSHDB";
                self.close(
                    Block {
                        slot,
                        cmds: vec![c],
                        writes: 1,
                        flush,
                    },
                    end,
                    &mut out,
                );
                continue;
            }
            let i = *at.entry(slot).or_insert_with(|| {
                open.push(Block {
                    slot,
                    cmds: Vec::new(),
                    writes: 0,
                    flush: false,
                });
                open.len() - 1
            });
            let b = &mut open[i];
            b.writes += usize::from(!select);
            b.cmds.push(c);
        }
        for b in open {
            self.close(b, end, &mut out);
        }
        out.push(Op::Mark(end));
        out
    }

    fn close(&self, b: Block, end: u64, out: &mut Vec<Op>) {
        let route = if self.cluster {
            Route::Slot(b.slot)
        } else {
            Route::Unplanned
        };
        let routed = |c: Command| Op::Cmd(c.with_route(route));
        if b.writes == 0 {
            out.extend(b.cmds.into_iter().map(routed));
            return;
        }
        let value = encode(&self.replid, end);
        out.push(routed(Command::new(&["MULTI"])));
        out.extend(b.cmds.into_iter().map(routed));
        if b.flush {
            let floor = self.keys.floor(b.slot);
            out.push(routed(Command::new(&[&b"SET"[..], &floor, &value])));
        }
        let key = self.keys.applied(self.cluster.then_some(b.slot));
        out.push(routed(Command::new(&[&b"SET"[..], &key, &value])));
        out.push(routed(Command::new(&["EXEC"])));
    }

    /// The slot and offset a wrapped block records, from its `SET <state key> <value>`.
    pub fn recorded(&self, cmd: &Command) -> Option<(u16, u64)> {
        let args = crate::resp::peek_args(cmd.chunks()[0], 3);
        let [name, key, value] = args.as_slice() else {
            return None;
        };
        if !name.eq_ignore_ascii_case(b"SET") || !key.starts_with(&self.keys.applied_family()) {
            return None;
        }
        let slot = match cmd.route {
            Route::Slot(s) => s,
            _ => 0,
        };
        Some((slot, decode(value, &self.replid)?))
    }

    /// For commands given back in the order each connection sent them: which to send again.
    /// A block whose record the destination holds (it was applied, the reply was lost) is
    /// left out whole; anything else is kept. Several connections' blocks may be interleaved
    /// (each hands back as its replies fail): a block is followed by its slot (the route every
    /// command of a block has).
    pub fn keep(&mut self, cmds: &[&Command]) -> Vec<bool> {
        let mut keep = vec![true; cmds.len()];
        // Per slot: the block being read (its commands' indexes, the record it writes).
        let mut open: HashMap<u16, GivenBack> = HashMap::new();
        for (i, c) in cmds.iter().enumerate() {
            let slot = match c.route {
                Route::Slot(s) if self.cluster => s,
                _ => 0,
            };
            if c.is_named(b"MULTI") {
                open.insert(slot, (vec![i], None));
                continue;
            }
            let Some((members, rec)) = open.get_mut(&slot) else {
                continue;
            };
            members.push(i);
            if c.is_named(b"EXEC") {
                if let Some((members, Some((at_slot, at)))) = open.remove(&slot) {
                    if at <= self.applied_at(at_slot) {
                        // MULTI, EXEC and the record are not the source's.
                        self.skipped += members.len().saturating_sub(3) as u64;
                        for m in members {
                            keep[m] = false;
                        }
                    }
                }
            } else if let Some(r) = self.recorded(c) {
                *rec = Some(r);
            }
        }
        keep
    }

    /// The slots whose blocks are among `cmds` (to read their records back).
    pub fn slots_of(&self, cmds: &[&Command]) -> Vec<u16> {
        let mut slots: Vec<u16> = cmds
            .iter()
            .filter_map(|c| self.recorded(c))
            .map(|r| r.0)
            .collect();
        slots.sort_unstable();
        slots.dedup();
        slots
    }
}

/// A `SET <key> <value>` (for tests and the read-back).
pub fn set(key: &Bytes, value: &Bytes) -> Command {
    Command::new(&[&b"SET"[..], key, value])
}

#[cfg(test)]
mod tests {
    use super::super::StateKeys;
    use super::*;

    fn cmd(s: &str, route: Route, offset: Option<u64>) -> Op {
        let args: Vec<&str> = s.split(' ').collect();
        let c = Command::new(&args).with_route(route);
        Op::Cmd(match offset {
            Some(o) => c.with_offset(o),
            None => c,
        })
    }

    fn words(ops: &[Op]) -> Vec<String> {
        ops.iter()
            .map(|o| match o {
                Op::Cmd(c) => {
                    let a = crate::resp::peek_args(c.chunks()[0], 3);
                    a.iter()
                        .map(|x| String::from_utf8_lossy(x).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                }
                Op::Mark(m) => format!("@{m}"),
            })
            .collect()
    }

    fn cmds(ops: &[Op]) -> Vec<&Command> {
        ops.iter()
            .filter_map(|o| match o {
                Op::Cmd(c) => Some(c),
                Op::Mark(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_standalone_batch_is_one_block_without_the_source_transaction() {
        let mut l = Ledger::new(StateKeys::new("r:"), "id", 10, false);
        let ops = vec![
            cmd("INCRBY a 1", Route::Unplanned, Some(20)),
            cmd("MULTI", Route::Unplanned, None),
            cmd("RPUSH l x", Route::Unplanned, None),
            cmd("EXEC", Route::Unplanned, Some(40)),
            cmd("SELECT 3", Route::Unplanned, Some(50)),
            cmd("APPEND s y", Route::Unplanned, Some(60)),
            Op::Mark(70),
        ];
        let out = l.wrap(ops, 0);
        assert_eq!(
            words(&out),
            vec![
                "MULTI",
                "INCRBY a 1",
                "RPUSH l x",
                "SELECT 3",
                "APPEND s y",
                "SET r:applied id:70",
                "EXEC",
                "@70"
            ]
        );
        assert!(cmds(&out).iter().all(|c| c.offset.is_none()));
    }

    #[test]
    fn what_the_destination_holds_is_left_out_command_by_command() {
        let mut l = Ledger::new(StateKeys::new("r:"), "id", 10, false);
        l.set_held(0, 40);
        let ops = vec![
            cmd("INCRBY a 1", Route::Unplanned, Some(20)),
            cmd("MULTI", Route::Unplanned, None),
            cmd("RPUSH l x", Route::Unplanned, None),
            cmd("EXEC", Route::Unplanned, Some(40)),
            cmd("SELECT 3", Route::Unplanned, Some(45)),
            cmd("APPEND s y", Route::Unplanned, Some(60)),
        ];
        let out = l.wrap(ops, 0);
        assert_eq!(
            words(&out),
            vec![
                "MULTI",
                "SELECT 3",
                "APPEND s y",
                "SET r:applied id:60",
                "EXEC",
                "@60"
            ]
        );
        assert_eq!(l.skipped, 2);
        // Everything held: only the SELECT goes, outside any block, and no record is written.
        let out = l.wrap(vec![cmd("SELECT 1", Route::Unplanned, Some(30))], 0);
        assert_eq!(words(&out), vec!["SELECT 1", "@30"]);
    }

    #[test]
    fn a_cluster_batch_is_one_block_per_slot_and_keyless_commands_are_boundaries() {
        let mut l = Ledger::new(StateKeys::new("r:"), "id", 0, true);
        let ops = vec![
            cmd("SET a 1", Route::Slot(7), Some(10)),
            cmd("SET b 1", Route::Slot(9), Some(20)),
            cmd("SET a 2", Route::Slot(7), Some(30)),
            cmd("FLUSHALL", Route::All, Some(40)),
            cmd("SET a 3", Route::Slot(7), Some(50)),
            Op::Mark(60),
        ];
        let out = l.wrap(ops, 2);
        let k = |s| String::from_utf8_lossy(&l.keys.applied(Some(s))).into_owned();
        let f = String::from_utf8_lossy(&l.keys.floor(2)).into_owned();
        assert_eq!(
            words(&out),
            vec![
                "MULTI".to_string(),
                "SET a 1".into(),
                "SET a 2".into(),
                format!("SET {} id:60", k(7)),
                "EXEC".into(),
                "MULTI".into(),
                "SET b 1".into(),
                format!("SET {} id:60", k(9)),
                "EXEC".into(),
                "MULTI".into(),
                "FLUSHALL".into(),
                format!("SET {f} id:60"),
                format!("SET {} id:60", k(2)),
                "EXEC".into(),
                "MULTI".into(),
                "SET a 3".into(),
                format!("SET {} id:60", k(7)),
                "EXEC".into(),
                "@60".into(),
            ]
        );
        let c = cmds(&out);
        assert!(c[..5].iter().all(|c| c.route == Route::Slot(7)));
        assert!(c[9..14].iter().all(|c| c.route == Route::Slot(2)));
        // Per slot: slot 9 holds it, slot 7 does not.
        let mut l2 = Ledger::new(StateKeys::new("r:"), "id", 0, true);
        l2.set_held(9, 25);
        let out = l2.wrap(
            vec![
                cmd("SET a 1", Route::Slot(7), Some(10)),
                cmd("SET b 1", Route::Slot(9), Some(20)),
            ],
            2,
        );
        assert_eq!(
            words(&out)[..3],
            ["MULTI", "SET a 1", &format!("SET {} id:20", k(7))]
        );
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn a_part_routed_apart_keeps_the_offset_of_its_frame() {
        // A source transaction across two slots of two masters: the EXEC (and its offset)
        // goes with one part only.
        let mut ops = vec![
            cmd("INCR a", Route::Slot(7), None),
            cmd("INCR b", Route::Slot(9000), None),
            cmd("EXEC", Route::Slot(9000), Some(40)),
            cmd("SET c 1", Route::Slot(7), Some(50)),
        ];
        stamp(&mut ops);
        let mut l = Ledger::new(StateKeys::new("r:"), "id", 0, true);
        l.set_held(7, 45);
        // Master of slot 7's share: INCR a completes 40, which slot 7 holds.
        let out = l.wrap(vec![ops.remove(0), ops.remove(2), Op::Mark(50)], 0);
        assert_eq!(words(&out)[..2], ["MULTI", "SET c 1"]);
        assert_eq!(l.skipped, 1);
    }

    #[test]
    fn the_tail_of_an_open_transaction_waits_for_its_exec() {
        let mut carry = Vec::new();
        let got = complete(
            &mut carry,
            vec![
                cmd("SET a 1", Route::Unplanned, Some(10)),
                cmd("MULTI", Route::Unplanned, None),
                cmd("INCR c", Route::Unplanned, None),
            ],
        );
        assert_eq!(words(&got), vec!["SET a 1"]);
        assert_eq!(words(&carry), vec!["MULTI", "INCR c"]);
        let got = complete(&mut carry, vec![cmd("EXEC", Route::Unplanned, Some(30))]);
        assert_eq!(words(&got), vec!["MULTI", "INCR c", "EXEC"]);
        assert!(carry.is_empty());
    }

    #[test]
    fn blocks_given_back_go_again_only_where_not_applied() {
        let mut l = Ledger::new(StateKeys::new("r:"), "id", 0, true);
        let mut out = l.wrap(vec![cmd("INCR a", Route::Slot(7), Some(10))], 2);
        out.extend(l.wrap(vec![cmd("INCR b", Route::Slot(9), Some(20))], 2));
        let back = cmds(&out);
        assert_eq!(l.slots_of(&back), vec![7, 9]);
        // The first block was applied (its reply lost), the second was not.
        l.set_held(7, 10);
        l.set_held(9, 10);
        let keep = l.keep(&back);
        assert_eq!(
            keep,
            vec![false, false, false, false, true, true, true, true]
        );
        assert_eq!(l.skipped, 1);
    }
}
