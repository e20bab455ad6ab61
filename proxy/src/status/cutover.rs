//! The cutover, run by the sync itself when `replicant cutover` asks on the admin port
//! (`CUTOVER <pause-ms> <max-lag-bytes> [RESUME]`): check the lag is small, pause writes on
//! the source (`CLIENT PAUSE <ms> WRITE`), read the source's `master_repl_offset`, wait until
//! the destination has applied it, and report "ready" with that offset and the pause so far.
//! With RESUME the source is unpaused at once (the abort path, or a rehearsal); otherwise it
//! stays paused until the timeout, while the applications are switched. If the destination
//! does not catch up in time, the source is unpaused and the cutover fails.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use replay::net::{connect_and_auth, Endpoint};
use replay::plan::caps::info_field;
use replay::resp::{frame_error, frame_text};

use super::{Phase, Status};

/// Where a cutover stands (for INFO and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    None = 0,
    Pausing = 1,
    Waiting = 2,
    Ready = 3,
    Resumed = 4,
    Failed = 5,
}

impl State {
    pub const ALL: [State; 6] = [
        State::None,
        State::Pausing,
        State::Waiting,
        State::Ready,
        State::Resumed,
        State::Failed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::None => "none",
            State::Pausing => "pausing",
            State::Waiting => "waiting",
            State::Ready => "ready",
            State::Resumed => "resumed",
            State::Failed => "failed",
        }
    }
}

/// The cutover's state, kept in the [`Status`].
#[derive(Debug, Default)]
pub struct Cutover {
    state: AtomicU8,
    /// The source offset the destination reached with writes paused.
    pub offset: AtomicU64,
    /// How long writes were paused when the destination had caught up (ms).
    pub pause_ms: AtomicU64,
    busy: AtomicBool,
}

impl Cutover {
    pub fn state(&self) -> State {
        let s = self.state.load(Ordering::Acquire);
        State::ALL
            .into_iter()
            .find(|x| *x as u8 == s)
            .unwrap_or(State::None)
    }

    fn set(&self, s: State) {
        self.state.store(s as u8, Ordering::Release);
    }
}

/// What `replicant cutover` asked for.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub pause: Duration,
    pub max_lag: u64,
    pub resume: bool,
}

/// Runs a cutover; the text for the operator, or why it failed.
pub async fn run(
    status: &Status,
    source: &Endpoint,
    timeout: Duration,
    req: Request,
) -> Result<String, String> {
    let c = &status.cutover;
    if c.busy.swap(true, Ordering::AcqRel) {
        return Err("a cutover is already running".into());
    }
    let r = cut(status, source, timeout, req).await;
    if r.is_err() {
        c.set(State::Failed);
    }
    c.busy.store(false, Ordering::Release);
    r
}

/// Unpauses writes on the source now (`CUTOVER RESUME`: a cutover of several shards aborted
/// by the operator's tool after another shard failed, or the end of a rehearsal).
pub async fn resume(
    status: &Status,
    source: &Endpoint,
    timeout: Duration,
) -> Result<String, String> {
    let mut conn = connect_and_auth(source, timeout)
        .await
        .map_err(|e| format!("source: {e}"))?;
    let r = conn
        .call(&["CLIENT", "UNPAUSE"])
        .await
        .map_err(|e| format!("source: {e}"))?;
    if let Some(e) = frame_error(&r) {
        return Err(format!("source: CLIENT UNPAUSE refused: {e}"));
    }
    if status.cutover.state() == State::Ready {
        status.cutover.set(State::Resumed);
    }
    tracing::warn!("cutover: writes on the source resumed (CUTOVER RESUME)");
    Ok("source=resumed".into())
}

