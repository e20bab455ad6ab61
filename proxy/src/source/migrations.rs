//! Keys moving between the shards of a cluster source that this run follows whole (one
//! stream per shard, in one process). `MIGRATE` (a reshard) writes a key on the importing
//! shard — a `RESTORE-ASKING` in that shard's stream — before the exporting shard deletes its
//! copy — a `DEL` in its stream. The two streams are applied independently: the importing
//! shard's copy applied before the exporting shard's DEL (or before its earlier writes to the
//! key) would be deleted (or overwritten with an old value) on the destination. So a stream
//! at a `RESTORE-ASKING` waits here until another shard has applied a deletion of that key;
//! every stream reports the keys its `DEL`/`UNLINK`s delete.
//!
//! Bounded: deletions are kept for [`KEEP`] and at most [`MAX_KEYS`] at a time. A wait gives up
//! after its timeout (a MIGRATE with COPY, or one that failed half-way, deletes nothing) and
//! says so.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use replay::dest::Applied;

/// How long a deletion is kept for a migration to match it.
const KEEP: Duration = Duration::from_secs(120);
/// Deletions kept at most.
const MAX_KEYS: usize = 1_000_000;

#[derive(Debug, Default)]
struct Inner {
    /// Each shard's applied offsets, by shard index.
    applied: Vec<Option<Applied>>,
    /// key → (shard, the offset after its deletion).
    deleted: HashMap<Bytes, (usize, u64)>,
    /// Deletions in the order they came, for pruning.
    order: VecDeque<(Instant, Bytes)>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Migrations(Mutex<Inner>);

impl Migrations {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Shard `shard`'s applied offsets.
    pub fn register(&self, shard: usize, applied: Applied) {
        let mut i = self.inner();
        if i.applied.len() <= shard {
            i.applied.resize(shard + 1, None);
        }
        i.applied[shard] = Some(applied);
    }

    /// Shard `shard`'s stream deletes `keys`; the deletion is applied once its applied offset
    /// reaches `offset`.
    pub fn deleted(&self, shard: usize, offset: u64, keys: &[Bytes]) {
        let mut i = self.inner();
        let now = Instant::now();
        for k in keys {
            i.deleted.insert(k.clone(), (shard, offset));
            i.order.push_back((now, k.clone()));
        }
        while i
            .order
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > KEEP || i.order.len() > MAX_KEYS)
        {
            if let Some((_, k)) = i.order.pop_front() {
                if i.deleted
                    .get(&k)
                    .is_some_and(|(s, o)| *s == shard && *o <= offset)
                {
                    i.deleted.remove(&k);
                }
            }
        }
    }

    /// Waits until a shard other than `shard` has applied a deletion of `key` (`true`), or
    /// `timeout` passed (`false`).
    pub async fn wait_for(&self, shard: usize, key: &Bytes, timeout: Duration) -> bool {
        let start = Instant::now();
        loop {
            {
                let mut i = self.inner();
                if let Some(&(from, offset)) = i.deleted.get(key) {
                    let applied = i
                        .applied
                        .get(from)
                        .and_then(|a| a.as_ref())
                        .map_or(0, Applied::offset);
                    if from != shard && applied >= offset {
                        i.deleted.remove(key);
                        return true;
                    }
                }
            }
            if start.elapsed() > timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use replay::dest::Progress;

    use super::*;

    #[tokio::test]
    async fn a_migrated_key_waits_for_the_other_shards_deletion_to_be_applied() {
        let m = Migrations::default();
        let a = Arc::new(Progress::default());
        m.register(0, Applied::new(vec![a.clone()]));
        m.register(1, Applied::new(vec![Arc::new(Progress::default())]));
        let k = Bytes::from_static(b"k");
        // Not deleted anywhere: the wait gives up.
        assert!(!m.wait_for(1, &k, Duration::from_millis(50)).await);
        m.deleted(0, 100, std::slice::from_ref(&k));
        // Its own deletion does not count, nor one not applied yet.
        assert!(!m.wait_for(0, &k, Duration::from_millis(50)).await);
        assert!(!m.wait_for(1, &k, Duration::from_millis(50)).await);
        a.applied_offset.store(100, Ordering::Release);
        assert!(m.wait_for(1, &k, Duration::from_millis(50)).await);
        // Consumed.
        assert!(!m.wait_for(1, &k, Duration::from_millis(50)).await);
    }
}
