//! `replicant sync`: destination first (capabilities, writers), then the replica link, then
//! snapshot and stream until a signal; on the way out, drain what is in flight within the grace
//! period and send the source a last ACK of what the destination applied.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use replay::cluster::DbMap;
use replay::rdb::Limits;
use tokio_util::sync::CancellationToken;

use crate::apply::{self, Destination};
use crate::cli::SyncArgs;
use crate::config::Side;
use crate::fatal::Fatal;
use crate::source::acker::{self, AckState};
use crate::source::handshake::FullResync;
use crate::source::link::{Link, LinkConfig};
use crate::source::probe::{probe, SourceInfo};
use crate::source::stream::StreamState;
use crate::source::SourceError;

pub async fn run(args: SyncArgs, stop: CancellationToken) -> Result<(), Fatal> {
    let source = apply::endpoint(&args.source, Side::Source, &args.source_side.flags())?;
    let timeout = Duration::from_secs(args.apply.connect_timeout.max(1));
    let info = probe(&source, timeout).await.map_err(Fatal::source)?;
    tracing::info!(source = %source, version = %info.version, role = %info.role, tls = source.tls.is_some(), "source ready");
    let Destination {
        caps,
        mut sink,
        batch,
        dbs,
    } = apply::open(&args.apply).await?;
    let applied = sink.applied();
    if let Some(dbs) = &dbs {
        if let Err(e) = check_source_dbs(&info, dbs) {
            sink.abort();
            return Err(e);
        }
    }
    let cfg = LinkConfig {
        endpoint: source.clone(),
        connect_timeout: timeout,
        listening_port: args.listening_port,
        read_timeout: Duration::from_secs(args.source_timeout.max(1)),
        limits: Limits {
            whole_value_max: args.apply.restore_max_bytes,
            ..Limits::default()
        },
        restore_max: args.apply.restore_max_bytes,
        batch,
    };
    tracing::info!(source = %source, "connecting to the source as a replica");
    let retry_for = Duration::from_secs(args.retry_connect.saturating_mul(60));
    // Where the stream stands, kept across reconnections so that the source can continue it.
    let mut stream: Option<StreamState> = None;
    let mut resume: Option<FullResync> = None;
    let mut outage: Option<Instant> = None;
    let mut attempt = 0u32;
    let ack = Arc::new(AckState::default());
    let (result, acker, ack_stop) = loop {
        let connected = tokio::select! {
            l = Link::connect(cfg.clone(), resume.as_ref()) => l,
            _ = stop.cancelled() => {
                sink.finish().await.map_err(Fatal::target)?;
                return Ok(());
            }
        };
        let mut link = match connected {
            Ok(l) => l,
            Err(e) if e.is_link_loss() && outage.is_some_and(|t| t.elapsed() < retry_for) => {
                attempt += 1;
                let wait = backoff(attempt);
                tracing::warn!(error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "cannot reach the source yet");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = stop.cancelled() => {
                        sink.finish().await.map_err(Fatal::target)?;
                        return Ok(());
                    }
                }
            }
            Err(e) => {
                sink.abort();
                return Err(Fatal::source(e));
            }
        };
        attempt = 0;
        let replid = link.resync.replid.clone();
        ack.streaming.store(false, Ordering::Release);
        let ack_stop = CancellationToken::new();
        let acker = link.take_writer().map(|wr| {
            tokio::spawn(acker::run(
                wr,
                ack.clone(),
                applied.clone(),
                ack_stop.clone(),
            ))
        });
        let result = link
            .run(
                caps,
                &mut sink,
                applied.clone(),
                ack.clone(),
                stop.clone(),
                &mut stream,
            )
            .await;
        match (&result, &stream) {
            (Err(e), Some(st)) if e.is_link_loss() => {
                // Everything up to `st.offset` is with the destination: ask for the rest.
                ack_stop.cancel();
                if let Some(h) = acker {
                    h.abort();
                }
                tracing::warn!(error = %e, replid = %replid, offset = st.offset, "lost the source link; reconnecting to continue the stream with PSYNC");
                resume = Some(FullResync {
                    replid,
                    offset: st.offset,
                });
                outage = Some(Instant::now());
            }
            _ => break (result, acker, ack_stop),
        }
    };
    let route = sink.route_stats();
    let outcome = match result {
        Ok(()) => {
            let grace = Duration::from_secs(args.grace);
            match tokio::time::timeout(grace, sink.finish()).await {
                Ok(r) => r.map_err(Fatal::target),
                Err(_) => {
                    tracing::warn!(grace_secs = args.grace, "grace period over with commands still in flight; they are not acknowledged to the source");
                    Ok(())
                }
            }
        }
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
    let route = route.unwrap_or_default();
    tracing::info!(
        applied_offset = applied.offset(),
        commands = applied.commands(),
        key_errors = applied.key_errors(),
        split_commands = route.split_commands,
        split_transactions = route.split_transactions,
        unsplittable = route.unsplittable,
        "sync stopped"
    );
    outcome
}

/// A cluster destination only has db 0: refuse a source with keys in dbs not mapped to it.
fn check_source_dbs(source: &SourceInfo, dbs: &DbMap) -> Result<(), Fatal> {
    let unmapped: Vec<u64> = source
        .dbs
        .iter()
        .copied()
        .filter(|db| !dbs.maps(*db))
        .collect();
    if unmapped.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = unmapped.iter().map(u64::to_string).collect();
    let example = unmapped[0];
    Err(Fatal::target(format!(
        "the destination is a Redis Cluster, which has only db 0, and the source has keys in db {}; map them with --db-map {example}:0 (one SRC:0 per db) or --all-dbs-to 0",
        list.join(", ")
    )))
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
