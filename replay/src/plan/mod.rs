//! The planner: what to send to the destination for each thing read from the source. For the
//! snapshot, each RDB event becomes commands: a value the destination understands goes as one
//! `RESTORE` of its raw bytes ([`restore`]); otherwise, or when it is too big to send whole, it
//! is decoded and rewritten as ordinary commands in bounded batches ([`rewrite`]). For the
//! replication stream, [`stream`] says what each frame is and what to forward, and
//! [`replica_forms`] rewrites what only a replica may run. Pure: no I/O.

pub mod caps;
pub mod replica_forms;
pub mod restore;
pub mod rewrite;
pub mod scripts;
pub mod slots;
pub mod stream;
pub mod stream_restore;

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

pub use caps::Caps;
pub use rewrite::BatchLimits;

use crate::cmd::Command;
use crate::rdb::{self, Entry, Event, KeyMeta, Logical, RdbError};
use rewrite::KeyState;

/// Counts of what the planner did with the snapshot.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PlanStats {
    pub keys_restored: u64,
    pub keys_rewritten: u64,
    /// Keys whose value was too big to send whole (among the rewritten).
    pub keys_big: u64,
    /// Keys already expired when read, not sent.
    pub keys_expired: u64,
    pub functions: u64,
    pub scripts: u64,
    /// Hash field TTLs the destination could not hold (fields written without them).
    pub field_ttls_dropped: u64,
    /// Module aux sections skipped (they need the module).
    pub module_aux_skipped: u64,
    /// Functions the destination cannot hold (older than 7.0).
    pub functions_dropped: u64,
    /// replicant's own keys (heartbeats) in the snapshot, not copied.
    pub keys_own: u64,
    /// The bodies of the Lua scripts of the snapshot (`lua` aux fields), for the stream's
    /// `EVALSHA`s ([`scripts`]).
    pub lua: Vec<Bytes>,
}

/// Turns RDB events into destination commands.
#[derive(Debug)]
pub struct RdbPlanner {
    caps: Caps,
    /// RDB version of the snapshot being planned.
    src_version: u32,
    /// Largest value (raw RDB bytes) sent whole by RESTORE.
    restore_max: usize,
    batch: BatchLimits,
    /// Decoded pieces of about this many bytes on the rewrite path.
    piece_bytes: usize,
    /// The db the destination connection has selected, as far as the planner knows.
    db: Option<u64>,
    big: Option<Big>,
    /// Keys starting with this are replicant's own (heartbeats): not copied.
    skip_prefix: Option<Bytes>,
    skip_state: Option<crate::dest::once::StateKeys>,
    pub stats: PlanStats,
}

#[derive(Debug)]
struct Big {
    key: Bytes,
    expire_ms: Option<i64>,
    skip: bool,
    state: KeyState,
}

impl RdbPlanner {
    pub fn new(caps: Caps, restore_max: usize, batch: BatchLimits) -> Self {
        RdbPlanner {
            caps,
            src_version: 0,
            restore_max,
            batch,
            piece_bytes: 256 << 10,
            db: None,
            big: None,
            skip_prefix: None,
            skip_state: None,
            stats: PlanStats::default(),
        }
    }

    /// Keys starting with `prefix` are not copied (counted as `keys_own`).
    pub fn skip_prefix(mut self, prefix: Option<Bytes>) -> Self {
        self.skip_prefix = prefix;
        self
    }

    /// Also skips replicant's state keys (a source that was the destination of a migration).
    pub fn skip_state(mut self, keys: Option<crate::dest::once::StateKeys>) -> Self {
        self.skip_state = keys;
        self
    }

    fn own(&mut self, key: &[u8]) -> bool {
        let own = self
            .skip_prefix
            .as_ref()
            .is_some_and(|p| key.starts_with(p))
            || self
                .skip_state
                .as_ref()
                .is_some_and(|k| k.is_state_key(key));
        if own {
            self.stats.keys_own += 1;
        }
        own
    }

    /// Forget which db is selected (another writer of the same connection changed it).
    pub fn forget_db(&mut self) {
        self.db = None;
    }

    /// The destination connection has `db` selected (the stream selected it).
    pub fn assume_db(&mut self, db: u64) {
        self.db = Some(db);
    }

