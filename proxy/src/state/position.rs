//! Where the destination stands in the source's stream, as the checkpoint must say it: the
//! replication id of the stream being applied, the applied offset (from the destination's
//! writers), and the db the source had selected at that offset — SELECTs are remembered with
//! the offset they take effect at, so the db is the one of the applied offset, not of the
//! offset read (which runs ahead).
//!
//! While a snapshot is copied, every writer's applied offset holds [`COPYING`]: the
//! destination is incomplete until the offset after the snapshot is applied.

use std::collections::VecDeque;
use std::sync::Mutex;

use replay::dest::Applied;

use super::checkpoint::Stand;

/// The applied offset while a snapshot is being copied.
pub const COPYING: u64 = u64::MAX;

#[derive(Debug, Default)]
struct Inner {
    replid: Option<String>,
    /// The db selected at the applied offset, when known.
    base_db: Option<u64>,
    /// SELECTs read and not yet applied: (offset after the SELECT, db).
    selects: VecDeque<(u64, u64)>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Position {
    inner: Mutex<Inner>,
    applied: Applied,
}

impl Position {
    pub fn new(applied: Applied) -> Self {
        Position {
            inner: Mutex::new(Inner::default()),
            applied,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A snapshot copy starts (nothing may be in flight to the destination).
    pub fn begin_copy(&self) {
        let mut g = self.lock();
        self.applied.reset(COPYING);
        *g = Inner::default();
    }

    /// The stream `replid` is applied up to `offset` (a run continuing from a checkpoint).
    pub fn resume(&self, replid: &str, offset: u64, db: Option<u64>) {
        let mut g = self.lock();
        self.applied.reset(offset);
        *g = Inner {
            replid: Some(replid.to_string()),
            base_db: db,
            selects: VecDeque::new(),
        };
    }

    /// The stream being read is `replid` from now on (after a snapshot, or a source that
    /// continued the stream under a new id).
    pub fn set_replid(&self, replid: &str) {
        self.lock().replid = Some(replid.to_string());
    }

    /// The source selected `db`, effective from `offset`.
    pub fn selected(&self, offset: u64, db: u64) {
        self.lock().selects.push_back((offset, db));
    }

    /// What a checkpoint taken now must say.
    pub fn stand(&self) -> Stand {
        let mut g = self.lock();
        let offset = self.applied.offset();
        let Some(replid) = g.replid.clone() else {
            return Stand::Copying;
        };
        if offset == COPYING {
            return Stand::Copying;
        }
        while g.selects.front().is_some_and(|(at, _)| *at <= offset) {
            if let Some((_, db)) = g.selects.pop_front() {
                g.base_db = Some(db);
            }
        }
        Stand::Streaming {
            replid,
            offset,
            db: g.base_db,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay::dest::Progress;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn db_follows_the_applied_offset() {
        let p = Arc::new(Progress::default());
        let pos = Position::new(Applied::new(vec![p.clone()]));
        pos.begin_copy();
        pos.set_replid("r");
        assert_eq!(pos.stand(), Stand::Copying);
        p.applied_offset.store(100, Ordering::Release);
        pos.selected(150, 3);
        pos.selected(300, 5);
        let at = |offset, db| Stand::Streaming {
            replid: "r".into(),
            offset,
            db,
        };
        assert_eq!(pos.stand(), at(100, None));
        p.applied_offset.store(200, Ordering::Release);
        assert_eq!(pos.stand(), at(200, Some(3)));
        p.applied_offset.store(300, Ordering::Release);
        assert_eq!(pos.stand(), at(300, Some(5)));
        pos.begin_copy();
        assert_eq!(pos.stand(), Stand::Copying);
    }
}
