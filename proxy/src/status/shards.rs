//! The source streams a run follows, as the reports that speak for the whole process see them
//! (`/metrics`, `/readyz`, the admin port's INFO and CUTOVER): one for a standalone source or
//! one shard (`--source-shard`), one per master shard for a whole cluster source. Each has its
//! own [`Status`] and its own source to pause; a label names it (its slot range at the start,
//! empty when there is only the one stream).

use std::sync::{Arc, RwLock};

use super::admin::CutoverSource;
use super::Status;

/// One stream: its label, status and source.
#[derive(Debug, Clone)]
pub struct Stream {
    pub label: String,
    pub status: Arc<Status>,
    pub cut: CutoverSource,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Streams(RwLock<Vec<Stream>>);

impl Streams {
    pub fn add(&self, s: Stream) {
        match self.0.write() {
            Ok(mut v) => v.push(s),
            Err(p) => p.into_inner().push(s),
        }
    }

    /// The streams now, in the order they were added.
    pub fn list(&self) -> Vec<Stream> {
        match self.0.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Every stream ready (and at least one).
    pub fn ready(&self) -> bool {
        let l = self.list();
        !l.is_empty() && l.iter().all(|s| s.status.ready())
    }
}