    /// Appends the commands for `ev` to `out`.
    pub fn plan(&mut self, ev: Event, out: &mut Vec<Command>) -> Result<(), RdbError> {
        match ev {
            Event::Header { version } => self.src_version = version,
            Event::Aux { key, value } => {
                if &key[..] == b"lua" {
                    out.push(Command::new(&[&b"SCRIPT"[..], b"LOAD", &value]));
                    self.stats.scripts += 1;
                    self.stats.lua.push(value);
                }
            }
            Event::Select { .. } | Event::ResizeDb { .. } | Event::End { .. } => {}
            Event::Function { code } => {
                if self.caps.seven() {
                    out.push(Command::new(&[
                        &b"FUNCTION"[..],
                        b"LOAD",
                        b"REPLACE",
                        &code,
                    ]));
                    self.stats.functions += 1;
                } else {
                    self.stats.functions_dropped += 1;
                    tracing::warn!(
                        "function library not loaded: the destination is older than Redis 7.0"
                    );
                }
            }
            Event::ModuleAux { offset } => {
                self.stats.module_aux_skipped += 1;
                tracing::warn!(
                    offset,
                    "module aux data skipped: it can only be loaded by the module itself"
                );
            }
            Event::Entry(entry) => self.entry(entry, out)?,
            Event::BigStart(meta) => {
                let skip = expired(&meta) || self.own(&meta.key);
                if skip {
                    if expired(&meta) {
                        self.stats.keys_expired += 1;
                    }
                } else {
                    self.select(meta.db, out);
                    out.push(Command::new(&[&b"DEL"[..], &meta.key]));
                    self.stats.keys_rewritten += 1;
                    self.stats.keys_big += 1;
                }
                self.big = Some(Big {
                    key: meta.key,
                    expire_ms: meta.expire_ms,
                    skip,
                    state: KeyState::default(),
                });
            }
            Event::BigPieces(pieces) => {
                if let Some(big) = self.big.as_mut() {
                    if !big.skip {
                        for p in pieces {
                            rewrite::piece(
                                &big.key,
                                p,
                                &self.caps,
                                self.batch,
                                &mut big.state,
                                &mut self.stats,
                                out,
                            );
                        }
                    }
                }
            }
            Event::BigEnd => {
                if let Some(big) = self.big.take() {
                    if !big.skip {
                        expire(&big.key, big.expire_ms, out);
                        rewrite::finish_key(&big.key, &big.state);
                    }
                }
            }
        }
        Ok(())
    }

    fn entry(&mut self, e: Entry, out: &mut Vec<Command>) -> Result<(), RdbError> {
        if expired(&e.meta) {
            self.stats.keys_expired += 1;
            return Ok(());
        }
        if self.own(&e.meta.key) {
            return Ok(());
        }
        self.select(e.meta.db, out);
        let understood = rdb::types::min_rdb_version(e.meta.ty) <= self.caps.rdb_version;
        let restorable = understood && e.raw.len() <= self.restore_max;
        if restorable || e.meta.logical == Logical::Module {
            let version = self.src_version.min(self.caps.rdb_version).max(1);
            out.push(restore::restore(&e.meta, &e.raw, version as u16));
            self.stats.keys_restored += 1;
            return Ok(());
        }
        self.stats.keys_rewritten += 1;
        out.push(Command::new(&[&b"DEL"[..], &e.meta.key]));
        let mut st = KeyState::default();
        let (caps, batch) = (self.caps, self.batch);
        let stats = &mut self.stats;
        rdb::decode_value(&e.meta, &e.raw, self.piece_bytes, |pieces| {
            for p in pieces {
                rewrite::piece(&e.meta.key, p, &caps, batch, &mut st, stats, out);
            }
        })?;
        expire(&e.meta.key, e.meta.expire_ms, out);
        rewrite::finish_key(&e.meta.key, &st);
        Ok(())
    }

    fn select(&mut self, db: u64, out: &mut Vec<Command>) {
        if self.db != Some(db) {
            out.push(Command::new(&[
                &b"SELECT"[..],
                itoa::Buffer::new().format(db).as_bytes(),
            ]));
            self.db = Some(db);
        }
    }
}

fn expire(key: &Bytes, at: Option<i64>, out: &mut Vec<Command>) {
    if let Some(ms) = at {
        out.push(Command::new(&[
            &b"PEXPIREAT"[..],
            key,
            itoa::Buffer::new().format(ms).as_bytes(),
        ]));
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn expired(meta: &KeyMeta) -> bool {
    meta.expire_ms.is_some_and(|t| t <= now_ms())
}
