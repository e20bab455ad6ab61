//! `replicant load FILE.rdb`: the same parser, planner and writer as `sync`, fed from a file in
//! chunks (the file is never read whole).

use bytes::BytesMut;
use replay::cmd::Op;
use replay::dest::{Sink, SinkError};
use replay::pipeline::{Barrier, Deliver, DriveError, Feed, SnapshotStage};
use replay::plan::RdbPlanner;
use replay::rdb::Limits;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::apply;
use crate::cli::LoadArgs;
use crate::fatal::Fatal;

const READ_CHUNK: usize = 256 * 1024;

pub async fn run(args: LoadArgs, stop: CancellationToken) -> Result<(), Fatal> {
    let name = args.file.display().to_string();
    let file_err = |e: &dyn std::fmt::Display| Fatal::other(format!("{name}: {e}"));
    let file = tokio::fs::File::open(&args.file)
        .await
        .map_err(|e| file_err(&e))?;
    let dest = apply::open(&args.apply, std::time::Duration::from_secs(600)).await?;
    let mut pipeline = dest.pipeline();
    let apply::Destination {
        caps, sink, batch, ..
    } = dest;
    let applied = sink.applied();
    let planner = RdbPlanner::new(caps, args.apply.restore_max_bytes, batch);
    let mut stage = SnapshotStage::new(
        Limits {
            whole_value_max: args.apply.restore_max_bytes,
            ..Limits::default()
        },
        planner,
    );
    let mut buf = BytesMut::with_capacity(READ_CHUNK * 2);
    let mut feed = FileFeed {
        file,
        tx: sink,
        stop,
        name: &name,
    };
    let result = pipeline
        .drive(&mut stage, &mut buf, &mut feed)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            DriveError::Plan(e) => file_err(&e),
            DriveError::Feed(e) => e,
        });
    let drained = feed.tx.finish().await;
    result?;
    drained.map_err(Fatal::target)?;
    if !buf.is_empty() {
        tracing::warn!(bytes = buf.len(), "bytes after the end of the RDB ignored");
    }
    let s = stage.stats();
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

/// `load`'s side of the pipeline: the file read in chunks, batches to the sink.
struct FileFeed<'a> {
    file: tokio::fs::File,
    tx: Sink,
    stop: CancellationToken,
    name: &'a str,
}

impl Deliver for FileFeed<'_> {
    type Error = Fatal;

    async fn deliver(&mut self, ops: Vec<Op>) -> Result<(), Fatal> {
        match self.tx.send(ops).await {
            // A closed queue means a writer stopped: `finish` reports why.
            Ok(()) | Err(SinkError::Closed(_)) => Ok(()),
            Err(SinkError::Route(e)) => Err(Fatal::target(e)),
            Err(SinkError::Dest(e)) => Err(Fatal::target(e)),
        }
    }

    async fn barrier(&mut self, b: Barrier) -> Result<(), Fatal> {
        Err(Fatal::other(format!(
            "{}: {b:?} in an RDB file (only a cluster shard's stream has barriers)",
            self.name
        )))
    }
}

impl Feed<SnapshotStage> for FileFeed<'_> {
    async fn more(&mut self, stage: &SnapshotStage, buf: &mut BytesMut) -> Result<bool, Fatal> {
        if buf.capacity() - buf.len() < READ_CHUNK {
            buf.reserve(READ_CHUNK);
        }
        let n = tokio::select! {
            r = self.file.read_buf(buf) => r.map_err(|e| Fatal::other(format!("{}: {e}", self.name)))?,
            _ = self.stop.cancelled() => return Err(Fatal::other("interrupted")),
        };
        if n == 0 {
            // The file ended before the RDB did.
            stage
                .finish(buf)
                .map_err(|e| Fatal::other(format!("{}: {e}", self.name)))?;
            return Ok(false);
        }
        Ok(true)
    }
}
