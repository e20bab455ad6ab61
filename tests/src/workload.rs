//! A mixed write workload on its own thread, until told to stop.
//!
//! Deterministic choices (seeded [`Rng`]), a bounded rate, a bounded key space (`wl:*` keys,
//! [`WorkloadConfig::keys_per_type`] of each type), and every kind of write the replication
//! stream carries: strings (SET, APPEND, INCR, INCRBYFLOAT), lists (RPUSH, LPUSH, LMOVE, LPOP),
//! sets (SADD, SREM, SPOP with and without a count), sorted sets (ZADD, ZINCRBY, ZREM), hashes
//! (HSET, HDEL, HINCRBY), streams (XADD with exact trimming, XGROUP CREATE, XREADGROUP, XACK),
//! MULTI/EXEC blocks (sometimes with a SELECT inside), long TTLs (EXPIRE, PEXPIREAT), keys with
//! TTLs of a second or two that expire during the run, DEL, SELECT of db 0 and 5, and every
//! 2,500 operations a FLUSHDB of db 5.
//!
//! For a destination with db 0 only (a cluster), [`WorkloadConfig::db0_only`] keeps every
//! write there: no SELECT (alone or inside MULTI/EXEC), no FLUSHDB of db 5, and LMOVE moves
//! within one list (two lists would be two slots, which no cluster command can join).
//! [`WorkloadConfig::cross_slot`] adds, in about one operation in eight, multi-key writes
//! across slots and hash-tagged multi-key writes within one slot (`workload/cross_slot.rs`).
//!
//! Each prefix holds one type only, so no command fails with WRONGTYPE. The only errors
//! expected are NOGROUP (reading a stream whose group was deleted with the stream) and
//! BUSYGROUP (creating a group that exists); any other error stops the workload and fails
//! [`Workload::stop`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::{Connection, Value};

use crate::rng::Rng;
use crate::wait::{self, Check};

mod cross_slot;
pub mod every_command;
pub mod sharded;

pub use cross_slot::hash_tags;

/// How the workload runs.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub seed: u64,
    /// Operations (a MULTI/EXEC block counts as one) per second, at most.
    pub max_ops_per_sec: u32,
    /// Keys of each type, per db: the dataset stays small whatever the run time.
    pub keys_per_type: u64,
    /// Stay in db 0, with only commands a cluster can take (see the module doc).
    pub db0_only: bool,
    /// Add multi-key writes across slots and hash-tagged ones (see the module doc).
    pub cross_slot: bool,
    /// Keys with TTLs of a second or two (off: none, e.g. for a comparison made while the
    /// source is paused, when the source stops expiring keys and the destination does not).
    pub short_ttls: bool,
    /// Only writes that leave the same data when applied twice: SET, HSET, ZADD, DEL,
    /// PEXPIREAT (and SELECT between db 0 and db 5 unless `db0_only`).
    pub idempotent: bool,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            seed: 42,
            max_ops_per_sec: 1_500,
            keys_per_type: 50,
            db0_only: false,
            cross_slot: false,
            short_ttls: true,
            idempotent: false,
        }
    }
}

impl WorkloadConfig {
    /// For a cluster destination: db 0 only, with the cross-slot writes.
    pub fn for_cluster() -> WorkloadConfig {
        WorkloadConfig {
            db0_only: true,
            cross_slot: true,
            ..WorkloadConfig::default()
        }
    }
}

/// What a finished workload did.
#[derive(Debug, Clone)]
pub struct WorkloadReport {
    pub ops: u64,
    /// NOGROUP / BUSYGROUP replies (see the module doc).
    pub expected_errors: u64,
    /// When the last key given a short TTL expires, in ms since the epoch (0: none).
    pub last_short_expiry_ms: u64,
    /// FLUSHDBs of db 5.
    pub flushdbs: u64,
    /// Cross-slot and hash-tagged operations (only with [`WorkloadConfig::cross_slot`]).
    pub cross_slot_ops: u64,
}

impl WorkloadReport {
    /// Waits until every short-TTL key the workload wrote has expired (a wait on the clock
    /// with a deadline, not a fixed sleep), so that no key expires during a comparison.
    pub fn wait_for_short_ttls(&self) {
        // A little margin over the expiry instant, for the servers' millisecond rounding.
        let until = self.last_short_expiry_ms + 20;
        wait::wait_for(Duration::from_secs(30), "short TTLs to pass", || {
            if now_ms() > until {
                Check::Ready(())
            } else {
                Check::Pending
            }
        })
        .unwrap_or_else(|err| panic!("{err}"));
    }
}

