//! The destination side of the pipeline: connecting to the destination, learning what it can
//! take ([`Caps`]), and the pipelined [`writer`] that applies commands with a bounded in-flight
//! window and reports, through [`Progress`], which source offset the destination has applied.

pub mod cluster_sink;
pub mod effect;
pub mod once;
pub mod queue;
pub mod recovery;
pub mod reply;
pub mod single_sink;
pub mod sink;
pub mod stall;
pub mod tx_track;
pub mod writer;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

pub use cluster_sink::{Applied, ClusterSink};
pub use queue::{Closed, OpSender};
pub use single_sink::SingleSink;
pub use sink::{Sink, SinkError};
pub use writer::{Writer, WriterConfig};

use crate::cluster::commands::CommandTable;
use crate::cluster::topology::{self, Topology};
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
    #[error(transparent)]
    Route(#[from] crate::cluster::RouteError),
}

/// Counters of what the destination has applied, shared with whoever reports progress.
#[derive(Debug, Default)]
pub struct Progress {
    /// The source replication offset up to which the destination has replied to everything.
    pub applied_offset: AtomicU64,
    pub commands: AtomicU64,
    pub bytes: AtomicU64,
    pub key_errors: AtomicU64,
    /// Commands handed to the writer and not yet answered (or handed back).
    pub outstanding: AtomicI64,
    /// Bytes of those commands.
    pub outstanding_bytes: AtomicI64,
    /// The server written to (`host:port`), for per-node reports.
    pub node: String,
    /// The db selected by every command answered or handed back so far (in the order sent).
    pub db: AtomicU64,
    /// The node has answered nothing for `--target-timeout` while replies are due.
    pub stalled: std::sync::atomic::AtomicBool,
    /// The connection is lost: the writer is handing back what it did not get an answer for
    /// (it counts as stopped from then on, not as idle, until it has finished).
    pub lost: std::sync::atomic::AtomicBool,
}

impl Progress {
    /// The progress of a writer to `node`.
    pub fn for_node(node: String) -> Self {
        Progress {
            node,
            ..Progress::default()
        }
    }

    pub fn applied(&self) -> u64 {
        self.applied_offset.load(Ordering::Acquire)
    }

    /// `cmds` commands of `bytes` bytes handed to the writer (negative: taken back).
    pub fn queued(&self, cmds: i64, bytes: i64) {
        self.outstanding.fetch_add(cmds, Ordering::AcqRel);
        self.outstanding_bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    /// One command of `bytes` bytes answered or handed back.
    pub fn answered(&self, bytes: usize) {
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
        self.outstanding_bytes
            .fetch_sub(bytes as i64, Ordering::AcqRel);
    }
}

/// What the destination is.
#[derive(Debug, Clone)]
pub struct Target {
    pub caps: Caps,
    /// The slot map, when the destination is a Redis Cluster.
    pub cluster: Option<Topology>,
    /// Its command table (cluster destinations: where each command's keys are).
    pub commands: Option<std::sync::Arc<CommandTable>>,
}

/// Connects to the destination and reads its capabilities, and its slot map if it is a
/// cluster (`CLUSTER SHARDS`, or `CLUSTER SLOTS` before Redis 7.0).
pub async fn probe(ep: &Endpoint, timeout: Duration) -> Result<Target, DestError> {
    // A node that accepts connections but answers nothing (stopped) is a timeout.
    tokio::time::timeout(timeout.saturating_mul(3), probe_node(ep, timeout))
        .await
        .map_err(|_| {
            DestError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{ep} did not answer within {} s", timeout.as_secs() * 3),
            ))
        })?
}

async fn probe_node(ep: &Endpoint, timeout: Duration) -> Result<Target, DestError> {
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
    if info_field(&frame_text(&cluster), "cluster_enabled") != Some("1") {
        return Ok(Target {
            caps,
            cluster: None,
            commands: None,
        });
    }
    let shards = conn.call(&["CLUSTER", "SHARDS"]).await?;
    let topo = if frame_error(&shards).is_none() {
        topology::from_shards(&shards, ep.tls.is_some())
    } else {
        let slots = conn.call(&["CLUSTER", "SLOTS"]).await?;
        if let Some(e) = frame_error(&slots) {
            return Err(DestError::Refused {
                cmd: "CLUSTER SLOTS".into(),
                key: None,
                reply: e,
            });
        }
        topology::from_slots(&slots)
    }
    .map_err(DestError::Unsupported)?;
    if topo.unassigned() > 0 {
        return Err(DestError::Unsupported(format!(
            "the destination cluster leaves {} of 16384 slots without a master",
            topo.unassigned()
        )));
    }
    let table = conn.call(&["COMMAND"]).await?;
    if let Some(e) = frame_error(&table) {
        return Err(DestError::Refused {
            cmd: "COMMAND (the key positions of every command, for routing)".into(),
            key: None,
            reply: e,
        });
    }
    let commands = CommandTable::from_reply(&table).map_err(DestError::Unsupported)?;
    Ok(Target {
        caps,
        cluster: Some(topo),
        commands: Some(std::sync::Arc::new(commands)),
    })
}
