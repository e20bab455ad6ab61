//! The replication stream, frame by frame: what to forward (as the original bytes), what to
//! consume (`ping`, `REPLCONF`), where transactions start and end, which db is selected, and
//! the source offset each forwarded command completes. Pure: no I/O.

use bytes::Bytes;
use replay::cmd::Command;
use replay::dest::Op;
use replay::resp::Frame;

/// What a frame of the stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A write to replay on the destination.
    Forward,
    /// The master's keepalive `ping`: consumed.
    Ping,
    /// `REPLCONF GETACK *`: answer at once, consume.
    GetAck,
    /// Any other `REPLCONF`: consumed.
    Replconf,
    Multi,
    Exec,
    Select(u64),
}

/// Classifies a frame by its command name.
pub fn classify(frame: &Frame) -> Result<Kind, String> {
    let Frame::Array(args) = frame else {
        return Err(format!("expected a command array, got {frame:?}"));
    };
    let arg = |i: usize| match args.get(i) {
        Some(Frame::BulkString(b)) | Some(Frame::SimpleString(b)) => Some(b.clone()),
        _ => None,
    };
    let Some(name) = arg(0) else {
        return Err("command array without a name".into());
    };
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    Ok(if is("ping") {
        Kind::Ping
    } else if is("replconf") {
        if arg(1).is_some_and(|a| a.eq_ignore_ascii_case(b"getack")) {
            Kind::GetAck
        } else {
            Kind::Replconf
        }
    } else if is("multi") {
        Kind::Multi
    } else if is("exec") {
        Kind::Exec
    } else if is("select") {
        let db = arg(1)
            .and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok())
            .ok_or("SELECT without a db number")?;
        Kind::Select(db)
    } else {
        Kind::Forward
    })
}

/// Where the stream stands.
#[derive(Debug)]
pub struct StreamState {
    /// Source replication offset after the last frame read.
    pub offset: u64,
    /// Inside MULTI ... EXEC: offsets are only applied at EXEC.
    pub in_tx: bool,
    pub db: u64,
    /// Frames read (for status).
    pub frames: u64,
}

impl StreamState {
    pub fn new(offset: u64) -> Self {
        StreamState {
            offset,
            in_tx: false,
            db: 0,
            frames: 0,
        }
    }

    /// Handles one frame of `len` bytes whose original encoding is `raw`; appends what the
    /// destination must do to `out`. Returns whether the source asked for an ACK now.
    pub fn on_frame(
        &mut self,
        frame: &Frame,
        len: usize,
        raw: Bytes,
        out: &mut Vec<Op>,
    ) -> Result<bool, String> {
        self.offset += len as u64;
        self.frames += 1;
        let kind = classify(frame)?;
        let mut getack = false;
        match kind {
            Kind::Ping | Kind::Replconf | Kind::GetAck => {
                getack = kind == Kind::GetAck;
                if !self.in_tx {
                    out.push(Op::Mark(self.offset));
                }
            }
            Kind::Multi => {
                self.in_tx = true;
                out.push(Op::Cmd(Command::raw(raw)));
            }
            Kind::Exec => {
                self.in_tx = false;
                out.push(Op::Cmd(Command::raw(raw).with_offset(self.offset)));
            }
            Kind::Select(_) | Kind::Forward if self.in_tx => {
                if let Kind::Select(db) = kind {
                    self.db = db;
                }
                out.push(Op::Cmd(Command::raw(raw)));
            }
            Kind::Select(db) => {
                self.db = db;
                out.push(Op::Cmd(Command::raw(raw).with_offset(self.offset)));
            }
            Kind::Forward => out.push(Op::Cmd(Command::raw(raw).with_offset(self.offset))),
        }
        Ok(getack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use redis_protocol::resp2::decode::decode_bytes_mut;

    fn feed(st: &mut StreamState, wire: &[u8]) -> (Vec<Op>, bool) {
        let mut buf = BytesMut::from(wire);
        let mut out = Vec::new();
        let mut ack = false;
        while let Some((f, n, raw)) = decode_bytes_mut(&mut buf).expect("valid") {
            ack |= st.on_frame(&f, n, raw, &mut out).expect("frame");
        }
        (out, ack)
    }

    fn offsets(ops: &[Op]) -> Vec<Option<u64>> {
        ops.iter()
            .map(|o| match o {
                Op::Cmd(c) => c.offset,
                Op::Mark(m) => Some(*m),
            })
            .collect()
    }

    #[test]
    fn forwards_original_bytes_and_consumes_pings() {
        let mut st = StreamState::new(100);
        let set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
        let ping = b"*1\r\n$4\r\nping\r\n";
        let mut wire = set.to_vec();
        wire.extend_from_slice(ping);
        let (ops, ack) = feed(&mut st, &wire);
        assert!(!ack);
        assert_eq!(ops.len(), 2);
        match &ops[0] {
            Op::Cmd(c) => assert_eq!(&c.chunks()[0][..], &set[..]),
            Op::Mark(_) => panic!("expected a command"),
        }
        assert!(matches!(ops[1], Op::Mark(_)));
        assert_eq!(st.offset, 100 + wire.len() as u64);
        assert_eq!(
            offsets(&ops),
            vec![Some(100 + set.len() as u64), Some(st.offset)]
        );
    }

    #[test]
    fn transactions_apply_their_offset_at_exec() {
        let mut st = StreamState::new(0);
        let wire = b"*1\r\n$5\r\nMULTI\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n5\r\n*2\r\n$4\r\nINCR\r\n$1\r\nx\r\n*1\r\n$4\r\nEXEC\r\n";
        let (ops, _) = feed(&mut st, wire);
        assert_eq!(
            offsets(&ops),
            vec![None, None, None, Some(wire.len() as u64)]
        );
        assert_eq!(st.db, 5);
        assert!(!st.in_tx);
    }

    #[test]
    fn getack_asks_for_an_ack() {
        let mut st = StreamState::new(0);
        let (ops, ack) = feed(
            &mut st,
            b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n",
        );
        assert!(ack);
        assert!(matches!(ops[0], Op::Mark(_)));
    }

    #[test]
    fn rejects_non_commands() {
        let mut st = StreamState::new(0);
        let mut out = Vec::new();
        assert!(st
            .on_frame(&Frame::Integer(3), 4, Bytes::new(), &mut out)
            .is_err());
    }
}
#[cfg(test)]
mod hostile {
    use bytes::BytesMut;
    use redis_protocol::resp2::decode::decode_bytes_mut;

    #[test]
    fn huge_counts_do_not_allocate() {
        for wire in [
            &b"*2147483647\r\n"[..],
            b"*9223372036854775807\r\n$3\r\nSET\r\n",
            b"$2147483647\r\nabc",
        ] {
            let mut buf = BytesMut::from(wire);
            let r = decode_bytes_mut(&mut buf);
            assert!(matches!(r, Ok(None) | Err(_)), "{r:?}");
        }
    }
}