/// A running workload. Dropping it stops it too, without checking its result.
pub struct Workload {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    handle: Option<JoinHandle<Result<WorkloadReport, String>>>,
}

impl Workload {
    /// Starts writing to the server at `url` (db 0 first).
    pub fn start(url: &str, config: WorkloadConfig) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let url = url.to_string();
        let handle = {
            let stop = Arc::clone(&stop);
            let ops = Arc::clone(&ops);
            thread::Builder::new()
                .name("workload".into())
                .spawn(move || run(&url, &config, &stop, &ops))
                .expect("cannot spawn the workload thread")
        };
        Workload {
            stop,
            ops,
            handle: Some(handle),
        }
    }

    /// Operations done so far.
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    /// Waits until at least `ops` operations are done; fails early if the workload stopped.
    pub fn wait_for_ops(&self, ops: u64, timeout: Duration) -> Result<(), String> {
        let what = format!("the workload to reach {ops} operations");
        wait::wait_for(timeout, &what, || {
            if self.ops() >= ops {
                Check::Ready(())
            } else if self.handle.as_ref().map_or(true, JoinHandle::is_finished) {
                Check::Failed("the workload thread stopped (see Workload::stop)".into())
            } else {
                Check::Pending
            }
        })
    }

    /// Stops the workload and returns its report; panics if it failed.
    pub fn stop(mut self) -> WorkloadReport {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self
            .handle
            .take()
            .expect("the workload is stopped only once");
        match handle.join() {
            Ok(Ok(report)) => report,
            Ok(Err(err)) => panic!("the workload failed: {err}"),
            Err(_) => panic!("the workload thread panicked"),
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn run(
    url: &str,
    config: &WorkloadConfig,
    stop: &AtomicBool,
    ops: &AtomicU64,
) -> Result<WorkloadReport, String> {
    let mut con =
        crate::server::connect(url).map_err(|err| format!("cannot connect to {url}: {err}"))?;
    let mut state = State {
        rng: Rng::new(config.seed),
        keys: config.keys_per_type,
        db: 0,
        to_ack: VecDeque::new(),
        expected_errors: 0,
        last_short_expiry_ms: 0,
        steps: 0,
        flushdbs: 0,
        db0_only: config.db0_only,
        cross_slot: config.cross_slot,
        cross_slot_ops: 0,
        idempotent: config.idempotent,
        short_ttls: config.short_ttls,
    };
    let rate = f64::from(config.max_ops_per_sec.max(1));
    let started = Instant::now();
    let mut done = 0u64;
    while !stop.load(Ordering::Relaxed) {
        state.step(&mut con)?;
        done += 1;
        ops.store(done, Ordering::Relaxed);
        // Pacing: never ahead of `rate` operations per second since the start.
        let due = started + Duration::from_secs_f64(done as f64 / rate);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
    }
    Ok(WorkloadReport {
        ops: done,
        expected_errors: state.expected_errors,
        last_short_expiry_ms: state.last_short_expiry_ms,
        flushdbs: state.flushdbs,
        cross_slot_ops: state.cross_slot_ops,
    })
}

/// Keys of each type are `wl:<prefix>:<n>`.
const PREFIXES: [&str; 8] = ["s", "i", "f", "l", "set", "z", "h", "x"];
/// Keys with short TTLs.
const SHORT_TTL_KEYS: u64 = 20;
/// Stream entries acknowledged later, at most.
const MAX_TO_ACK: usize = 1_000;
/// Every this many operations (half-way through each period), a FLUSHDB of db 5: on a
/// schedule rather than by chance, so that every run of more than half a period has one.
const FLUSHDB_EVERY: u64 = 2_500;

struct State {
    rng: Rng,
    keys: u64,
    /// The db the connection has selected.
    db: u8,
    /// Entries read by XREADGROUP, to XACK later: (db, key, id).
    to_ack: VecDeque<(u8, String, String)>,
    expected_errors: u64,
    last_short_expiry_ms: u64,
    /// Operations started so far.
    steps: u64,
    flushdbs: u64,
    db0_only: bool,
    cross_slot: bool,
    cross_slot_ops: u64,
    idempotent: bool,
    short_ttls: bool,
}

impl State {
    fn step(&mut self, con: &mut Connection) -> Result<(), String> {
        self.steps += 1;
        if self.idempotent {
            return self.idempotent_op(con);
        }
        if !self.db0_only && self.steps % FLUSHDB_EVERY == FLUSHDB_EVERY / 2 {
            self.exec(con, &mut cmd("SELECT", &["5"]))?;
            self.db = 5;
            self.flushdbs += 1;
            return self.exec(con, &mut cmd("FLUSHDB", &[]));
        }
        if self.cross_slot && self.rng.chance(1, 8) {
            self.cross_slot_ops += 1;
            return self.cross_slot_op(con);
        }
        match self.rng.below(100) {
            0..=2 if self.db0_only => {
                let mut set = self.simple_write();
                self.exec(con, &mut set)
            }
            0..=2 => {
                let db = if self.db == 0 { 5 } else { 0 };
                self.exec(con, &mut cmd("SELECT", &[&db.to_string()]))?;
                self.db = db;
                Ok(())
            }
            3..=12 => self.string_op(con),
            13..=24 => self.list_op(con),
            25..=34 => self.set_op(con),
            35..=44 => self.zset_op(con),
            45..=54 => self.hash_op(con),
            55..=66 => self.stream_op(con),
            67..=73 => self.multi_exec(con),
            74..=79 => {
                let mut expire = self.long_expire();
                self.exec(con, &mut expire)
            }
            80..=84 if self.short_ttls => self.short_ttl(con),
            85..=88 => {
                let key = self.any_key();
                self.exec(con, &mut cmd("DEL", &[&key]))
            }
            _ => {
                let mut set = self.simple_write();
                self.exec(con, &mut set)
            }
        }
    }

    /// See [`WorkloadConfig::idempotent`].
    fn idempotent_op(&mut self, con: &mut Connection) -> Result<(), String> {
        let mut command = match self.rng.below(100) {
            0..=3 if !self.db0_only => {
                let db = if self.db == 0 { 5 } else { 0 };
                self.exec(con, &mut cmd("SELECT", &[&db.to_string()]))?;
                self.db = db;
                return Ok(());
            }
            0..=34 => cmd("SET", &[&self.key("s"), &self.value()]),
            35..=54 => {
                let field = format!("f{}", self.rng.below(20));
                cmd("HSET", &[&self.key("h"), &field, &self.value()])
            }
            55..=74 => {
                let score = self.rng.below(1000).to_string();
                let member = format!("m{}", self.rng.below(40));
                cmd("ZADD", &[&self.key("z"), &score, &member])
            }
            75..=84 => {
                let prefix = ["s", "h", "z"][self.rng.below(3) as usize];
                cmd("DEL", &[&self.key(prefix)])
            }
            _ => {
                let prefix = ["s", "h", "z"][self.rng.below(3) as usize];
                let at = (now_ms() + 3_600_000 + self.rng.below(60_000)).to_string();
                cmd("PEXPIREAT", &[&self.key(prefix), &at])
            }
        };
        self.exec(con, &mut command)
    }

    fn string_op(&mut self, con: &mut Connection) -> Result<(), String> {
        let mut command = match self.rng.below(4) {
            0 => {
                let (key, value) = (self.key("s"), self.value());
                cmd("SET", &[&key, &value])
            }
            1 => {
                let (key, value) = (self.key("s"), self.rng.letters(5));
                cmd("APPEND", &[&key, &value])
            }
            2 => cmd("INCR", &[&self.key("i")]),
            _ => {
                let by = format!("{}.25", self.rng.below(10));
                cmd("INCRBYFLOAT", &[&self.key("f"), &by])
            }
        };
        self.exec(con, &mut command)
    }

    fn list_op(&mut self, con: &mut Connection) -> Result<(), String> {
        let key = self.key("l");
        let mut command = match self.rng.below(4) {
            0 => cmd("RPUSH", &[&key, &self.value(), &self.value()]),
            1 => cmd("LPUSH", &[&key, &self.value()]),
            // Within one list in db 0 only: two lists are two slots of a cluster.
            2 if self.db0_only => cmd("LMOVE", &[&key, &key, "LEFT", "RIGHT"]),
            2 => cmd("LMOVE", &[&key, &self.key("l"), "LEFT", "RIGHT"]),
            _ => cmd("LPOP", &[&key]),
        };
        self.exec(con, &mut command)
    }

    fn set_op(&mut self, con: &mut Connection) -> Result<(), String> {
        let key = self.key("set");
        let member = self.rng.below(40).to_string();
        let mut command = match self.rng.below(5) {
            0 | 1 => cmd(
                "SADD",
                &[&key, &member, &format!("m{}", self.rng.below(40))],
            ),
            2 => cmd("SREM", &[&key, &member]),
            3 => cmd("SPOP", &[&key]),
            // With a count: replicated as a MULTI/EXEC of SREMs.
            _ => cmd("SPOP", &[&key, "3"]),
        };
        self.exec(con, &mut command)
    }

    fn zset_op(&mut self, con: &mut Connection) -> Result<(), String> {
        let key = self.key("z");
        let member = format!("m{}", self.rng.below(40));
        let score = format!("{}.5", self.rng.below(1000));
        let mut command = match self.rng.below(3) {
            0 => cmd("ZADD", &[&key, &score, &member]),
            1 => cmd("ZINCRBY", &[&key, "1.5", &member]),
            _ => cmd("ZREM", &[&key, &member]),
        };
        self.exec(con, &mut command)
    }

    fn hash_op(&mut self, con: &mut Connection) -> Result<(), String> {
        let key = self.key("h");
        let field = format!("f{}", self.rng.below(12));
        let mut command = match self.rng.below(4) {
            0 | 1 => cmd("HSET", &[&key, &field, &self.value()]),
            2 => cmd("HDEL", &[&key, &field]),
            // Only HINCRBY touches the `cnt` field, so it always holds an integer.
            _ => cmd("HINCRBY", &[&key, "cnt", &self.rng.below(100).to_string()]),
        };
        self.exec(con, &mut command)
    }

    fn stream_op(&mut self, con: &mut Connection) -> Result<(), String> {
        let key = self.key("x");
        match self.rng.below(6) {
            0 | 1 => {
                let mut xadd = self.xadd(&key);
                self.exec(con, &mut xadd)
            }
            2 => {
                let start = if self.rng.chance(1, 2) { "0" } else { "$" };
                self.exec(
                    con,
                    &mut cmd("XGROUP", &["CREATE", &key, "g", start, "MKSTREAM"]),
                )
            }
            3 | 4 => {
                let consumer = format!("c{}", self.rng.below(3));
                let mut read = cmd(
                    "XREADGROUP",
                    &["GROUP", "g", &consumer, "COUNT", "3", "STREAMS", &key, ">"],
                );
                if let Some(reply) = self.query(con, &mut read)? {
                    for id in read_ids(&reply) {
                        if self.to_ack.len() < MAX_TO_ACK {
                            self.to_ack.push_back((self.db, key.clone(), id));
                        }
                    }
                }
                Ok(())
            }
            _ => match self.to_ack.pop_front() {
                Some((db, key, id)) if db == self.db => {
                    self.exec(con, &mut cmd("XACK", &[&key, "g", &id]))
                }
                Some(other) => {
                    // Read in the other db: keep it for later, add an entry instead.
                    self.to_ack.push_back(other);
                    let mut xadd = self.xadd(&key);
                    self.exec(con, &mut xadd)
                }
                None => {
                    let mut xadd = self.xadd(&key);
                    self.exec(con, &mut xadd)
                }
            },
        }
    }

    /// MULTI, two to four writes (sometimes a SELECT among them), EXEC.
    fn multi_exec(&mut self, con: &mut Connection) -> Result<(), String> {
        self.exec(con, &mut cmd("MULTI", &[]))?;
        for _ in 0..self.rng.between(2, 4) {
            let mut command = if self.rng.chance(1, 6) && !self.db0_only {
                let db = if self.db == 0 { 5 } else { 0 };
                self.db = db;
                cmd("SELECT", &[&db.to_string()])
            } else if self.rng.chance(1, 4) {
                self.long_expire()
            } else {
                self.simple_write()
            };
            self.exec(con, &mut command)?;
        }
        self.exec(con, &mut cmd("EXEC", &[]))
    }

    /// A write that cannot fail, of any type.
    fn simple_write(&mut self) -> redis::Cmd {
        match self.rng.below(8) {
            0 => cmd("SET", &[&self.key("s"), &self.value()]),
            1 => cmd("INCR", &[&self.key("i")]),
            2 => cmd("RPUSH", &[&self.key("l"), &self.value()]),
            3 => cmd("SADD", &[&self.key("set"), &self.rng.below(40).to_string()]),
            4 => cmd(
                "ZADD",
                &[
                    &self.key("z"),
                    &self.rng.below(100).to_string(),
                    &format!("m{}", self.rng.below(40)),
                ],
            ),
            5 => cmd(
                "HSET",
                &[
                    &self.key("h"),
                    &format!("f{}", self.rng.below(12)),
                    &self.value(),
                ],
            ),
            6 => cmd("HINCRBY", &[&self.key("h"), "cnt", "1"]),
            _ => {
                let key = self.key("x");
                self.xadd(&key)
            }
        }
    }

    /// A TTL of one to two hours on any key: nothing expires during the test.
    fn long_expire(&mut self) -> redis::Cmd {
        let key = self.any_key();
        if self.rng.chance(1, 2) {
            let seconds = self.rng.between(3_600, 7_200).to_string();
            cmd("EXPIRE", &[&key, &seconds])
        } else {
            let at = now_ms() + self.rng.between(3_600_000, 7_200_000);
            cmd("PEXPIREAT", &[&key, &at.to_string()])
        }
    }

    /// A key that expires within two seconds (SET PX, or SET then PEXPIREAT).
    fn short_ttl(&mut self, con: &mut Connection) -> Result<(), String> {
        let key = format!("wl:ttl:{}", self.rng.below(SHORT_TTL_KEYS));
        let ttl_ms = self.rng.between(200, 2_000);
        let expires_at = now_ms() + ttl_ms;
        self.last_short_expiry_ms = self.last_short_expiry_ms.max(expires_at);
        if self.rng.chance(1, 2) {
            let value = self.value();
            self.exec(
                con,
                &mut cmd("SET", &[&key, &value, "PX", &ttl_ms.to_string()]),
            )
        } else {
            let value = self.value();
            self.exec(con, &mut cmd("SET", &[&key, &value]))?;
            self.exec(con, &mut cmd("PEXPIREAT", &[&key, &expires_at.to_string()]))
        }
    }

    /// XADD with exact trimming, which moves max-deleted-entry-id.
    fn xadd(&mut self, key: &str) -> redis::Cmd {
        let value = self.value();
        cmd("XADD", &[key, "MAXLEN", "50", "*", "v", &value])
    }

    fn key(&mut self, prefix: &str) -> String {
        format!("wl:{prefix}:{}", self.rng.below(self.keys))
    }

    fn any_key(&mut self) -> String {
        let prefix = PREFIXES[self.rng.below(PREFIXES.len() as u64) as usize];
        self.key(prefix)
    }

    /// Mostly short values, sometimes a few KiB.
    fn value(&mut self) -> String {
        let len = if self.rng.chance(1, 50) {
            self.rng.between(1_000, 4_000)
        } else {
            self.rng.between(1, 32)
        };
        self.rng.letters(len as usize)
    }

    fn exec(&mut self, con: &mut Connection, command: &mut redis::Cmd) -> Result<(), String> {
        self.query(con, command).map(|_| ())
    }

    /// Runs a command; `Ok(None)` for an expected error reply.
    fn query(
        &mut self,
        con: &mut Connection,
        command: &mut redis::Cmd,
    ) -> Result<Option<Value>, String> {
        match command.query::<Value>(con) {
            Ok(value) => Ok(Some(value)),
            Err(err) if matches!(err.code(), Some("NOGROUP" | "BUSYGROUP")) => {
                self.expected_errors += 1;
                Ok(None)
            }
            Err(err) => Err(format!("{}: {err}", describe(command))),
        }
    }
}

fn cmd(name: &str, args: &[&str]) -> redis::Cmd {
    let mut command = redis::cmd(name);
    for arg in args {
        command.arg(*arg);
    }
    command
}

fn describe(command: &redis::Cmd) -> String {
    command
        .args_iter()
        .map(|arg| match arg {
            redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            redis::Arg::Cursor => "<cursor>".into(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The entry ids in an XREADGROUP reply: `[[key, [[id, [f, v, …]], …]], …]` (or nil).
fn read_ids(reply: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    if let Value::Array(streams) = reply {
        for stream in streams {
            if let Value::Array(parts) = stream {
                if let Some(Value::Array(entries)) = parts.get(1) {
                    for entry in entries {
                        if let Value::Array(fields) = entry {
                            if let Some(Value::BulkString(id)) = fields.first() {
                                ids.push(String::from_utf8_lossy(id).into_owned());
                            }
                        }
                    }
                }
            }
        }
    }
    ids
}

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(since_epoch.as_millis()).expect("milliseconds fit in u64")
}
