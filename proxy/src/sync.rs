//! `replicant sync`: destination first (capabilities, writer), then the replica link, then
//! snapshot and stream until a signal; on the way out, drain what is in flight within the grace
//! period and send the source a last ACK of what the destination applied.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use replay::rdb::Limits;
use tokio_util::sync::CancellationToken;

use crate::apply;
use crate::cli::SyncArgs;
use crate::config::Side;
use crate::fatal::Fatal;
use crate::source::acker::{self, AckState};
use crate::source::link::{Link, LinkConfig};
use crate::source::SourceError;

pub async fn run(args: SyncArgs, stop: CancellationToken) -> Result<(), Fatal> {
    let source = apply::endpoint(&args.source, Side::Source)?;
    let dest = apply::open(&args.apply).await?;
    let cfg = LinkConfig {
        endpoint: source.clone(),
        connect_timeout: Duration::from_secs(args.apply.connect_timeout.max(1)),
        listening_port: args.listening_port,
        read_timeout: Duration::from_secs(args.source_timeout.max(1)),
        limits: Limits {
            whole_value_max: args.apply.restore_max_bytes,
            ..Limits::default()
        },
        restore_max: args.apply.restore_max_bytes,
        batch: dest.batch,
    };
    tracing::info!(source = %source, "connecting to the source as a replica");
    let mut link = tokio::select! {
        l = Link::connect(cfg) => l.map_err(Fatal::source)?,
        _ = stop.cancelled() => {
            dest.writer.finish().await.map_err(Fatal::target)?;
            return Ok(());
        }
    };
    let ack = Arc::new(AckState::default());
    let ack_stop = CancellationToken::new();
    let acker = link.take_writer().map(|wr| {
        tokio::spawn(acker::run(
            wr,
            ack.clone(),
            dest.progress.clone(),
            ack_stop.clone(),
        ))
    });
    let tx = dest.writer.sender();
    let result = link
        .run(
            dest.caps,
            tx,
            dest.progress.clone(),
            ack.clone(),
            stop.clone(),
        )
        .await;
    let progress = dest.progress.clone();
    let outcome = match result {
        Ok(()) => {
            let grace = Duration::from_secs(args.grace);
            match tokio::time::timeout(grace, dest.writer.finish()).await {
                Ok(r) => r.map_err(Fatal::target),
                Err(_) => {
                    tracing::warn!(grace_secs = args.grace, "grace period over with commands still in flight; they are not acknowledged to the source");
                    Ok(())
                }
            }
        }
        Err(SourceError::WriterGone) => {
            Err(Fatal::target(dest.writer.finish().await.err().map_or(
                "the destination writer stopped".to_string(),
                |e| e.to_string(),
            )))
        }
        Err(e) => {
            dest.writer.abort();
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
    tracing::info!(
        applied_offset = progress.applied(),
        commands = progress.commands.load(Ordering::Relaxed),
        key_errors = progress.key_errors.load(Ordering::Relaxed),
        "sync stopped"
    );
    outcome
}
