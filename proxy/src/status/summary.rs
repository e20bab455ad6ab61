//! One log line every `--status-interval` seconds: the snapshot's progress while copying
//! (bytes, %, keys/s, ETA when the size is known), then the stream's (offsets, lag, rates,
//! spool).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Phase, Status};

pub async fn run(status: Arc<Status>, every: Duration, stop: CancellationToken) {
    if every.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last = (Instant::now(), 0u64, 0u64, 0u64);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = Instant::now();
        let secs = now.duration_since(last.0).as_secs_f64().max(0.001);
        let keys = status.keys_restored.load(Ordering::Relaxed)
            + status.keys_rewritten.load(Ordering::Relaxed);
        let read = status.snapshot_read.load(Ordering::Relaxed);
        let applied: u64 = status
            .applied
            .nodes()
            .iter()
            .map(|p| p.commands.load(Ordering::Relaxed))
            .sum();
        match status.phase() {
            Phase::Snapshot => {
                let total = status.snapshot_total.load(Ordering::Relaxed);
                let rate = (read.saturating_sub(last.2)) as f64 / secs;
                let (pct, eta) = if total > 0 {
                    let left = total.saturating_sub(read) as f64;
                    (
                        format!("{:.1}", read as f64 * 100.0 / total as f64),
                        if rate > 0.0 {
                            format!("{:.0}", left / rate)
                        } else {
                            String::new()
                        },
                    )
                } else {
                    (String::new(), String::new())
                };
                tracing::info!(
                    read_bytes = read,
                    total_bytes = total,
                    percent = %pct,
                    keys,
                    keys_per_sec = ((keys.saturating_sub(last.1)) as f64 / secs) as u64,
                    eta_secs = %eta,
                    "snapshot progress"
                );
            }
            Phase::Streaming => {
                tracing::info!(
                    applied_offset = status.applied_offset().unwrap_or(0),
                    lag_bytes = status.lag_bytes().map_or(String::new(), |l| l.to_string()),
                    lag_seconds = status
                        .lag_seconds()
                        .map_or(String::new(), |l| format!("{l:.3}")),
                    commands_per_sec = ((applied.saturating_sub(last.3)) as f64 / secs) as u64,
                    spool_disk_bytes = status.spool.disk.load(Ordering::Relaxed),
                    "streaming"
                );
            }
            Phase::Connecting | Phase::Stopped => {}
        }
        last = (now, keys, read, applied);
    }
}
