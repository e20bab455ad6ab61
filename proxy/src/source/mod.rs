//! The source link: replicant registers with the source as a replica and reads what a replica
//! reads — the handshake ([`handshake`]), the RDB transfer in either form ([`transfer`]), then
//! the replication stream ([`stream`]) — while [`acker`] reports the applied offset back.
//! [`link`] drives them and hands commands to the destination writer.

pub mod acker;
pub mod handshake;
pub mod link;
pub mod stream;
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
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The destination cluster cannot take a command (e.g. a write to an unmapped db).
    #[error("{0}")]
    Route(#[from] replay::cluster::RouteError),
    /// The destination failed while being tended (cluster recovery gave up).
    #[error("{0}")]
    Dest(#[from] replay::dest::DestError),
    /// The destination writer stopped; its own error says why.
    #[error("the destination writer stopped")]
    WriterGone,
}
