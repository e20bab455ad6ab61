//! The destination side of the pipeline: connecting to the destination, learning what it can
//! take ([`Caps`]), and the pipelined [`writer`] that applies commands with a bounded in-flight
//! window and reports, through [`Progress`], which source offset the destination has applied.

pub mod queue;
pub mod reply;
pub mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use queue::{Closed, OpSender};
pub use writer::{Op, Writer, WriterConfig};

use crate::net::{connect_and_auth, ConnectError, Endpoint};
use crate::plan::caps::info_field;
use crate::plan::Caps;
use crate::resp::{frame_error, frame_text, ConnError};

/// Why the destination stopped the run.
#[derive(Debug, thiserror::Error)]
pub enum DestError {
    #[error("{0}")]
    Connect(#[from] ConnectError),
    #[error("{0}")]
    Conn(#[from] ConnError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{cmd}{} refused: {reply}", key.as_deref().map(|k| format!(" of key {k}")).unwrap_or_default())]
    Refused {
        cmd: String,
        key: Option<String>,
        reply: String,
    },
    #[error("{0}")]
    Unsupported(String),
}

/// Counters of what the destination has applied, shared with whoever reports progress.
#[derive(Debug, Default)]
pub struct Progress {
    /// The source replication offset up to which the destination has replied to everything.
    pub applied_offset: AtomicU64,
    pub commands: AtomicU64,
    pub bytes: AtomicU64,
    pub key_errors: AtomicU64,
}

impl Progress {
    pub fn applied(&self) -> u64 {
        self.applied_offset.load(Ordering::Acquire)
    }
}

/// Connects to the destination and reads its capabilities. A cluster is refused for now.
pub async fn probe(ep: &Endpoint, timeout: Duration) -> Result<Caps, DestError> {
    let mut conn = connect_and_auth(ep, timeout).await?;
    let info = conn.call(&["INFO", "server"]).await?;
    if let Some(e) = frame_error(&info) {
        return Err(DestError::Refused {
            cmd: "INFO server".into(),
            key: None,
            reply: e,
        });
    }
    let caps = Caps::from_info(&frame_text(&info)).map_err(DestError::Unsupported)?;
    let cluster = conn.call(&["INFO", "cluster"]).await?;
    if info_field(&frame_text(&cluster), "cluster_enabled") == Some("1") {
        return Err(DestError::Unsupported(format!(
            "{ep} is a Redis Cluster node; cluster destinations are not supported yet"
        )));
    }
    Ok(caps)
}
