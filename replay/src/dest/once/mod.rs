//! Exactly-once delivery of the replication stream (`--delivery exactly-once`). The
//! destination records, atomically with the writes, the source offset they complete: the sink
//! wraps what it hands each writer as `MULTI … SET <state key> <replid>:<offset> EXEC`
//! ([`wrap`]), and reads those keys back ([`read`]) when a stream starts, and after a lost
//! connection before it sends anything again. A command whose offset the destination already
//! holds for its slot is not sent again; a block the destination did not apply is sent whole.
//!
//! The state keys (all under `--state-key-prefix`, see [`StateKeys`]):
//! - a standalone destination: `<prefix>applied`, in the db the stream had selected at the
//!   end of the block (read back from every db that has keys; the highest offset wins);
//! - a cluster destination: `<prefix>applied:{tag}` per slot written (a transaction cannot
//!   span slots there), so the record moves with its slot through resharding and failover;
//!   and `<prefix>floor:{tag}` in a master's lowest slot, written with a FLUSHALL/FLUSHDB
//!   (which removes the master's other state keys): every slot of the master holds it.
//!
//! Between the checkpoint's offset (applied everywhere) and a slot's recorded offset, that
//! slot's commands are skipped. This module owns the records and the wrapping; it never sends
//! anything itself except the reads and removals of [`read`].

pub mod read;
pub mod wrap;

use bytes::Bytes;

use crate::cluster::slot::SLOTS;
use crate::dest::effect::plan::tag_for_slot;

/// The names of replicant's state keys on the destination: `<prefix><stream>applied…` and
/// `<prefix><stream>floor:…`, where `<stream>` is empty for a standalone source and
/// `shard-<slot>:` for each shard of a cluster source (each shard is a stream of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateKeys {
    prefix: Bytes,
    stream: Bytes,
}

impl StateKeys {
    pub fn new(prefix: &str) -> Self {
        Self::for_stream(prefix, "")
    }

    /// The keys of one stream of several (`shard-<slot>:`).
    pub fn for_stream(prefix: &str, stream: &str) -> Self {
        StateKeys {
            prefix: Bytes::from(prefix.to_string()),
            stream: Bytes::from(stream.to_string()),
        }
    }

    fn name(&self, rest: &[u8]) -> Bytes {
        Bytes::from([&self.prefix[..], &self.stream[..], rest].concat())
    }

    /// `<prefix><stream>applied` (standalone) or `…applied:{tag of slot}` (cluster).
    pub fn applied(&self, slot: Option<u16>) -> Bytes {
        match slot {
            None => self.name(b"applied"),
            Some(s) => self.name(format!("applied:{{{}}}", tag_for_slot(s)).as_bytes()),
        }
    }

    /// `<prefix><stream>floor:{tag of slot}` (cluster only).
    pub fn floor(&self, slot: u16) -> Bytes {
        self.name(format!("floor:{{{}}}", tag_for_slot(slot)).as_bytes())
    }

    /// Whether `key` is a state key of any stream under this prefix (never copied, compared
    /// or forwarded).
    pub fn is_state_key(&self, key: &[u8]) -> bool {
        let Some(mut rest) = key.strip_prefix(&self.prefix[..]) else {
            return false;
        };
        if let Some(shard) = rest.strip_prefix(b"shard-") {
            match shard.iter().position(|b| *b == b':') {
                Some(i) if shard[..i].iter().all(u8::is_ascii_digit) => rest = &shard[i + 1..],
                _ => return false,
            }
        }
        rest.starts_with(b"applied") || rest.starts_with(b"floor:")
    }

    /// Whether `key` is a state key of this stream.
    pub fn is_stream_key(&self, key: &[u8]) -> bool {
        key.starts_with(&self.name(b"applied")) || key.starts_with(&self.name(b"floor:"))
    }

    /// What this stream's record keys start with.
    pub fn applied_family(&self) -> Bytes {
        self.name(b"applied")
    }

    /// `SCAN … MATCH` patterns that cover every state key under this prefix (the keys found
    /// are then checked with [`StateKeys::is_state_key`]).
    pub fn patterns(&self) -> Vec<Bytes> {
        let mut p = Vec::new();
        for b in &self.prefix[..] {
            if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                p.push(b'\\');
            }
            p.push(*b);
        }
        ["applied*", "floor:*", "shard-*"]
            .iter()
            .map(|t| Bytes::from([&p[..], t.as_bytes()].concat()))
            .collect()
    }
}

/// `<replid>:<offset>`, the value of a state key.
pub fn encode(replid: &[u8], offset: u64) -> Bytes {
    Bytes::from([replid, b":", itoa::Buffer::new().format(offset).as_bytes()].concat())
}

/// The offset in a state key's value, if it was written for `replid`.
pub fn decode(value: &[u8], replid: &[u8]) -> Option<u64> {
    let at = value.iter().rposition(|b| *b == b':')?;
    if &value[..at] != replid {
        return None;
    }
    std::str::from_utf8(&value[at + 1..]).ok()?.parse().ok()
}

/// What the destination holds of one source stream (see the module documentation).
#[derive(Debug, Clone)]
pub struct Ledger {
    pub keys: StateKeys,
    pub replid: Bytes,
    /// Cluster destinations keep one record per slot; standalone ones a single record.
    pub cluster: bool,
    /// Applied everywhere: the offset the stream starts from (checkpoint or snapshot).
    pub base: u64,
    /// Per slot (one entry for a standalone destination): the offset its record holds.
    held: Vec<u64>,
    /// Commands not sent because the destination held them already.
    pub skipped: u64,
}

