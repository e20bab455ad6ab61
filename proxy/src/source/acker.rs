//! Reports progress to the source on the write half of the replica link: a newline once a second
//! while the snapshot is being read (a replica's keepalive), then `REPLCONF ACK <offset>` once a
//! second and whenever the source asks (`REPLCONF GETACK`). The offset is the one the
//! destination has applied, so `WAIT` on the source counts only writes the destination holds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = state.now.notified() => false,
            _ = stop.cancelled() => true,
        };
        if state.streaming.load(Ordering::Acquire) {
            // While the snapshot is still being applied nothing of this stream is: say 0. The
            // first ACK after the snapshot is what puts the replica online at the source (a
            // diskless transfer), so it must not wait for the destination.
            let offset = match applied.offset() {
                COPYING => 0,
                o => o,
            };
            let off = offset.to_string();
            let ack = Command::new(&["REPLCONF", "ACK", off.as_str()]);
            for c in ack.chunks() {
                wr.write_all(c).await?;
            }
        } else if !stopping {
            wr.write_all(b"\n").await?;
        }
        // Out of a TLS session's buffer now (a no-op for TCP).
        wr.flush().await?;
        if stopping {
            return Ok(());
        }
    }
}
