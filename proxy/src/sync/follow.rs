//! Following one source stream: link after link until stopped — reconnecting after a lost
//! link (capped, jittered backoff, within `--retry-connect`), to where a cluster shard is now
//! — then draining the destination within the grace period and sending the source a last ACK.
//! It owns the reconnect loop; the link's work is `source::link`'s, the run's set-up
//! `sync`'s.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use replay::dest::Sink;
use tokio_util::sync::CancellationToken;

use crate::cli::SyncArgs;
use crate::fatal::Fatal;
use crate::source::acker::{self, AckState};
use crate::source::handshake::FullResync;
use crate::source::link::{Link, LinkConfig, Session};
use crate::source::SourceError;
use crate::status::Phase;
use replay::plan::stream::StreamState;

/// Links to the source until stopped, reconnecting after a lost link; then drains the sink.
pub async fn follow(
    args: &SyncArgs,
    mut cfg: LinkConfig,
    session: &mut Session,
    mut sink: Sink,
    mut resume: Option<FullResync>,
    mut stream: Option<StreamState>,
) -> Result<(), Fatal> {
    let stop = session.stop.clone();
    let ack = session.ack.clone();
    let applied = session.applied.clone();
    tracing::info!(source = %cfg.endpoint, "connecting to the source as a replica");
    let retry_for = Duration::from_secs(args.retry_connect.saturating_mul(60));
    let mut outage: Option<Instant> = None;
    let mut attempt = 0u32;
    // When the wait for the source was last said in the log.
    let mut said: Option<Instant> = None;
    let (result, acker, ack_stop) = loop {
        session.links += 1;
        ack.streaming.store(false, Ordering::Release);
        let connected = tokio::select! {
            l = connect(&mut cfg, session, resume.as_ref(), &ack) => l,
            _ = stop.cancelled() => {
                return finish(sink, args.grace).await;
            }
        };
        if let Err(SourceError::Unready(_)) = &connected {
            // A source that is there but not ready yet (loading, a replica whose master is
            // down) is waited for from the first link on, not only after a lost one.
            outage.get_or_insert_with(Instant::now);
        }
        let mut link = match connected {
            Ok(l) => l,
            Err(e) if e.is_link_loss() && outage.is_some_and(|t| t.elapsed() < retry_for) => {
                attempt += 1;
                let mut wait = backoff(attempt);
                if session.shard.is_some() {
                    // Each attempt reads the shard's topology again: a promoted replica is
                    // found within a second of the failover.
                    wait = wait.min(Duration::from_secs(1));
                }
                // Said at the first attempt, then once a minute.
                if said.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(60)) {
                    said = Some(Instant::now());
                    let waited = outage.map_or(0, |t| t.elapsed().as_secs());
                    tracing::warn!(error = %e, attempt, waited_s = waited, gives_up_after_s = retry_for.as_secs(), "cannot link to the source yet; retrying (--retry-connect)");
                } else {
                    tracing::debug!(error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "cannot link to the source yet");
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = stop.cancelled() => {
                                return finish(sink, args.grace).await;
                    }
                }
            }
            Err(e) => {
                sink.abort();
                return Err(Fatal::source(e));
            }
        };
        if attempt > 0 {
            tracing::info!(
                attempts = attempt,
                waited_s = outage.map_or(0, |t| t.elapsed().as_secs()),
                "linked to the source again"
            );
        }
        attempt = 0;
        said = None;
        let replid = link.resync.replid.clone();
        let ack_stop = CancellationToken::new();
        let acker = link.take_writer().map(|wr| {
            tokio::spawn(acker::run(
                wr,
                ack.clone(),
                applied.clone(),
                ack_stop.clone(),
            ))
        });
        let result = link.run(session, &mut sink, &mut stream).await;
        match &result {
            Err(e) if e.is_link_loss() => {
                ack_stop.cancel();
                if let Some(h) = acker {
                    h.abort();
                }
                resume = match &stream {
                    // Everything up to `st.offset` is with the destination: ask for the rest.
                    Some(st) => {
                        tracing::warn!(error = %e, replid = %replid, offset = st.offset, "lost the source link; reconnecting to continue the stream with PSYNC");
                        Some(FullResync {
                            replid,
                            offset: st.offset,
                        })
                    }
                    None => {
                        tracing::warn!(error = %e, "lost the source link during the snapshot; reconnecting to copy it again");
                        None
                    }
                };
                outage = Some(Instant::now());
                session
                    .status
                    .source_reconnects
                    .fetch_add(1, Ordering::Relaxed);
                session.status.source_errors.fetch_add(1, Ordering::Relaxed);
                session.status.set_phase(Phase::Connecting);
            }
            _ => break (result, acker, ack_stop),
        }
    };
    let outcome = match result {
        Ok(()) => finish(sink, args.grace).await,
        Err(SourceError::WriterGone) => {
            Err(Fatal::target(sink.finish().await.err().map_or(
                "the destination writer stopped".to_string(),
                |e| e.to_string(),
            )))
        }
        Err(SourceError::Route(e)) => {
            sink.abort();
            Err(Fatal::target(e))
        }
        Err(SourceError::Dest(e)) => {
            sink.abort();
            Err(Fatal::target(e))
        }
        Err(e) => {
            sink.abort();
            Err(Fatal::source(e))
        }
    };
    // The last ACK reports what the destination applied, after the drain.
    ack_stop.cancel();
    if let Some(h) = acker {
        if !ack.streaming.load(Ordering::Acquire) {
            h.abort();
        }
        let _ = h.await;
    }
    outcome
}

/// A link to the source; a cluster shard's topology is read again first after a lost link,
/// so that the link goes where the shard is now (a failover promoted a replica).
async fn connect(
    cfg: &mut LinkConfig,
    session: &mut Session,
    resume: Option<&FullResync>,
    ack: &Arc<AckState>,
) -> Result<Link, SourceError> {
    if let Some(f) = session.shard.as_mut() {
        if session.links > 1 {
            let before = cfg.endpoint.clone();
            if f.refresh().await? {
                tracing::warn!(master = %f.master_endpoint(), id = %f.shard.master.id, "the source shard has a new master: continuing the stream there");
            }
            cfg.endpoint = f.link_endpoint();
            session.master_at.set(f.master_endpoint());
            if cfg.endpoint != before {
                tracing::info!(from = %before, to = %cfg.endpoint, "the link moves to another node of the shard");
            }
        }
    }
    let r = Link::connect(cfg.clone(), resume, session.links, ack).await;
    if r.is_ok() {
        session.checkpoint.set_node(cfg.endpoint.to_string());
    }
    if r.is_err() {
        if let Some(f) = session.shard.as_mut() {
            f.link_failed();
        }
    }
    r
}

/// Waits (within the grace period) until the destination has answered what is in flight.
async fn finish(sink: Sink, grace_secs: u64) -> Result<(), Fatal> {
    let grace = Duration::from_secs(grace_secs);
    let r = match tokio::time::timeout(grace, sink.finish()).await {
        Ok(r) => r.map_err(Fatal::target),
        Err(_) => {
            tracing::warn!(
                grace_secs,
                "grace period over with commands still in flight; they are not acknowledged to the source nor checkpointed"
            );
            Ok(())
        }
    };
    r
}

/// 100 ms doubling per attempt up to 5 s, with up to 50 % jitter.
fn backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.min(6)).min(5000);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0)
        % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}
