//! The state directory (`--state-dir`): what lets a run continue where another stopped. It
//! holds the [`checkpoint`] (the source's replication id and the offset the destination has
//! applied, tagged with the pair of servers) and the spool's segment files. replicant creates
//! the directory if needed and only ever removes files it wrote there itself.
//!
//! [`position`] tracks, while the run goes on, what the checkpoint must say; [`saver`] writes
//! it once a second and at shutdown.

pub mod checkpoint;
pub mod position;
pub mod saver;

use std::fs;
use std::path::{Path, PathBuf};

use checkpoint::{Checkpoint, Stand};

use crate::fatal::Fatal;

/// An opened state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Creates the directory (and its parents) if missing.
    pub fn open(root: &Path) -> Result<StateDir, Fatal> {
        fs::create_dir_all(root).map_err(|e| {
            Fatal::other(format!(
                "cannot create the state directory {}: {e}",
                root.display()
            ))
        })?;
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        self.root.join("checkpoint")
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.root.join("spool")
    }

    /// Removes spool files an earlier run left (it was stopped before it could): a new run
    /// continues from the checkpoint, never from them.
    pub fn remove_old_spool(&self) {
        let Ok(entries) = fs::read_dir(self.spool_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "spool") {
                let _ = fs::remove_file(&path);
            }
        }
    }

    /// The checkpoint left by an earlier run for this pair of servers. A checkpoint of
    /// another pair is refused: applying it would continue the wrong stream.
    pub fn load_for(&self, source: &str, target: &str) -> Result<Option<Checkpoint>, Fatal> {
        let path = self.checkpoint_path();
        let Some(c) = Checkpoint::load(&path).map_err(Fatal::other)? else {
            return Ok(None);
        };
        if c.source != source || c.target != target {
            return Err(Fatal::other(format!(
                "the state directory {} belongs to source {} and target {}, not to source {source} and target {target}: give this pair its own --state-dir",
                self.root.display(),
                c.source,
                c.target
            )));
        }
        match &c.stand {
            Stand::Copying => tracing::info!(
                checkpoint = %path.display(),
                "an earlier run stopped while copying the snapshot: the copy starts again"
            ),
            Stand::Streaming { replid, offset, .. } => tracing::info!(
                checkpoint = %path.display(),
                replid = %replid,
                offset,
                "continuing from the checkpoint of an earlier run"
            ),
        }
        Ok(Some(c))
    }
}
