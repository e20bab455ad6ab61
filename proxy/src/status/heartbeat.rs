//! Lag in seconds, and the source's offset. Once a second, on a control connection of its own,
//! replicant writes `SET <prefix>heartbeat:<id> <unix-ms> PX 60000` to the source and reads its
//! `master_repl_offset`. The link recognises the key in the replication stream, drops it before
//! the destination and says at which offset it came; once the destination has applied that
//! offset, the lag is now minus the timestamp. A heartbeat written and not yet applied bounds
//! the lag from below (so a stalled link shows a growing lag). If the source refuses the write
//! (read-only, ACL), that is said once and only the byte lag is reported.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use replay::net::connect_and_auth;
use replay::plan::caps::info_field;
use replay::resp::{frame_error, frame_text};
use tokio_util::sync::CancellationToken;

use super::{Status, UNKNOWN};
use crate::source::shard::MasterAt;

/// Refusals of a node that stopped being the master the heartbeat writes to: not final.
const MOVED_ON: &[&str] = &[
    "READONLY",
    "MOVED",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "MASTERDOWN",
    "LOADING",
];

#[derive(Debug, Default)]
struct Queues {
    /// Timestamps written and not yet seen applied.
    written: VecDeque<u64>,
    /// Timestamps read in the stream, with the offset they complete.
    read: VecDeque<(u64, u64)>,
    /// The last lag measured.
    measured_ms: Option<u64>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Heartbeats {
    /// `<prefix>heartbeat:` — every replicant's heartbeat keys (none is copied).
    pub prefix: Bytes,
    /// This run's key.
    pub key: Bytes,
    pub enabled: bool,
    queues: Mutex<Queues>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Heartbeats {
    /// `tag`: a hash tag for the key (a cluster source: one whose slot the shard serves).
    pub fn new(prefix: &str, enabled: bool, tag: Option<&str>) -> Self {
        let id = format!("{:x}{:x}", std::process::id(), now_ms());
        let prefix = format!("{prefix}heartbeat:");
        let tag = tag.map(|t| format!("{{{t}}}")).unwrap_or_default();
        Heartbeats {
            key: Bytes::from(format!("{prefix}{tag}{id}")),
            prefix: Bytes::from(prefix),
            enabled,
            queues: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The link read this run's heartbeat `ts_ms`, completing source offset `offset`.
    pub fn read(&self, offset: u64, ts_ms: u64) {
        self.lock().read.push_back((offset, ts_ms));
    }

    fn written(&self, ts_ms: u64) {
        let mut q = self.lock();
        q.written.push_back(ts_ms);
        // A link that never delivers them must not grow this without bound.
        while q.written.len() > 3600 {
            q.written.pop_front();
        }
    }

    /// Turns heartbeats applied by now into the lag; stores it in `status`.
    pub fn settle(&self, status: &Status) {
        let now = now_ms();
        let mut q = self.lock();
        if let Some(applied) = status.applied_offset() {
            while let Some(&(offset, ts)) = q.read.front() {
                if offset > applied {
                    break;
                }
                q.read.pop_front();
                q.measured_ms = Some(now.saturating_sub(ts));
                while q.written.front().is_some_and(|w| *w <= ts) {
                    q.written.pop_front();
                }
            }
        }
        let oldest = q.written.front().map(|w| now.saturating_sub(*w));
        let lag = match (q.measured_ms, oldest) {
            (Some(m), Some(o)) => Some(m.max(o)),
            (m, o) => m.or(o),
        };
        status
            .lag_ms
            .store(lag.unwrap_or(UNKNOWN), Ordering::Release);
    }
}

/// Writes heartbeats and polls the source's offset until `stop`.
pub async fn run(
    source: MasterAt,
    timeout: Duration,
    hb: Arc<Heartbeats>,
    status: Arc<Status>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn = None;
    let mut refused = !hb.enabled;
    let mut info_refused = false;
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if !refused {
            hb.settle(&status);
        }
        n += 1;
        if n % 10 != 1 {
            continue;
        }
        if conn.is_none() {
            match connect_and_auth(&source.get(), timeout).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!(error = %e, "heartbeat: cannot reach the source");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        if !refused {
            let ts = now_ms();
            let value = ts.to_string();
            let key = String::from_utf8_lossy(&hb.key).into_owned();
            match c
                .call(&["SET", key.as_str(), value.as_str(), "PX", "60000"])
                .await
            {
                Ok(reply) => match frame_error(&reply) {
                    // The node is no longer the master (a failover): ask again where it is.
                    Some(e) if MOVED_ON.iter().any(|m| e.starts_with(m)) => {
                        tracing::debug!(reply = %e, "heartbeat: the source node is not its shard's master now");
                        conn = None;
                        continue;
                    }
                    Some(e) => {
                        refused = true;
                        status.lag_ms.store(UNKNOWN, Ordering::Release);
                        tracing::warn!(reply = %e, "the source refuses the heartbeat write: lag is reported in bytes only (see --no-heartbeat)");
                    }
                    None => hb.written(ts),
                },
                Err(_) => {
                    conn = None;
                    continue;
                }
            }
        }
        if info_refused {
            continue;
        }
        match c.call(&["INFO", "replication"]).await {
            Ok(reply) => match frame_error(&reply) {
                Some(e) => {
                    info_refused = true;
                    tracing::warn!(reply = %e, "the source refuses INFO replication: no byte lag");
                }
                None => {
                    let text = frame_text(&reply);
                    if let Some(o) =
                        info_field(&text, "master_repl_offset").and_then(|v| v.parse().ok())
                    {
                        status.source_offset.store(o, Ordering::Release);
                    }
                }
            },
            Err(_) => conn = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay::dest::{Applied, Progress};

    #[test]
    fn lag_is_measured_when_applied_and_bounded_by_what_is_pending() {
        let p = Arc::new(Progress::default());
        let status = Status::new(Applied::new(vec![p.clone()]), Arc::default(), vec![], 0, 0);
        let hb = Heartbeats::new("replicant:", true, None);
        assert!(Heartbeats::new("r:", true, Some("12"))
            .key
            .starts_with(b"r:heartbeat:{12}"));
        assert!(hb.key.starts_with(&hb.prefix));
        let now = now_ms();
        hb.written(now - 5000);
        hb.settle(&status);
        assert!(
            status.lag_seconds().is_some_and(|s| s >= 5.0),
            "pending bounds it"
        );
        hb.read(100, now - 5000);
        p.applied_offset.store(100, Ordering::Release);
        hb.written(now);
        hb.settle(&status);
        let lag = status.lag_seconds().expect("measured");
        assert!((5.0..6.0).contains(&lag), "{lag}");
        hb.read(200, now);
        p.applied_offset.store(200, Ordering::Release);
        hb.settle(&status);
        assert!(status.lag_seconds().is_some_and(|s| s < 1.0));
    }
}
