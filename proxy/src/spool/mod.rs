//! The spool: the source link is read at line rate whatever the destination's speed, so that
//! the source never sees replicant fall behind and never drops it for overflowing its output
//! buffer. A producer task reads the socket into a bounded memory queue and, past it, into
//! segment files in the state directory; the link reads them back in order. Only when the
//! files reach `--spool-max` does reading pause (loudly): the one case where the source can
//! see replicant fall behind.
//!
//! Order: memory holds the oldest bytes; once anything is on disk, new bytes go to disk too
//! until the disk part is read back, so memory, then disk, is always the order of arrival.
//! The files are a buffer, not a journal: nothing is fsynced, and a restart continues from
//! the checkpoint (the source sends again what was spooled and not applied).

mod segments;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use segments::{DiskQueue, SegmentError};

/// Bytes read from the socket at most per read.
const READ_CHUNK: usize = 256 * 1024;

/// After a small read, the producer waits this long before reading again, so that a steady
/// stream of small writes from the source is taken (and handed to the link, and written to the
/// destination) in fewer, larger pieces: one wake-up of each thread per millisecond at most,
/// instead of one per write of the source. Bulk transfers (full reads) never wait.
const COALESCE: Duration = Duration::from_millis(1);

/// Bounds of a spool.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Bytes held in memory before spilling to disk.
    pub memory: usize,
    /// Bytes on disk at most; reading pauses past it.
    pub disk_max: u64,
    /// Where segment files go.
    pub dir: PathBuf,
    /// The source link is given up when it sends nothing for this long.
    pub read_timeout: Duration,
    /// Shared with whoever reports on the run (kept across links).
    pub counters: Arc<SpoolCounters>,
}

/// What the spools of a run have done, for metrics.
#[derive(Debug, Default)]
pub struct SpoolCounters {
    /// Bytes read from the source link.
    pub received: AtomicU64,
    /// Bytes held in memory and on disk now.
    pub memory: AtomicU64,
    pub disk: AtomicU64,
    /// Times reading paused at `--spool-max`.
    pub pauses: AtomicU64,
}

impl SpoolCounters {
    fn fill(&self, s: &SpoolStats) {
        self.memory.store(s.memory_bytes as u64, Ordering::Relaxed);
        self.disk.store(s.disk_bytes, Ordering::Relaxed);
    }
}

/// The end of the snapshot, as the bytes arrive (the planner may be far behind): the moment
/// the source waits for a first ACK before it streams.
#[derive(Debug, Clone)]
pub enum SnapshotEnd {
    /// After this many more bytes.
    After(u64),
    /// When the bytes received end with this mark (nothing follows it until the ACK).
    Mark([u8; 40]),
}

/// What to call when the snapshot's last byte has arrived.
pub type OnSnapshotEnd = Box<dyn FnOnce() + Send>;

/// Why the spool has no more bytes to give.
#[derive(Debug, thiserror::Error)]
pub enum SpoolEnd {
    #[error("the source closed the connection")]
    Closed,
    #[error("{0}")]
    Io(std::io::Error),
    #[error("nothing received from the source for {0} s")]
    Silent(u64),
    #[error("spool: {0}")]
    Disk(#[from] SegmentError),
}

/// How full the spool is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    pub memory_bytes: usize,
    pub disk_bytes: u64,
    /// The most bytes ever on disk at once.
    pub disk_peak: u64,
    /// Times reading paused at `--spool-max`.
    pub pauses: u64,
}

#[derive(Debug, Default)]
struct State {
    mem: VecDeque<Bytes>,
    stats: SpoolStats,
    disk: DiskQueue,
    /// Why the producer stopped, once it has.
    end: Option<SpoolEnd>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// The producer added bytes (or stopped).
    data: Notify,
    /// The consumer took bytes from disk.
    room: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The reading end. Dropping it stops the producer and removes its files.
#[derive(Debug)]
pub struct Spool {
    shared: Arc<Shared>,
    /// The producer task, when it runs on the caller's runtime.
    producer: Option<JoinHandle<()>>,
    stop: CancellationToken,
    counters: Arc<SpoolCounters>,
}

impl Spool {
    /// Starts reading `rd` into the spool; `snapshot` watches for the end of a snapshot.
    pub fn start<R>(
        rd: R,
        cfg: SpoolConfig,
        name: &str,
        snapshot: Option<(SnapshotEnd, OnSnapshotEnd)>,
    ) -> Spool
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let shared = Arc::new(Shared::default());
        shared.lock().disk = DiskQueue::new(cfg.dir.clone(), name);
        let counters = cfg.counters.clone();
        let stop = CancellationToken::new();
        let producer = tokio::spawn(produce(rd, shared.clone(), cfg, snapshot, stop.clone()));
        Spool {
            shared,
            producer: Some(producer),
            stop,
            counters,
        }
    }