impl Ledger {
    /// A stream that starts at `base` with nothing read back yet.
    pub fn new(keys: StateKeys, replid: &str, base: u64, cluster: bool) -> Self {
        Ledger {
            keys,
            replid: Bytes::from(replid.to_string()),
            cluster,
            base,
            held: vec![0; if cluster { SLOTS } else { 1 }],
            skipped: 0,
        }
    }

    /// The source offset up to which `slot`'s commands are on the destination.
    pub fn applied_at(&self, slot: u16) -> u64 {
        let i = if self.cluster { usize::from(slot) } else { 0 };
        self.held.get(i).copied().unwrap_or(0).max(self.base)
    }

    /// What was read back for `slot` (the highest of its record and its master's floor).
    pub fn set_held(&mut self, slot: u16, offset: u64) {
        let i = if self.cluster { usize::from(slot) } else { 0 };
        if let Some(h) = self.held.get_mut(i) {
            *h = offset;
        }
    }

    /// When a stream of `replid` starts at `offset`: the record to start from, `None` when
    /// the one a sink has (`current`) goes on (the same stream continued in this process).
    pub fn begin(
        keys: &StateKeys,
        current: Option<&Ledger>,
        replid: &str,
        offset: u64,
        read_back: bool,
        cluster: bool,
    ) -> Option<Ledger> {
        if current.is_some_and(|l| l.replid == replid.as_bytes() && read_back) {
            return None;
        }
        Some(Ledger::new(keys.clone(), replid, offset, cluster))
    }

    /// Says so when what was read back goes beyond the checkpoint's offset.
    pub fn say_ahead(&self) {
        let (ahead, slots) = self.ahead();
        if ahead > self.base {
            tracing::info!(checkpoint = self.base, destination = ahead, slots, "the destination holds more of the stream than the checkpoint says: the destination wins, what it holds is not sent again");
        }
    }

    /// Leaves out of `items` (given back in the order sent) the blocks the destination
    /// applied, as [`Ledger::keep`] tells.
    pub fn drop_applied<T>(
        &mut self,
        items: &mut Vec<T>,
        cmd: impl Fn(&T) -> &crate::cmd::Command,
    ) {
        let keep = self.keep(&items.iter().map(&cmd).collect::<Vec<_>>());
        let before = items.len();
        let mut k = keep.into_iter();
        items.retain(|_| k.next().unwrap_or(true));
        if items.len() < before {
            tracing::info!(
                commands = before - items.len(),
                "the destination applied these before the connection was lost: not sent again"
            );
        }
    }

    /// The highest offset held beyond the base (for the log), and how many slots hold one.
    pub fn ahead(&self) -> (u64, usize) {
        let ahead: Vec<u64> = self
            .held
            .iter()
            .copied()
            .filter(|h| *h > self.base)
            .collect();
        (
            ahead.iter().copied().max().unwrap_or(self.base),
            ahead.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::slot::key_slot;

    #[test]
    fn keys_values_and_families() {
        let k = StateKeys::new("replicant:");
        assert_eq!(&k.applied(None)[..], b"replicant:applied");
        let a = k.applied(Some(1234));
        assert_eq!(key_slot(&a), 1234);
        assert_eq!(key_slot(&k.floor(77)), 77);
        assert!(k.is_state_key(&a));
        assert!(k.is_state_key(&k.floor(77)));
        assert!(k.is_state_key(b"replicant:applied"));
        assert!(!k.is_state_key(b"replicant:heartbeat:x"));
        assert!(!k.is_state_key(b"user:applied"));
        let sh = StateKeys::for_stream("replicant:", "shard-5461:");
        assert!(sh
            .applied(Some(3))
            .starts_with(b"replicant:shard-5461:applied:{"));
        assert!(k.is_state_key(&sh.applied(Some(3))));
        assert!(k.is_state_key(&sh.floor(3)));
        assert!(!k.is_state_key(b"replicant:shard-x:applied"));
        assert!(sh.is_stream_key(&sh.floor(3)));
        assert!(!k.is_stream_key(&sh.floor(3)));
        assert!(!sh.is_stream_key(&k.floor(3)));
        assert_eq!(
            StateKeys::new("a*b:").patterns()[0],
            Bytes::from_static(b"a\\*b:applied*")
        );
        let v = encode(b"abc", 42);
        assert_eq!(decode(&v, b"abc"), Some(42));
        assert_eq!(decode(&v, b"abd"), None);
        assert_eq!(decode(b"abc:x", b"abc"), None);
        assert_eq!(decode(b"nocolon", b"abc"), None);
    }

    #[test]
    fn applied_is_never_below_the_base() {
        let mut l = Ledger::new(StateKeys::new("p:"), "r", 100, true);
        l.set_held(5, 50);
        l.set_held(6, 150);
        assert_eq!(l.applied_at(5), 100);
        assert_eq!(l.applied_at(6), 150);
        assert_eq!(l.ahead(), (150, 1));
        let mut s = Ledger::new(StateKeys::new("p:"), "r", 10, false);
        s.set_held(9999, 20);
        assert_eq!(s.applied_at(0), 20);
        assert_eq!(s.applied_at(3), 20);
    }
}
