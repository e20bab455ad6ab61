//! Writes the checkpoint: once a second while the run goes on (when it changed), at once when
//! a copy starts (before anything on the destination is replaced), and at shutdown.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::checkpoint::{Checkpoint, CheckpointError, Stand};
use super::position::Position;

/// Saves the checkpoint of one pair of servers.
#[derive(Debug)]
pub struct Checkpointer {
    path: PathBuf,
    source: String,
    target: String,
    pub position: Arc<Position>,
    last: Mutex<Option<Stand>>,
    /// The node the stream is read from now.
    node: Mutex<Option<String>>,
}

impl Checkpointer {
    pub fn new(path: PathBuf, source: String, target: String, position: Arc<Position>) -> Self {
        Checkpointer {
            path,
            source,
            target,
            position,
            last: Mutex::new(None),
            node: Mutex::new(None),
        }
    }

    /// The node the stream is read from now (recorded with the next change of stand).
    pub fn set_node(&self, node: String) {
        *self.node.lock().unwrap_or_else(|p| p.into_inner()) = Some(node);
    }

    /// Writes where the destination stands now, if that changed since the last write.
    /// Returns what was written.
    pub fn save(&self) -> Result<Option<Stand>, CheckpointError> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let stand = self.position.stand();
        if last.as_ref() == Some(&stand) {
            return Ok(None);
        }
        Checkpoint {
            source: self.source.clone(),
            target: self.target.clone(),
            stand: stand.clone(),
            node: self.node.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
        .save(&self.path)?;
        *last = Some(stand.clone());
        Ok(Some(stand))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// Saves once a second until `stop`; a failing disk is reported (once until it recovers) and
/// the run goes on, since the checkpoint only shortens a later restart.
pub async fn run(ck: Arc<Checkpointer>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let c = ck.clone();
        let r = tokio::task::spawn_blocking(move || c.save()).await;
        match r {
            Ok(Ok(_)) => failing = false,
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::error!(error = %e, "cannot save the checkpoint; a restart would continue from an older one");
            }
            Ok(Err(_)) => {}
            Err(e) => tracing::error!(error = %e, "the checkpoint task failed"),
        }
    }
}
