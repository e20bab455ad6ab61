//! The stream stage: the RESP command scanner and the stream planner
//! ([`crate::plan::stream`]). What a frame asks of the reader (an ACK now, a heartbeat's
//! timestamp, a SELECT that the checkpoint must know of) goes to an observer, with the offset
//! the frame ends at.

use std::fmt;

use bytes::BytesMut;

use super::{Barrier, Batch, PlanError, Stage, Step};
use crate::plan::stream::{Seen, StreamState};
use crate::resp::scan::CommandScanner;

/// A frame of the stream that is not valid, at the offset where it starts.
#[derive(Debug, thiserror::Error)]
#[error("replication stream at offset {offset}: {what}")]
pub struct StreamError {
    pub offset: u64,
    pub what: String,
}

/// Told of each frame that asks something of the reader: the offset after it, and what.
pub type Observer = Box<dyn FnMut(u64, &Seen) + Send>;

/// See the module documentation.
pub struct StreamStage {
    scanner: CommandScanner,
    /// Where the stream stands (kept by the caller across links: a continued stream picks up
    /// its state, e.g. an open MULTI).
    pub state: StreamState,
    observer: Observer,
    /// What was planned for a frame that waits at a barrier: handed over after it.
    held: Vec<crate::cmd::Op>,
}

impl fmt::Debug for StreamStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamStage")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl StreamStage {
    pub fn new(state: StreamState, observer: Observer) -> Self {
        StreamStage {
            scanner: CommandScanner::default(),
            state,
            observer,
            held: Vec::new(),
        }
    }

    /// The stream's state, for the next link.
    pub fn into_state(self) -> StreamState {
        self.state
    }
}

impl Stage for StreamStage {
    fn step(&mut self, buf: &mut BytesMut, out: &mut Batch) -> Result<Step, PlanError> {
        // A frame held at a barrier goes first, now that the barrier is passed.
        for op in self.held.drain(..) {
            out.push(op);
        }
        let st = &mut self.state;
        loop {
            let at = st.offset;
            let frame = match self.scanner.scan(buf) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(Step::More),
                Err(e) => {
                    return Err(StreamError {
                        offset: at,
                        what: e.to_string(),
                    }
                    .into())
                }
            };
            let n = frame.len;
            let raw = buf.split_to(n).freeze();
            let planned_from = out.ops.len();
            let mut seen = st
                .on_frame(&frame, raw, &mut out.ops)
                .map_err(|what| StreamError { offset: at, what })?;
            if let Some(key) = seen.migrated_in.take() {
                self.held = out.ops.split_off(planned_from);
                (self.observer)(st.offset, &seen);
                return Ok(Step::Barrier(Barrier::AwaitMigration { key }));
            }
            if seen != Seen::default() {
                (self.observer)(st.offset, &seen);
            }
            out.bytes += n;
            if seen.clear_shard {
                return Ok(Step::Barrier(Barrier::ClearShard { offset: st.offset }));
            }

            if out.is_full() {
                return Ok(Step::Full);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::cmd::Op;

    #[test]
    fn plans_frames_split_anywhere_and_reports_what_they_ask() {
        let wire: &[u8] = b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";
        for cut in 0..wire.len() {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = seen.clone();
            let mut stage = StreamStage::new(
                StreamState::new(10),
                Box::new(move |at, s| log.lock().expect("lock").push((at, s.getack, s.selected))),
            );
            let mut batch = Batch::default();
            let mut buf = BytesMut::from(&wire[..cut]);
            assert_eq!(stage.step(&mut buf, &mut batch).expect("valid"), Step::More);
            buf.extend_from_slice(&wire[cut..]);
            assert_eq!(stage.step(&mut buf, &mut batch).expect("valid"), Step::More);
            assert!(buf.is_empty());
            let ops = batch.take();
            assert_eq!(ops.len(), 3, "SELECT, SET, and a mark for the GETACK");
            assert!(matches!(ops[2], Op::Mark(o) if o == 10 + wire.len() as u64));
            let seen = seen.lock().expect("lock");
            assert_eq!(
                *seen,
                vec![
                    (10 + 23, false, Some(3)),
                    (10 + wire.len() as u64, true, None)
                ]
            );
        }
    }

    #[test]
    fn a_bad_frame_names_its_offset() {
        let mut stage = StreamStage::new(StreamState::new(7), Box::new(|_, _| {}));
        let mut buf = BytesMut::from(&b"+OK\r\n"[..]);
        let err = stage
            .step(&mut buf, &mut Batch::default())
            .expect_err("not a command");
        assert!(err.to_string().contains("offset 7"), "{err}");
    }
}