    /// Like [`Spool::start`], for a plain TCP socket, on a thread of its own: the socket is
    /// read whatever the rest of the process is doing (it runs every other task on one
    /// thread), so a burst from the source never waits for the planner.
    pub fn start_thread(
        rd: std::net::TcpStream,
        cfg: SpoolConfig,
        name: &str,
        snapshot: Option<(SnapshotEnd, OnSnapshotEnd)>,
    ) -> std::io::Result<Spool> {
        let shared = Arc::new(Shared::default());
        shared.lock().disk = DiskQueue::new(cfg.dir.clone(), name);
        let counters = cfg.counters.clone();
        let stop = CancellationToken::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (sh, st) = (shared.clone(), stop.clone());
        std::thread::Builder::new()
            .name("spool".into())
            .spawn(move || {
                rt.block_on(async move {
                    match tokio::net::TcpStream::from_std(rd) {
                        Ok(s) => produce(s, sh, cfg, snapshot, st).await,
                        Err(e) => {
                            sh.lock().end = Some(SpoolEnd::Io(e));
                            sh.data.notify_one();
                        }
                    }
                });
            })?;
        Ok(Spool {
            shared,
            producer: None,
            stop,
            counters,
        })
    }

    pub fn stats(&self) -> SpoolStats {
        self.shared.lock().stats
    }

    /// Appends the next bytes, in order, to `buf`, waiting until there are some. Cancel-safe.
    /// An error only comes once every byte read before it has been given.
    pub async fn read_into(&mut self, buf: &mut BytesMut) -> Result<usize, SpoolEnd> {
        loop {
            let notified = self.shared.data.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.shared.lock();
                if let Some(chunk) = st.mem.pop_front() {
                    st.stats.memory_bytes -= chunk.len();
                    self.counters.fill(&st.stats);
                    drop(st);
                    buf.extend_from_slice(&chunk);
                    return Ok(chunk.len());
                }
                if st.disk.unread() > 0 {
                    let n = st.disk.read_into(buf, READ_CHUNK)?;
                    st.stats.disk_bytes = st.disk.unread();
                    self.counters.fill(&st.stats);
                    if st.stats.disk_bytes == 0 {
                        tracing::info!("spool drained: the destination caught up with the source");
                    }
                    drop(st);
                    self.shared.room.notify_one();
                    return Ok(n);
                }
                if let Some(end) = st.end.take() {
                    return Err(end);
                }
            }
            notified.await;
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(p) = &self.producer {
            p.abort();
        }
        self.shared.lock().disk.remove_all();
    }
}

async fn produce<R>(
    mut rd: R,
    shared: Arc<Shared>,
    cfg: SpoolConfig,
    mut snapshot: Option<(SnapshotEnd, OnSnapshotEnd)>,
    stop: CancellationToken,
) where
    R: AsyncRead + Unpin + Send + 'static,
{
    let mut buf = BytesMut::new();
    // The last bytes received, to see a diskless transfer's end mark across reads.
    let mut tail: Vec<u8> = Vec::with_capacity(80);
    let end = loop {
        let room = tokio::select! {
            r = wait_for_room(&shared, &cfg) => r,
            _ = stop.cancelled() => break SpoolEnd::Closed,
        };
        if let Err(e) = room {
            break e;
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let read = tokio::select! {
            r = tokio::time::timeout(cfg.read_timeout, rd.read_buf(&mut buf)) => r,
            _ = stop.cancelled() => break SpoolEnd::Closed,
        };
        let chunk = match read {
            Err(_) => break SpoolEnd::Silent(cfg.read_timeout.as_secs()),
            Ok(Err(e)) => break SpoolEnd::Io(e),
            Ok(Ok(0)) => break SpoolEnd::Closed,
            Ok(Ok(_)) => buf.split().freeze(),
        };
        let small = chunk.len() < READ_CHUNK / 4;
        cfg.counters
            .received
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if let Some((end, _)) = &mut snapshot {
            let done = match end {
                SnapshotEnd::After(left) => {
                    *left = left.saturating_sub(chunk.len() as u64);
                    *left == 0
                }
                SnapshotEnd::Mark(mark) => {
                    tail.extend_from_slice(&chunk[chunk.len().saturating_sub(40)..]);
                    let cut = tail.len().saturating_sub(40);
                    tail.drain(..cut);
                    tail.as_slice() == mark.as_slice()
                }
            };
            if done {
                if let Some((_, call)) = snapshot.take() {
                    call();
                }
            }
        }
        if let Err(e) = push(&shared, &cfg, chunk) {
            break e;
        }
        shared.data.notify_one();
        if small {
            tokio::select! {
                _ = tokio::time::sleep(COALESCE) => {}
                _ = stop.cancelled() => break SpoolEnd::Closed,
            }
        }
    };
    shared.lock().end = Some(end);
    shared.data.notify_one();
}

/// Waits while the disk part is at its cap.
async fn wait_for_room(shared: &Shared, cfg: &SpoolConfig) -> Result<(), SpoolEnd> {
    let mut paused = false;
    loop {
        let room = shared.room.notified();
        tokio::pin!(room);
        room.as_mut().enable();
        {
            let mut st = shared.lock();
            if st.disk.unread() < cfg.disk_max {
                if paused {
                    tracing::warn!(
                        disk_bytes = st.disk.unread(),
                        "spool below its cap again: reading the source again"
                    );
                }
                return Ok(());
            }
            if !paused {
                paused = true;
                st.stats.pauses += 1;
                cfg.counters.pauses.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    spool_max = cfg.disk_max,
                    "spool full: reading from the source pauses until the destination catches up; the source may drop the link if its output buffer limit for replicas is reached"
                );
            }
        }
        room.await;
    }
}

