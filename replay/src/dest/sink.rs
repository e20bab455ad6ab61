//! Where the planner's and the stream's commands go: one writer (a standalone destination), or
//! a router in front of one writer per master (a cluster). Either way the sink is bounded, and
//! the applied offset is the smallest of its writers'.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{Closed, Op, OpSender, Progress};
use crate::cluster::{RouteError, RouteStats, Router};

/// Why a batch could not be handed over.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Closed(#[from] Closed),
    #[error(transparent)]
    Route(#[from] RouteError),
}

/// The feeding end of the destination.
#[derive(Debug)]
pub enum Sink {
    Single(OpSender),
    Cluster {
        router: Router,
        nodes: Vec<OpSender>,
    },
}

impl Sink {
    /// Hands a batch over, waiting while the destination's queues are full.
    pub async fn send(&mut self, ops: Vec<Op>) -> Result<(), SinkError> {
        match self {
            Sink::Single(tx) => Ok(tx.send(ops).await?),
            Sink::Cluster { router, nodes } => {
                let mut out: Vec<Vec<Op>> = nodes.iter().map(|_| Vec::new()).collect();
                router.route(ops, &mut out)?;
                for (tx, batch) in nodes.iter().zip(out) {
                    tx.send(batch).await?;
                }
                Ok(())
            }
        }
    }

    /// Resolves when a writer has stopped.
    pub async fn closed(&self) {
        match self {
            Sink::Single(tx) => tx.closed().await,
            Sink::Cluster { nodes, .. } => loop {
                if nodes.iter().any(OpSender::is_closed) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            },
        }
    }

    /// What the router did (cluster destinations).
    pub fn route_stats(&self) -> Option<&RouteStats> {
        match self {
            Sink::Single(_) => None,
            Sink::Cluster { router, .. } => Some(&router.stats),
        }
    }
}

/// The progress of every writer of a destination.
#[derive(Debug, Clone, Default)]
pub struct Applied(pub Vec<Arc<Progress>>);

impl Applied {
    /// The source offset the whole destination has applied: the smallest of its writers'.
    pub fn offset(&self) -> u64 {
        self.0.iter().map(|p| p.applied()).min().unwrap_or(0)
    }

    pub fn commands(&self) -> u64 {
        self.0
            .iter()
            .map(|p| p.commands.load(Ordering::Relaxed))
            .sum()
    }

    pub fn key_errors(&self) -> u64 {
        self.0
            .iter()
            .map(|p| p.key_errors.load(Ordering::Relaxed))
            .sum()
    }
}
