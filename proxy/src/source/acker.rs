//! Reports progress to the source on the write half of the replica link: a newline once a second
//! while the snapshot is being read (a replica's keepalive), then `REPLCONF ACK <offset>` within
//! 100 ms of the applied offset moving, once a second anyway, and whenever the source asks
//! (`REPLCONF GETACK`). The offset is the one the
//! destination has applied, so `WAIT` on the source counts only writes the destination holds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use replay::cmd::Command;
use replay::dest::Applied;
use replay::net::WriteHalf;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::state::position::COPYING;

/// Shared between the link and its acker.
#[derive(Debug, Default)]
pub struct AckState {
    /// The RDB has been read: send ACKs instead of newlines.
    pub streaming: AtomicBool,
    /// Ask for an ACK now.
    pub now: Notify,
}

/// Runs until `stop` is cancelled or the connection fails; a last ACK goes out on the way.
pub async fn run(
    mut wr: WriteHalf,
    state: Arc<AckState>,
    applied: Applied,
    stop: CancellationToken,
) -> std::io::Result<()> {
    // Every 100 ms an ACK goes out if the applied offset moved (so the source's view of the
    // replica, and WAIT, follow closely); at least once a second either way.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<(u64, Instant)> = None;
    loop {
        let (stopping, asked) = tokio::select! {
            _ = tick.tick() => (false, false),
            _ = state.now.notified() => (false, true),
            _ = stop.cancelled() => (true, true),
        };
        let due = |offset: u64| {
            last.is_none_or(|(o, at)| o != offset || at.elapsed() >= Duration::from_secs(1))
        };
        if state.streaming.load(Ordering::Acquire) {
            // While the snapshot is still being applied nothing of this stream is: say 0. The
            // first ACK after the snapshot is what puts the replica online at the source (a
            // diskless transfer), so it must not wait for the destination.
            let offset = match applied.offset() {
                COPYING => 0,
                o => o,
            };
            if asked || due(offset) {
                let off = offset.to_string();
                let ack = Command::new(&["REPLCONF", "ACK", off.as_str()]);
                for c in ack.chunks() {
                    wr.write_all(c).await?;
                }
                last = Some((offset, Instant::now()));
            }
        } else if !stopping && last.is_none_or(|(_, at)| at.elapsed() >= Duration::from_secs(1)) {
            // A replica's keepalive while the snapshot comes.
            wr.write_all(b"\n").await?;
            last = Some((u64::MAX, Instant::now()));
        }
        // Out of a TLS session's buffer now (a no-op for TCP).
        wr.flush().await?;
        if stopping {
            return Ok(());
        }
    }
}
