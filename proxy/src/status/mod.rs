//! What a running `sync` knows about itself, for operators: one [`Status`] of atomics that
//! the link, the spool and the heartbeat update, and that [`metrics`] (Prometheus, `/healthz`,
//! `/readyz` over [`http`]), the [`admin`] RESP port (`INFO`) and the periodic summary line
//! read. Nothing here is on the hot path: counters are stored per batch, not per command.

pub mod admin;
pub mod bar;
pub mod cutover;
pub mod heartbeat;
pub mod http;
pub mod metrics;
pub mod shards;
pub mod summary;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use replay::dest::Applied;

use crate::spool::SpoolCounters;
use crate::state::position::COPYING;

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Connecting = 0,
    Snapshot = 1,
    Streaming = 2,
    Stopped = 3,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Connecting,
        Phase::Snapshot,
        Phase::Streaming,
        Phase::Stopped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Snapshot => "snapshot",
            Phase::Streaming => "streaming",
            Phase::Stopped => "stopped",
        }
    }
}

/// Unknown, for the gauges below that may not have a value yet.
pub const UNKNOWN: u64 = u64::MAX;

/// See the module documentation.
#[derive(Debug)]
pub struct Status {
    pub started: Instant,
    phase: AtomicU8,
    /// What the destination has applied (its writers' progress).
    pub applied: Applied,
    /// Bytes read from the source link, and the spool's fill.
    pub spool: Arc<SpoolCounters>,
    /// Commands of the replication stream received.
    pub source_commands: AtomicU64,
    /// The source offset read so far (the stream may run ahead of what is applied).
    pub read_offset: AtomicU64,
    /// The source's `master_repl_offset`, polled once a second ([`UNKNOWN`] until known).
    pub source_offset: AtomicU64,
    /// Snapshot bytes read, and the total when the transfer announced it (0 if not).
    pub snapshot_read: AtomicU64,
    pub snapshot_total: AtomicU64,
    pub keys_restored: AtomicU64,
    pub keys_rewritten: AtomicU64,
    pub keys_expired: AtomicU64,
    /// Replication lag in milliseconds from the last heartbeat seen applied ([`UNKNOWN`]).
    pub lag_ms: AtomicU64,
    pub source_reconnects: AtomicU64,
    pub full_resyncs: AtomicU64,
    pub partial_resyncs: AtomicU64,
    /// Source link losses and source protocol errors.
    pub source_errors: AtomicU64,
    /// The most per-key errors of the destination ever counted (writers come and go).
    pub key_errors_seen: AtomicU64,
    /// The replication id being applied.
    pub replid: Mutex<String>,
    /// The configuration, for INFO (no secrets).
    pub config: Vec<(String, String)>,
    /// Byte lag under which the run counts as ready (`/readyz`).
    pub ready_lag: u64,
    pub spool_max: u64,
    pub cutover: cutover::Cutover,
    /// Where replicant's state keys are (the destination's key nodes, their names), for a
    /// ready cutover to remove them (exactly-once delivery only).
    pub state_keys:
        std::sync::OnceLock<(Vec<replay::net::Endpoint>, replay::dest::once::StateKeys)>,
}

impl Status {
    pub fn new(
        applied: Applied,
        spool: Arc<SpoolCounters>,
        config: Vec<(String, String)>,
        ready_lag: u64,
        spool_max: u64,
    ) -> Self {
        Status {
            started: Instant::now(),
            phase: AtomicU8::new(Phase::Connecting as u8),
            applied,
            spool,
            source_commands: AtomicU64::new(0),
            read_offset: AtomicU64::new(0),
            source_offset: AtomicU64::new(UNKNOWN),
            snapshot_read: AtomicU64::new(0),
            snapshot_total: AtomicU64::new(0),
            keys_restored: AtomicU64::new(0),
            keys_rewritten: AtomicU64::new(0),
            keys_expired: AtomicU64::new(0),
            lag_ms: AtomicU64::new(UNKNOWN),
            source_reconnects: AtomicU64::new(0),
            full_resyncs: AtomicU64::new(0),
            partial_resyncs: AtomicU64::new(0),
            source_errors: AtomicU64::new(0),
            key_errors_seen: AtomicU64::new(0),
            replid: Mutex::new(String::new()),
            config,
            ready_lag,
            spool_max,
            cutover: cutover::Cutover::default(),
            state_keys: std::sync::OnceLock::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            1 => Phase::Snapshot,
            2 => Phase::Streaming,
            3 => Phase::Stopped,
            _ => Phase::Connecting,
        }
    }

    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Release);
    }

    pub fn set_replid(&self, id: &str) {
        let mut r = self.replid.lock().unwrap_or_else(|p| p.into_inner());
        r.clear();
        r.push_str(id);
    }

    pub fn replid(&self) -> String {
        self.replid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The offset the destination has applied; `None` while a snapshot is being applied.
    pub fn applied_offset(&self) -> Option<u64> {
        match self.applied.offset() {
            COPYING => None,
            o => Some(o),
        }
    }

    /// Source offset minus applied offset, when both are known.
    pub fn lag_bytes(&self) -> Option<u64> {
        let src = self.source_offset.load(Ordering::Acquire);
        if src == UNKNOWN {
            return None;
        }
        Some(src.saturating_sub(self.applied_offset()?))
    }

    pub fn lag_seconds(&self) -> Option<f64> {
        match self.lag_ms.load(Ordering::Acquire) {
            UNKNOWN => None,
            ms => Some(ms as f64 / 1000.0),
        }
    }

    /// Streaming, with the byte lag known and under `--ready-lag`.
    pub fn ready(&self) -> bool {
        self.phase() == Phase::Streaming && self.lag_bytes().is_some_and(|l| l <= self.ready_lag)
    }

    /// Commands in flight to the destination (sent or queued, not answered).
    pub fn inflight(&self) -> (u64, u64) {
        self.applied.outstanding()
    }
}
