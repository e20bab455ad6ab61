//! `replicant load FILE.rdb`: the same parser, planner and writer as `sync`, fed from a file in
//! chunks (the file is never read whole).

use bytes::BytesMut;
use replay::cmd::Op;
use replay::plan::RdbPlanner;
use replay::rdb::{Limits, RdbParser};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::apply;
use crate::cli::LoadArgs;
use crate::fatal::Fatal;

const READ_CHUNK: usize = 256 * 1024;

pub async fn run(args: LoadArgs, stop: CancellationToken) -> Result<(), Fatal> {
    let name = args.file.display().to_string();
    let file_err = |e: &dyn std::fmt::Display| Fatal::other(format!("{name}: {e}"));
    let mut file = tokio::fs::File::open(&args.file)
        .await
        .map_err(|e| file_err(&e))?;
    let apply::Destination {
        caps, sink, batch, ..
    } = apply::open(&args.apply, std::time::Duration::from_secs(600)).await?;
    let applied = sink.applied();
    let mut tx = sink;
    let mut parser = RdbParser::new(Limits {
        whole_value_max: args.apply.restore_max_bytes,
        ..Limits::default()
    });
    let mut planner = RdbPlanner::new(caps, args.apply.restore_max_bytes, batch);
    let mut buf = BytesMut::with_capacity(READ_CHUNK * 2);
    let mut cmds = Vec::new();
    let mut ops: Vec<Op> = Vec::new();
    let mut batch_bytes = 0usize;
    let result: Result<(), Fatal> = async {
        loop {
            while let Some(ev) = parser.next(&mut buf).map_err(|e| file_err(&e))? {
                planner.plan(ev, &mut cmds).map_err(|e| file_err(&e))?;
                batch_bytes += cmds.iter().map(|c| c.len()).sum::<usize>();
                ops.extend(cmds.drain(..).map(Op::Cmd));
                if ops.len() >= 512 || batch_bytes >= 1 << 20 {
                    send(&mut tx, &mut ops).await?;
                    batch_bytes = 0;
                }
            }
            if parser.is_done() {
                break;
            }
            send(&mut tx, &mut ops).await?;
            batch_bytes = 0;
            if buf.capacity() - buf.len() < READ_CHUNK {
                buf.reserve(READ_CHUNK);
            }
            let n = tokio::select! {
                r = file.read_buf(&mut buf) => r.map_err(|e| file_err(&e))?,
                _ = stop.cancelled() => return Err(Fatal::other("interrupted")),
            };
            if n == 0 {
                return parser.finish(&buf).map_err(|e| file_err(&e));
            }
        }
        send(&mut tx, &mut ops).await
    }
    .await;
    let drained = tx.finish().await;
    result?;
    drained.map_err(Fatal::target)?;
    if !buf.is_empty() {
        tracing::warn!(bytes = buf.len(), "bytes after the end of the RDB ignored");
    }
    let s = &planner.stats;
    println!(
        "loaded {name}: {} keys restored, {} rewritten ({} big), {} expired skipped, {} functions, {} field TTLs dropped, {} key errors",
        s.keys_restored,
        s.keys_rewritten,
        s.keys_big,
        s.keys_expired,
        s.functions,
        s.field_ttls_dropped,
        applied.key_errors()
    );
    Ok(())
}

async fn send(tx: &mut replay::dest::Sink, ops: &mut Vec<Op>) -> Result<(), Fatal> {
    if ops.is_empty() {
        return Ok(());
    }
    let batch = std::mem::take(ops);
    match tx.send(batch).await {
        // A closed queue means a writer stopped: `finish` reports why.
        Ok(()) | Err(replay::dest::SinkError::Closed(_)) => Ok(()),
        Err(replay::dest::SinkError::Route(e)) => Err(Fatal::target(e)),
        Err(replay::dest::SinkError::Dest(e)) => Err(Fatal::target(e)),
    }
}
