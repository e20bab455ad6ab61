//! A batch: the ops a stage planned, handed to the sink together. Bounded in ops and bytes,
//! because a batch is outside the sink's bounds until it is queued.

use crate::cmd::Op;

/// Ops in one batch at most...
pub const MAX_OPS: usize = 512;
/// ...and bytes of their commands.
pub const MAX_BYTES: usize = 1 << 20;

/// See the module documentation.
#[derive(Debug)]
pub struct Batch {
    pub(crate) ops: Vec<Op>,
    /// Encoded bytes of the commands (or stream frames) in `ops`.
    pub(crate) bytes: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            ops: Vec::with_capacity(MAX_OPS),
            bytes: 0,
        }
    }
}

impl Batch {
    pub fn push(&mut self, op: Op) {
        if let Op::Cmd(c) = &op {
            self.bytes += c.len();
        }
        self.ops.push(op);
    }

    /// At a bound: hand it over before planning more.
    pub fn is_full(&self) -> bool {
        self.ops.len() >= MAX_OPS || self.bytes >= MAX_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// The ops so far; the batch starts again empty.
    pub fn take(&mut self) -> Vec<Op> {
        self.bytes = 0;
        std::mem::replace(&mut self.ops, Vec::with_capacity(MAX_OPS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::Command;

    #[test]
    fn full_at_either_bound() {
        let mut b = Batch::default();
        for _ in 0..MAX_OPS - 1 {
            b.push(Op::Mark(1));
        }
        assert!(!b.is_full());
        b.push(Op::Cmd(Command::new(&["PING"])));
        assert!(b.is_full());
        assert_eq!(b.take().len(), MAX_OPS);
        assert!(b.is_empty() && !b.is_full());
        b.push(Op::Cmd(Command::new(&[vec![b'x'; MAX_BYTES]])));
        assert!(b.is_full());
    }
}
