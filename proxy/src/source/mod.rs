//! The source link: replicant registers with the source as a replica and reads what a replica
//! reads — the handshake ([`handshake`]), the RDB transfer in either form ([`transfer`]), then
//! the replication stream — while [`acker`] reports the applied offset back. [`link`] drives
//! them and feeds the bytes to `replay`'s pipeline. [`probe`] reads what the
//! run needs to know of the source first, on a control connection.

pub mod acker;
pub mod feed;
pub mod handshake;
pub mod link;
pub mod migrations;
pub mod probe;
pub mod shard;
pub mod transfer;

use replay::net::ConnectError;
use replay::rdb::RdbError;
use replay::resp::ConnError;

/// Why the source link stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Connect(#[from] ConnectError),
    #[error("{0}")]
    Conn(#[from] ConnError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Rdb(#[from] RdbError),
    #[error("{0}")]
    Refused(String),
    /// The source cannot serve a replica for now (loading its data, a busy script, a replica
    /// whose own master is down): worth waiting for, like a lost link.
    #[error("{0}")]
    Unready(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("nothing received from the source for {0} s")]
    Silent(u64),
    /// The destination cluster cannot take a command (a slot without a master).
    #[error("{0}")]
    Route(#[from] replay::cluster::RouteError),
    /// A write a cluster destination cannot hold (to an unmapped db).
    #[error("{0}")]
    Slot(#[from] replay::plan::slots::SlotError),
    /// The destination failed while being tended (cluster recovery gave up).
    #[error("{0}")]
    Dest(#[from] replay::dest::DestError),
    /// The spool between the socket and the planner ended: the link was lost (closed, reset,
    /// silent) or a spool file failed.
    #[error("{0}")]
    Spool(crate::spool::SpoolEnd),
    /// The state directory could not be written.
    #[error("{0}")]
    State(String),
    /// The destination writer stopped; its own error says why.
    #[error("the destination writer stopped")]
    WriterGone,
}

impl SourceError {
    /// The link was lost (closed, reset, silent): worth reconnecting and asking to continue.
    pub fn is_link_loss(&self) -> bool {
        matches!(
            self,
            SourceError::Io(_)
                | SourceError::Silent(_)
                | SourceError::Unready(_)
                | SourceError::Conn(replay::resp::ConnError::Closed)
                | SourceError::Conn(replay::resp::ConnError::Io(_))
                | SourceError::Spool(
                    crate::spool::SpoolEnd::Closed
                        | crate::spool::SpoolEnd::Io(_)
                        | crate::spool::SpoolEnd::Silent(_)
                )
        ) || matches!(self, SourceError::Connect(e) if e.is_transient())
    }
}
