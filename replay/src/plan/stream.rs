//! The stream planner: the replication stream, frame by frame — what to forward (as the
//! original bytes), what to consume (`ping`, `REPLCONF`, replicant's own heartbeats), where
//! transactions start and end, which db is selected, and the source offset each forwarded
//! command completes. Pure: no I/O; it knows nothing of the link the frames came on, nor of
//! the destination they go to.

use bytes::Bytes;

use super::replica_forms;
use crate::cmd::{Command, Op};
use crate::resp::scan::CommandFrame;

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
    /// `SET` of a heartbeat key (replicant's own): consumed.
    Heartbeat,
}

/// Classifies a command by its name and first argument.
pub fn classify(name: &[u8], arg1: Option<&[u8]>) -> Result<Kind, String> {
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    Ok(if is("ping") {
        Kind::Ping
    } else if is("replconf") {
        if arg1.is_some_and(|a| a.eq_ignore_ascii_case(b"getack")) {
            Kind::GetAck
        } else {
            Kind::Replconf
        }
    } else if is("multi") {
        Kind::Multi
    } else if is("exec") {
        Kind::Exec
    } else if is("select") {
        let db = arg1
            .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
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
    /// Keys with this prefix are replicant's heartbeats: consumed, never forwarded.
    pub own_prefix: Option<Bytes>,
    /// This run's heartbeat key: its timestamps are reported.
    pub own_key: Option<Bytes>,
    /// replicant's state keys (a source that was the destination of a migration): their
    /// writes are not forwarded.
    pub own_state: Option<crate::dest::once::StateKeys>,
    /// The stream is one shard's of a cluster source, and the destination holds the other
    /// shards' keys too: a FLUSHALL/FLUSHDB (which emptied only that shard) cannot be replayed.
    pub scoped: bool,
    /// Plans again the RESTOREs whose payload the destination cannot load (set by the reader
    /// once it knows the destination).
    pub restore: Option<super::stream_restore::StreamRestore>,
    /// Every shard of a cluster source is followed by this run: report the keys that MIGRATE
    /// moves between shards ([`Seen::migrated_in`], [`Seen::deleted`]).
    pub migrations: bool,
    /// The Lua scripts seen, for `EVALSHA`.
    pub scripts: super::scripts::Scripts,
}

/// What a frame asked of the link besides its ops.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The source asked for an ACK now.
    pub getack: bool,
    /// This run's heartbeat, with its timestamp (ms).
    pub heartbeat: Option<u64>,
    /// A SELECT of this db (it takes effect at the frame's offset).
    pub selected: Option<u64>,
    /// A FLUSHALL/FLUSHDB of a shard's stream (`scoped`): nothing was planned for it; the
    /// shard's keys must be removed from the destination once everything before it is applied.
    pub clear_shard: bool,
    /// (`migrations`) A `RESTORE-ASKING` of this key: what was planned for the frame must wait
    /// until the shard the key came from has applied its deletion.
    pub migrated_in: Option<Bytes>,
    /// (`migrations`) The keys of a `DEL`/`UNLINK`: a MIGRATE out of this shard deletes its
    /// copies so; another shard's `RESTORE-ASKING` of one of them waits for it.
    pub deleted: Vec<Bytes>,
}

impl StreamState {
    pub fn new(offset: u64) -> Self {
        StreamState {
            offset,
            in_tx: false,
            db: 0,
            frames: 0,
            own_prefix: None,
            own_key: None,
            own_state: None,
            scoped: false,
            restore: None,
            migrations: false,
            scripts: super::scripts::Scripts::default(),
        }
    }

    /// Handles one command frame whose original encoding is `raw`; appends what the
    /// destination must do to `out`.
    pub fn on_frame(
        &mut self,
        frame: &CommandFrame,
        raw: Bytes,
        out: &mut Vec<Op>,
    ) -> Result<Seen, String> {
        self.offset += frame.len as u64;
        self.frames += 1;
        let name = &raw[frame.name.clone()];
        let arg1 = frame.arg1.clone().map(|r| &raw[r]);
        let mut kind = classify(name, arg1)?;
        let mut seen = Seen::default();
        if self.scoped
            && kind == Kind::Forward
            && (name.eq_ignore_ascii_case(b"FLUSHALL") || name.eq_ignore_ascii_case(b"FLUSHDB"))
        {
            // It emptied only the slots this shard serves: replayed, it would empty the other
            // shards' keys on the destination too. Outside a transaction the reader removes
            // the shard's keys instead; inside one that cannot be done in order.
            if self.in_tx {
                return Err(format!(
                    "{} inside a MULTI on this shard of the source cluster: it emptied only the shard's slots, which cannot be done inside the transaction on the destination; stopping",
                    String::from_utf8_lossy(name).to_uppercase()
                ));
            }
            seen.clear_shard = true;
            return Ok(seen);
        }
        if kind == Kind::Forward && self.is_own(name, arg1) {
            kind = Kind::Heartbeat;
            if arg1 == self.own_key.as_deref() {
                seen.heartbeat = crate::resp::peek_args(&raw, 3)
                    .get(2)
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
            }
        }
        // A form only a replica may run goes out rewritten (same effect on the data).
        if self.scoped
            && !self.migrations
            && kind == Kind::Forward
            && name.eq_ignore_ascii_case(b"RESTORE-ASKING")
        {
            // One shard followed alone: the other shard's DEL of this key is in another
            // process's stream, and the two cannot be ordered.
            return Err(format!(
                "RESTORE-ASKING of key {}: a MIGRATE into this shard, so the source cluster is being resharded; with one replicant per shard the shards' streams cannot be ordered (the key could be deleted on the destination, or an old value come back), so the run stops — to migrate through a reshard, follow the whole cluster with one replicant (no --source-shard)",
                arg1.map(crate::display::printable).unwrap_or_default()
            ));
        }
        if self.migrations && kind == Kind::Forward {
            if name.eq_ignore_ascii_case(b"RESTORE-ASKING") {
                seen.migrated_in = arg1.map(Bytes::copy_from_slice);
            } else if name.eq_ignore_ascii_case(b"DEL") || name.eq_ignore_ascii_case(b"UNLINK") {
                seen.deleted = crate::resp::peek_args(&raw, usize::MAX).split_off(1);
            }
        }
        // A payload the destination cannot load goes planned again, as the snapshot's do.
        let mut planned: Option<Vec<Command>> = None;
        if kind == Kind::Forward {
            planned = replica_forms::rewrite(name, &raw).map(|c| vec![c]);
            // An EVALSHA goes as EVAL of the body seen, for a destination that lost it.
            if planned.is_none() {
                planned = self.scripts.on_frame(name, &raw).map(|c| vec![c]);
            }
            let restore = name.eq_ignore_ascii_case(b"RESTORE")
                || name.eq_ignore_ascii_case(b"RESTORE-ASKING");
            if let (None, true, Some(r)) = (&planned, restore, self.restore.as_mut()) {
                planned = r.plan(&raw, self.db)?;
            }
            if let (None, true, Some(r)) = (
                &planned,
                name.eq_ignore_ascii_case(b"FUNCTION"),
                self.restore.as_mut(),
            ) {
                planned = r.function_restore(&raw).map(|c| vec![c]);
            }
        }
        // What to send for a forwarded frame; `offset` rides on the last command.
        let forward = |raw: Bytes, offset: Option<u64>, out: &mut Vec<Op>| match planned {
            None => {
                let c = Command::raw(raw);
                out.push(Op::Cmd(match offset {
                    Some(o) => c.with_offset(o),
                    None => c,
                }));
            }
            Some(cmds) => {
                let n = cmds.len();
                for (i, c) in cmds.into_iter().enumerate() {
                    out.push(Op::Cmd(match offset {
                        Some(o) if i + 1 == n => c.with_offset(o),
                        _ => c,
                    }));
                }
                if let (0, Some(o)) = (n, offset) {
                    out.push(Op::Mark(o));
                }
            }
        };
        match kind {
            Kind::Ping | Kind::Replconf | Kind::GetAck | Kind::Heartbeat => {
                seen.getack = kind == Kind::GetAck;
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
                    seen.selected = Some(db);
                }
                forward(raw, None, out);
            }
            Kind::Select(db) => {
                self.db = db;
                seen.selected = Some(db);
                out.push(Op::Cmd(Command::raw(raw).with_offset(self.offset)));
            }
            Kind::Forward => forward(raw, Some(self.offset), out),
        }
        Ok(seen)
    }

    /// A SET of a heartbeat key.
    fn is_own(&self, name: &[u8], arg1: Option<&[u8]>) -> bool {
        match (&self.own_prefix, arg1) {
            (Some(p), Some(k)) => {
                name.eq_ignore_ascii_case(b"set")
                    && (k.starts_with(p)
                        || self.own_state.as_ref().is_some_and(|s| s.is_state_key(k)))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::scan::CommandScanner;
    use bytes::BytesMut;

    fn feed(st: &mut StreamState, wire: &[u8]) -> (Vec<Op>, bool) {
        let mut buf = BytesMut::from(wire);
        let mut out = Vec::new();
        let mut ack = false;
        let mut scanner = CommandScanner::default();
        while let Some(f) = scanner.scan(&buf).expect("valid") {
            let raw = buf.split_to(f.len).freeze();
            ack |= st.on_frame(&f, raw, &mut out).expect("frame").getack;
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
    fn heartbeats_are_consumed_and_reported() {
        let mut st = StreamState::new(0);
        st.own_prefix = Some(Bytes::from_static(b"replicant:heartbeat:"));
        st.own_key = Some(Bytes::from_static(b"replicant:heartbeat:me"));
        let mine = b"*5\r\n$3\r\nSET\r\n$22\r\nreplicant:heartbeat:me\r\n$4\r\n1234\r\n$4\r\nPXAT\r\n$2\r\n99\r\n";
        let other = b"*3\r\n$3\r\nset\r\n$23\r\nreplicant:heartbeat:you\r\n$1\r\n1\r\n";
        let mut buf = BytesMut::from(&mine[..]);
        buf.extend_from_slice(other);
        let mut scanner = CommandScanner::default();
        let mut out = Vec::new();
        let mut seen = Vec::new();
        while let Some(f) = scanner.scan(&buf).expect("valid") {
            let raw = buf.split_to(f.len).freeze();
            seen.push(st.on_frame(&f, raw, &mut out).expect("frame"));
        }
        assert_eq!(seen[0].heartbeat, Some(1234));
        assert_eq!(seen[1].heartbeat, None);
        assert!(
            out.iter().all(|o| matches!(o, Op::Mark(_))),
            "nothing forwarded"
        );
    }

    #[test]
    fn a_shard_stream_does_not_replay_a_flush() {
        let mut st = StreamState::new(0);
        st.scoped = true;
        let mut buf = BytesMut::from(&b"*1\r\n$8\r\nFLUSHALL\r\n"[..]);
        let f = CommandScanner::default()
            .scan(&buf)
            .expect("valid")
            .expect("whole");
        let raw = buf.split_to(f.len).freeze();
        let mut out = Vec::new();
        let seen = st.on_frame(&f, raw, &mut out).expect("planned");
        assert!(seen.clear_shard && out.is_empty(), "{out:?}");
        st.in_tx = true;
        let mut buf = BytesMut::from(&b"*1\r\n$7\r\nFLUSHDB\r\n"[..]);
        let f = CommandScanner::default()
            .scan(&buf)
            .expect("valid")
            .expect("whole");
        let raw = buf.split_to(f.len).freeze();
        let err = st
            .on_frame(&f, raw, &mut out)
            .expect_err("refused in a MULTI");
        assert!(err.contains("inside a MULTI"), "{err}");
    }

    #[test]
    fn a_lone_shard_stops_at_a_migration_and_a_whole_cluster_waits() {
        let wire: &[u8] = b"*4\r\n$14\r\nRESTORE-ASKING\r\n$1\r\nk\r\n$1\r\n0\r\n$1\r\nx\r\n";
        let frame = |st: &mut StreamState| {
            let mut buf = BytesMut::from(wire);
            let f = CommandScanner::default()
                .scan(&buf)
                .expect("valid")
                .expect("whole");
            let raw = buf.split_to(f.len).freeze();
            st.on_frame(&f, raw, &mut Vec::new())
        };
        let mut alone = StreamState::new(0);
        alone.scoped = true;
        let err = frame(&mut alone).expect_err("stops");
        assert!(err.contains("resharded"), "{err}");
        let mut whole = StreamState::new(0);
        whole.scoped = true;
        whole.migrations = true;
        let seen = frame(&mut whole).expect("planned");
        assert_eq!(seen.migrated_in.as_deref(), Some(&b"k"[..]));
    }

    #[test]
    fn select_needs_a_number() {
        assert!(classify(b"SELECT", Some(b"x")).is_err());
        assert_eq!(classify(b"select", Some(b"3")), Ok(Kind::Select(3)));
    }
}
