//! Where the planner's and the stream's commands go: one writer (a standalone destination, see
//! [`super::single_sink`]), or the cluster sink (a router in front of one writer per master, see
//! [`super::cluster_sink`]).
//! Either way the sink is bounded and reports the offset the whole destination has applied.

use std::time::Duration;

use super::cluster_sink::{Applied, ClusterSink};
use super::once::StateKeys;
use super::single_sink::SingleSink;
use super::{Closed, DestError};
use crate::cluster::RouteError;
use crate::cmd::Op;
use crate::net::Endpoint;
use crate::plan::slots::CrossSlot;

/// Why a batch could not be handed over.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Closed(#[from] Closed),
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Dest(#[from] DestError),
}

/// The feeding end of the destination.
#[derive(Debug)]
pub enum Sink {
    Single(Box<SingleSink>),
    Cluster(Box<ClusterSink>),
}

impl Sink {
    pub fn single(sink: SingleSink) -> Sink {
        Sink::Single(Box::new(sink))
    }

    /// Hands a batch over, waiting while the destination's queues are full.
    pub async fn send(&mut self, ops: Vec<Op>) -> Result<(), SinkError> {
        match self {
            Sink::Single(s) => s.send(ops).await,
            Sink::Cluster(c) => c.send(ops).await,
        }
    }

    /// Waits until the destination has answered every command handed over so far.
    pub async fn drain(&mut self) -> Result<(), SinkError> {
        match self {
            Sink::Single(s) => s.drain().await,
            Sink::Cluster(c) => Ok(c.drain().await?),
        }
    }

    /// Applies a write whose keys span slots of a cluster destination from its effect, once
    /// everything before it is applied.
    pub async fn apply_cross_slot(&mut self, c: &CrossSlot) -> Result<(), SinkError> {
        match self {
            Sink::Single(_) => Err(SinkError::Dest(DestError::Unsupported(
                "a write planned for a cluster reached a standalone destination".into(),
            ))),
            Sink::Cluster(s) => Ok(s.apply_cross_slot(c).await?),
        }
    }

    /// Forgets the source offsets seen so far: a new stream starts (after [`Sink::drain`]).
    /// Nothing is recorded for exactly-once delivery until [`Sink::begin_stream`].
    pub fn forget_offsets(&mut self) {
        match self {
            Sink::Single(s) => s.end_stream(),
            Sink::Cluster(c) => {
                c.forget_offsets();
                c.end_stream();
            }
        }
    }

    /// Delivers the stream exactly once, recorded in the state keys `keys` on the destination
    /// (`None`: at least once). See [`super::once`].
    pub fn set_exactly_once(&mut self, keys: Option<StateKeys>) {
        match self {
            Sink::Single(s) => s.set_exactly_once(keys),
            Sink::Cluster(c) => c.set_exactly_once(keys),
        }
    }

    /// A stream of `replid` starts at `offset`; `read_back`: it continues one (PSYNC), so
    /// what the destination recorded beyond `offset` is read back and not sent again.
    pub async fn begin_stream(
        &mut self,
        replid: &str,
        offset: u64,
        read_back: bool,
    ) -> Result<(), SinkError> {
        match self {
            Sink::Single(s) => Ok(s.begin_stream(replid, offset, read_back).await?),
            Sink::Cluster(c) => Ok(c.begin_stream(replid, offset, read_back).await?),
        }
    }

    /// Commands not sent because the destination held them already (exactly-once delivery).
    pub fn skipped(&self) -> u64 {
        match self {
            Sink::Single(s) => s.ledger().map_or(0, |l| l.skipped),
            Sink::Cluster(c) => c.ledger().map_or(0, |l| l.skipped),
        }
    }

    /// The servers written to (every master of a cluster).
    pub fn nodes(&self) -> Vec<Endpoint> {
        match self {
            Sink::Single(s) => vec![s.endpoint().clone()],
            Sink::Cluster(c) => c.nodes(),
        }
    }

    /// Resolves when the sink needs [`Sink::service`]: a writer stopped, or (cluster) commands
    /// came back to be sent again.
    pub async fn attention(&self) {
        match self {
            Sink::Single(s) => s.attention().await,
            Sink::Cluster(c) => {
                while !c.needs_recovery() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// Does what [`Sink::attention`] asked for.
    pub async fn service(&mut self) -> Result<(), SinkError> {
        match self {
            Sink::Single(s) => Ok(s.recover().await?),
            Sink::Cluster(c) => Ok(c.recover().await?),
        }
    }

    pub fn applied(&self) -> Applied {
        match self {
            Sink::Single(s) => s.applied(),
            Sink::Cluster(c) => c.applied(),
        }
    }

    /// Closes the input, waits until the destination has answered everything.
    pub async fn finish(self) -> Result<(), DestError> {
        match self {
            Sink::Single(s) => s.finish().await,
            Sink::Cluster(c) => c.finish().await,
        }
    }

    pub fn abort(&self) {
        match self {
            Sink::Single(s) => s.abort(),
            Sink::Cluster(c) => c.abort(),
        }
    }
}
