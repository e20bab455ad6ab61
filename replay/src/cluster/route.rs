//! The router of a cluster destination: each planned command to the master that owns its slot
//! now ([`Route`], decided by the slot planner, `crate::plan::slots`), a broadcast to every
//! master. Source offsets ride along so that each master's applied offset only claims what it
//! applied; the destination's applied offset is the smallest of them. It holds the slot map
//! and nothing of any source stream's state (dbs, transactions): those are the planner's.
//! Pure: no I/O.

use super::topology::Topology;
use crate::cmd::{Command, Op, Route};

/// A command the router cannot place (stops the run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("slot {slot} (command {cmd}) has no master in the destination cluster")]
    Unassigned { slot: u16, cmd: String },
    #[error("{cmd} reached the cluster router without a route (not planned for a cluster)")]
    Unplanned { cmd: String },
}

/// The router. See the module documentation.
#[derive(Debug)]
pub struct Router {
    topo: Topology,
    /// The last source offset seen, handed to every master at the end of each batch.
    offset: Option<u64>,
    /// The last source offset ever routed.
    last: Option<u64>,
}

impl Router {
    pub fn new(topo: Topology) -> Self {
        Router {
            topo,
            offset: None,
            last: None,
        }
    }

    pub fn masters(&self) -> usize {
        self.topo.masters.len()
    }

    /// A new slot map (the masters' order is the writers' order).
    /// The slot map routed by.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

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
        match cmd.route {
            Route::Slot(slot) => match self.topo.owner[usize::from(slot)] {
                Some(node) => out[node].push(Op::Cmd(cmd)),
                None => {
                    return Err(RouteError::Unassigned {
                        slot,
                        cmd: cmd.describe().0,
                    })
                }
            },
            Route::Any => out[0].push(Op::Cmd(cmd)),
            Route::All => {
                for node in out.iter_mut() {
                    node.push(Op::Cmd(cmd.clone()));
                }
            }
            Route::Unplanned => {
                return Err(RouteError::Unplanned {
                    cmd: cmd.describe().0,
                })
            }
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
        owner[100] = None;
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

    fn cmd(s: &str, route: Route) -> Op {
        let args: Vec<&str> = s.split(' ').collect();
        Op::Cmd(Command::new(&args).with_route(route))
    }

    fn names(ops: &[Op]) -> Vec<String> {
        ops.iter()
            .map(|o| match o {
                Op::Cmd(c) => c.describe().0,
                Op::Mark(m) => format!("@{m}"),
            })
            .collect()
    }

    #[test]
    fn routes_by_slot_and_marks_every_master() {
        let mut r = Router::new(two_masters());
        let mut out = vec![Vec::new(), Vec::new()];
        r.route(
            vec![
                cmd("SET foo 1", Route::Slot(12182)),
                cmd("INCR bar", Route::Slot(5061)),
                cmd("FLUSHALL", Route::All),
                cmd("PUBLISH c m", Route::Any),
                Op::Mark(42),
            ],
            &mut out,
        )
        .expect("routes");
        assert_eq!(names(&out[1]), vec!["SET", "FLUSHALL", "@42"]);
        assert_eq!(names(&out[0]), vec!["INCR", "FLUSHALL", "PUBLISH", "@42"]);
        assert_eq!(r.last_offset(), Some(42));
    }

    #[test]
    fn refuses_unplanned_commands_and_unowned_slots() {
        let mut r = Router::new(two_masters());
        let mut out = vec![Vec::new(), Vec::new()];
        let err = r.route(vec![cmd("SET k v", Route::Unplanned)], &mut out);
        assert!(matches!(err, Err(RouteError::Unplanned { .. })));
        let err = r.route(vec![cmd("SET k v", Route::Slot(100))], &mut out);
        assert!(matches!(err, Err(RouteError::Unassigned { slot: 100, .. })));
    }
}