async fn cut(
    status: &Status,
    source: &Endpoint,
    timeout: Duration,
    req: Request,
) -> Result<String, String> {
    let c = &status.cutover;
    if status.phase() != Phase::Streaming {
        return Err(format!("not streaming (phase {})", status.phase().name()));
    }
    match status.lag_bytes() {
        Some(l) if l <= req.max_lag => {}
        Some(l) => return Err(format!("lag {l} bytes is above --max-lag {}", req.max_lag)),
        None => {
            return Err(
                "the lag is not known yet (the source's offset is read once a second)".into(),
            )
        }
    }
    let mut conn = connect_and_auth(source, timeout)
        .await
        .map_err(|e| format!("source: {e}"))?;
    c.set(State::Pausing);
    let ms = req.pause.as_millis().to_string();
    let started = Instant::now();
    let paused = conn
        .call(&["CLIENT", "PAUSE", ms.as_str(), "WRITE"])
        .await
        .map_err(|e| format!("source: {e}"))?;
    if let Some(e) = frame_error(&paused) {
        return Err(format!("source: CLIENT PAUSE refused: {e}"));
    }
    tracing::warn!(pause_ms = %ms, "cutover: writes on the source are paused");
    let info = conn.call(&["INFO", "replication"]).await;
    let offset = match info.as_ref().map(|i| (frame_error(i), frame_text(i))) {
        Ok((None, text)) => {
            info_field(&text, "master_repl_offset").and_then(|v| v.parse::<u64>().ok())
        }
        _ => None,
    };
    let Some(offset) = offset else {
        let _ = conn.call(&["CLIENT", "UNPAUSE"]).await;
        return Err("source: cannot read master_repl_offset; writes resumed".into());
    };
    c.set(State::Waiting);
    // Leave a margin before the pause ends by itself.
    let deadline = started + req.pause.mul_f64(0.8);
    loop {
        if status.applied_offset().is_some_and(|a| a >= offset) {
            break;
        }
        if Instant::now() > deadline {
            let _ = conn.call(&["CLIENT", "UNPAUSE"]).await;
            return Err(format!(
                "the destination did not reach offset {offset} within {} ms (applied {}); writes on the source resumed",
                deadline.duration_since(started).as_millis(),
                status.applied_offset().map_or("?".into(), |a| a.to_string())
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let waited = started.elapsed();
    c.offset.store(offset, Ordering::Release);
    c.pause_ms
        .store(waited.as_millis() as u64, Ordering::Release);
    c.set(State::Ready);
    tracing::warn!(
        offset,
        pause_ms = waited.as_millis() as u64,
        "cutover: ready — the destination has applied every write up to the pause"
    );
    let mut text = format!(
        "ready offset={offset} paused_ms={:.1} ",
        waited.as_secs_f64() * 1000.0
    );
    if !req.resume {
        // The applications move to the destination now: replicant's records go.
        if let Some((nodes, keys)) = status.state_keys.get() {
            match crate::apply::remove_state_keys(nodes, keys, false, timeout).await {
                Ok(n) => {
                    tracing::info!(
                        removed = n,
                        "cutover: replicant's state keys removed from the destination"
                    );
                    text.push_str(&format!("state_keys_removed={n} "));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cutover: cannot remove replicant's state keys from the destination; `replicant cleanup` removes them");
                    text.push_str("state_keys_removed=failed ");
                }
            }
        }
    }
    if req.resume {
        let r = conn.call(&["CLIENT", "UNPAUSE"]).await;
        if let Ok(Some(e)) = r.as_ref().map(frame_error) {
            return Err(format!("source: CLIENT UNPAUSE refused: {e}"));
        }
        r.map_err(|e| format!("source: {e}"))?;
        let total = started.elapsed();
        c.pause_ms
            .store(total.as_millis() as u64, Ordering::Release);
        c.set(State::Resumed);
        tracing::warn!(
            pause_ms = total.as_millis() as u64,
            "cutover: writes on the source resumed (--resume-source)"
        );
        text.push_str(&format!(
            "source=resumed total_pause_ms={:.1}",
            total.as_secs_f64() * 1000.0
        ));
    } else {
        let left = req.pause.saturating_sub(started.elapsed());
        text.push_str(&format!(
            "source=paused for {} ms more: switch the applications to the destination now",
            left.as_millis()
        ));
    }
    Ok(text)
}
