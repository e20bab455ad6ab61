//! Setting up the destination side from the command line: endpoint, capabilities, writer.

use std::sync::Arc;
use std::time::Duration;

use replay::dest::{self, Progress, Writer, WriterConfig};
use replay::net::Endpoint;
use replay::plan::{BatchLimits, Caps};

use crate::cli::ApplyArgs;
use crate::config::{parse_endpoint, Side};
use crate::fatal::Fatal;

/// Parses a side's URL, taking the password from that side's environment variable if needed.
pub fn endpoint(url: &str, side: Side) -> Result<Endpoint, Fatal> {
    parse_endpoint(url, std::env::var(side.password_env()).ok()).map_err(|e| Fatal {
        side: Some(side),
        what: e,
    })
}

/// The destination, ready: its capabilities and a running writer.
pub struct Destination {
    pub caps: Caps,
    pub writer: Writer,
    pub progress: Arc<Progress>,
    pub batch: BatchLimits,
}

pub async fn open(a: &ApplyArgs) -> Result<Destination, Fatal> {
    if a.batch_elements == 0 || a.window_commands == 0 || a.window_bytes == 0 || a.queue_bytes == 0
    {
        return Err(Fatal::other(
            "--batch-elements, --window-commands, --window-bytes and --queue-bytes must be at least 1",
        ));
    }
    let ep = endpoint(&a.target, Side::Target)?;
    let timeout = Duration::from_secs(a.connect_timeout.max(1));
    let caps = dest::probe(&ep, timeout).await.map_err(Fatal::target)?;
    tracing::info!(target = %ep, version = ?caps.version, rdb_version = caps.rdb_version, "destination ready");
    let progress = Arc::new(Progress::default());
    let mut cfg = WriterConfig::new(ep);
    cfg.connect_timeout = timeout;
    cfg.window_cmds = a.window_commands;
    cfg.window_bytes = a.window_bytes;
    cfg.queue_bytes = a.queue_bytes;
    let writer = Writer::start(cfg, progress.clone())
        .await
        .map_err(Fatal::target)?;
    let batch = BatchLimits {
        elements: a.batch_elements,
        ..BatchLimits::default()
    };
    Ok(Destination {
        caps,
        writer,
        progress,
        batch,
    })
}