/// Queues a chunk in memory, or on disk when memory is full or disk already holds bytes.
fn push(shared: &Shared, cfg: &SpoolConfig, chunk: Bytes) -> Result<(), SpoolEnd> {
    let mut st = shared.lock();
    let to_memory =
        st.disk.unread() == 0 && st.stats.memory_bytes + chunk.len() <= cfg.memory.max(1);
    if to_memory {
        st.stats.memory_bytes += chunk.len();
        cfg.counters.fill(&st.stats);
        st.mem.push_back(chunk);
        return Ok(());
    }
    if st.disk.unread() == 0 {
        tracing::warn!(
            memory_bytes = st.stats.memory_bytes,
            dir = %cfg.dir.display(),
            "the destination is slower than the source: spooling the stream to disk"
        );
    }
    st.disk.append(&chunk)?;
    st.stats.disk_bytes = st.disk.unread();
    st.stats.disk_peak = st.stats.disk_peak.max(st.stats.disk_bytes);
    cfg.counters.fill(&st.stats);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn cfg(dir: &std::path::Path, memory: usize, disk_max: u64) -> SpoolConfig {
        SpoolConfig {
            memory,
            disk_max,
            dir: dir.to_path_buf(),
            read_timeout: Duration::from_secs(5),
            counters: Arc::default(),
        }
    }

    /// Writes `total` numbered bytes into a pipe while the spool reads it; then reads them
    /// all back slowly and checks their order.
    async fn round_trip(memory: usize, disk_max: u64, total: usize) -> SpoolStats {
        let dir = std::env::temp_dir().join(format!(
            "replicant-spool-{}-{memory}-{disk_max}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut w, r) = tokio::io::duplex(64 * 1024);
        let mut spool = Spool::start(r, cfg(&dir, memory, disk_max), "t", None);
        let writer = tokio::spawn(async move {
            let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
            for piece in data.chunks(10_000) {
                w.write_all(piece).await.expect("write");
            }
        });
        // Let the producer run ahead of the reader.
        writer.await.expect("writer");
        let mut peak = SpoolStats::default();
        let mut got = BytesMut::new();
        loop {
            let s = spool.stats();
            peak.disk_peak = peak.disk_peak.max(s.disk_peak);
            peak.pauses = peak.pauses.max(s.pauses);
            match spool.read_into(&mut got).await {
                Ok(_) => {}
                Err(SpoolEnd::Closed) => break,
                Err(e) => panic!("unexpected end: {e}"),
            }
        }
        assert_eq!(got.len(), total);
        assert!(got.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
        drop(spool);
        let left = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "segment files are removed");
        let _ = std::fs::remove_dir_all(&dir);
        peak
    }

    #[tokio::test]
    async fn memory_only_keeps_order() {
        let s = round_trip(8 << 20, 1 << 30, 1 << 20).await;
        assert_eq!(s.disk_peak, 0);
    }

    #[tokio::test]
    async fn spills_to_disk_and_reads_back_in_order() {
        let s = round_trip(64 * 1024, 1 << 30, 3 << 20).await;
        assert!(s.disk_peak > 0);
    }

    #[tokio::test]
    async fn pauses_at_the_cap_and_resumes() {
        let dir = std::env::temp_dir().join(format!("replicant-spool-cap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut w, r) = tokio::io::duplex(16 * 1024);
        let mut spool = Spool::start(r, cfg(&dir, 16 * 1024, 256 * 1024), "t", None);
        let total = 2usize << 20;
        let writer = tokio::spawn(async move {
            let data: Vec<u8> = (0..total).map(|i| (i % 253) as u8).collect();
            w.write_all(&data).await.expect("write");
        });
        // The producer fills memory and disk, then pauses.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while spool.stats().pauses == 0 {
            assert!(std::time::Instant::now() < deadline, "never paused");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(spool.stats().disk_bytes <= 256 * 1024 + READ_CHUNK as u64);
        let mut got = BytesMut::new();
        while got.len() < total {
            spool.read_into(&mut got).await.expect("bytes");
        }
        writer.await.expect("writer");
        assert!(got.iter().enumerate().all(|(i, b)| *b == (i % 253) as u8));
        drop(spool);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
