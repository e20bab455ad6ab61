//! The snapshot stage: the RDB parser and the snapshot planner, one after the other.

use bytes::BytesMut;

use super::{Batch, PlanError, Stage, Step};
use crate::cmd::{Command, Op};
use crate::plan::{PlanStats, RdbPlanner};
use crate::rdb::{Limits, RdbError, RdbParser};

/// See the module documentation.
pub struct SnapshotStage {
    parser: RdbParser,
    planner: RdbPlanner,
    /// The planner's output for one event, before it joins the batch (kept for its capacity).
    cmds: Vec<Command>,
}

impl std::fmt::Debug for SnapshotStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStage")
            .field("offset", &self.parser.offset())
            .field("planner", &self.planner)
            .finish_non_exhaustive()
    }
}

impl SnapshotStage {
    pub fn new(limits: Limits, planner: RdbPlanner) -> Self {
        SnapshotStage {
            parser: RdbParser::new(limits),
            planner,
            cmds: Vec::new(),
        }
    }

    /// Bytes of the RDB read so far.
    pub fn offset(&self) -> u64 {
        self.parser.offset()
    }

    pub fn stats(&self) -> &PlanStats {
        &self.planner.stats
    }

    /// At the end of the input: `Ok` if the RDB ended, else why it is incomplete.
    pub fn finish(&self, buf: &BytesMut) -> Result<(), RdbError> {
        self.parser.finish(buf)
    }
}

impl Stage for SnapshotStage {
    fn step(&mut self, buf: &mut BytesMut, out: &mut Batch) -> Result<Step, PlanError> {
        while let Some(ev) = self.parser.next(buf)? {
            self.planner.plan(ev, &mut self.cmds)?;
            for c in self.cmds.drain(..) {
                out.push(Op::Cmd(c));
            }
            if out.is_full() {
                return Ok(Step::Full);
            }
        }
        Ok(if self.parser.is_done() {
            Step::Done
        } else {
            Step::More
        })
    }
}
