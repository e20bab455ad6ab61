//! The pipelined writer of one destination connection. Commands arrive in batches on a bounded
//! channel; a send task writes them while a receive task reads the replies in order. At most
//! `window_cmds` commands and `window_bytes` bytes are in flight (sent, reply not yet read):
//! that window is the backpressure that reaches back to whoever feeds the channel.
//!
//! An offset counts as applied only when the destination has replied to every command before
//! it: offsets ride on commands ([`Command::offset`]) or as [`Op::Mark`]s between them, and the
//! receive task publishes them in [`Progress::applied_offset`] as the replies arrive.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinHandle;

use super::queue::{queue, OpReceiver, OpSender};
use super::recovery::{returned_kind, Recovery, Returned};
use super::reply::{classify_error, Action};
use super::stall::{read_watched, FailoverPeers, StallWatch};
use super::tx_track::{Outcome, Seen, Transactions};
use super::{DestError, Progress};
use crate::cmd::{Command, Op};
use crate::display::printable;
use crate::net::{connect_and_auth, Endpoint, ReadHalf, WriteHalf};
use crate::resp::scan::scan_reply;

/// Bounds of a writer.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub endpoint: Endpoint,
    pub connect_timeout: Duration,
    /// Commands in flight at most.
    pub window_cmds: usize,
    /// Bytes in flight at most (a single larger command goes alone).
    pub window_bytes: usize,
    /// Batches queued on the input channel at most.
    pub queue_batches: usize,
    /// Bytes queued on the input channel at most (on top of the window).
    pub queue_bytes: usize,
    /// Where commands that must be sent again (elsewhere, or later) are handed back instead of
    /// stopping the run.
    pub recovery: Option<Arc<Recovery>>,
    /// How long a sink keeps sending again what the destination refuses for a while
    /// (LOADING, BUSY, TRYAGAIN, CLUSTERDOWN, MASTERDOWN, redirections).
    pub retry_errors: Duration,
    /// How long a sink keeps reconnecting to a destination it lost.
    pub retry_connect: Duration,
    /// Once a command is handed back, hand back everything after it unsent until the sink
    /// has sent it again (keeps the order of writes through a refusal).
    pub hold_on_refusal: bool,
    /// Silence while replies are due before the node is probed (`--target-timeout`).
    pub reply_timeout: Duration,
    /// Cluster nodes to ask, when this node answers nobody, whether it was failed over (see
    /// [`super::stall`]); none: wait for it.
    pub failover_peers: FailoverPeers,
}

impl WriterConfig {
    pub fn new(endpoint: Endpoint) -> Self {
        WriterConfig {
            endpoint,
            connect_timeout: Duration::from_secs(10),
            window_cmds: 8192,
            window_bytes: 16 << 20,
            queue_batches: 64,
            queue_bytes: 8 << 20,
            recovery: None,
            retry_errors: Duration::from_secs(600),
            retry_connect: Duration::from_secs(600),
            hold_on_refusal: false,
            reply_timeout: Duration::from_secs(30),
            failover_peers: FailoverPeers::default(),
        }
    }
}

/// Chunks at least this large are written straight from their buffer instead of being copied
/// into the output buffer.
const DIRECT_WRITE: usize = 64 * 1024;

/// Per-key errors logged one by one before logging only every thousandth.
const LOGGED_KEY_ERRORS: u64 = 100;

/// A running writer: feed it through [`Writer::sender`], end it with [`Writer::finish`].
#[derive(Debug)]
pub struct Writer {
    endpoint: Endpoint,
    tx: Option<OpSender>,
    progress: Arc<Progress>,
    send: JoinHandle<Result<(), DestError>>,
    recv: JoinHandle<Result<(), DestError>>,
}

struct Pend {
    cmd: Option<Command>,
    offset: Option<u64>,
    cost: u32,
    /// Never written (handed back by a failed send task): no reply will come.
    unsent: bool,
}

impl Writer {
    /// Connects (with AUTH) and starts the two tasks.
    pub async fn start(cfg: WriterConfig, progress: Arc<Progress>) -> Result<Writer, DestError> {
        let conn = connect_and_auth(&cfg.endpoint, cfg.connect_timeout).await?;
        let (stream, leftover) = conn.into_parts();
        let (rd, wr) = stream.into_split();
        let (tx, rx) = queue(cfg.queue_batches, cfg.queue_bytes);
        let (ptx, prx) = mpsc::unbounded_channel();
        let max_bytes = cfg.window_bytes.clamp(1, u32::MAX as usize >> 1);
        let max_cmds = cfg.window_cmds.clamp(1, u32::MAX as usize >> 1);
        let window = Window {
            cmds: Arc::new(Semaphore::new(max_cmds)),
            bytes: Arc::new(Semaphore::new(max_bytes)),
            max_cmds,
            max_bytes,
            dead: Arc::new(Notify::new()),
        };
        let hold = cfg.recovery.clone().filter(|_| cfg.hold_on_refusal);
        let send = tokio::spawn(send_loop(
            wr,
            rx,
            ptx,
            window.clone(),
            cfg.recovery.is_some(),
            hold,
        ));
        let watch = StallWatch {
            endpoint: cfg.endpoint.clone(),
            timeout: cfg.reply_timeout.max(Duration::from_secs(1)),
            give_up: cfg.retry_connect,
            connect_timeout: cfg.connect_timeout,
            peers: cfg.failover_peers.clone(),
        };
        let recv = tokio::spawn(recv_loop(
            rd,
            leftover,
            prx,
            window,
            progress.clone(),
            cfg.recovery,
            watch,
        ));
        Ok(Writer {
            endpoint: cfg.endpoint,
            tx: Some(tx),
            progress,
            send,
            recv,
        })
    }

    /// The input channel. Sending fails once the writer has stopped (see [`Writer::finish`]).
    pub fn sender(&self) -> OpSender {
        self.tx.clone().unwrap_or_else(|| {
            let (tx, mut rx) = queue(1, 1);
            rx.close();
            tx
        })
    }

    /// The server this writer writes to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// Closes the input (once every other sender is dropped too), waits until every command
    /// has its reply, and returns the first fatal error if there was one.
    pub async fn finish(mut self) -> Result<(), DestError> {
        self.tx.take();
        let recv = join(self.recv).await;
        let send = join(self.send).await;
        recv.and(send)
    }

    /// Whether the writer has stopped taking commands (or lost its connection, and is
    /// handing back what was not answered).
    pub fn is_closed(&self) -> bool {
        self.progress.lost.load(Ordering::Acquire)
            || self.tx.as_ref().is_none_or(OpSender::is_closed)
    }

    /// Whether both tasks have ended.
    pub fn is_finished(&self) -> bool {
        self.send.is_finished() && self.recv.is_finished()
    }

    /// Stops at once, without waiting for replies.
    pub fn abort(&self) {
        self.send.abort();
        self.recv.abort();
    }
}

async fn join(h: JoinHandle<Result<(), DestError>>) -> Result<(), DestError> {
    match h.await {
        Ok(r) => r,
        Err(e) if e.is_cancelled() => Ok(()),
        Err(e) => Err(DestError::Unsupported(format!("writer task failed: {e}"))),
    }
}

async fn send_loop(
    wr: WriteHalf,
    mut rx: OpReceiver,
    ptx: mpsc::UnboundedSender<Vec<Pend>>,
    window: Window,
    hand_back: bool,
    hold: Option<Arc<Recovery>>,
) -> Result<(), DestError> {
    let mut unsent = Vec::new();
    let result = send_batches(wr, &mut rx, &ptx, window, &mut unsent, hold.as_deref()).await;
    // Whatever ended the loop, feeders must not wait for room any more.
    rx.close();
    if hand_back {
        // A cluster sink sends these again elsewhere: after what is in flight, in order.
        while let Ok(batch) = rx.try_recv() {
            unsent.extend(batch);
        }
        let pend = never_sent(unsent);
        if !pend.is_empty() {
            let _ = ptx.send(pend);
        }
        return Ok(());
    }
    result
}

/// Commands that were never written, for the receive task to hand back (marks are dropped:
/// the sink marks again once it has sent the commands again).
fn never_sent(ops: Vec<Op>) -> Vec<Pend> {
    ops.into_iter()
        .filter_map(|op| match op {
            Op::Cmd(cmd) => Some(Pend {
                offset: cmd.offset,
                cmd: Some(cmd),
                cost: 0,
                unsent: true,
            }),
            Op::Mark(_) => None,
        })
        .collect()
}

/// The in-flight window: commands and bytes sent whose replies are not read yet.
#[derive(Debug, Clone)]
struct Window {
    cmds: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_cmds: usize,
    max_bytes: usize,
    /// Told when the receive task stopped: a write still waiting (a peer that reads nothing)
    /// fails instead of waiting for ever.
    dead: Arc<Notify>,
}

impl Window {
    /// Takes room for `cmds` commands of `bytes` bytes; `false` once the window is closed.
    /// Never called with unsent bytes buffered: their replies are what frees the window.
    async fn acquire(&self, cmds: u32, bytes: u32) -> bool {
        match self.cmds.acquire_many(cmds).await {
            Ok(p) => p.forget(),
            Err(_) => return false,
        }
        match self.bytes.acquire_many(bytes).await {
            Ok(p) => p.forget(),
            Err(_) => return false,
        }
        true
    }

    fn try_acquire(&self, cmds: u32, bytes: u32) -> bool {
        let Ok(c) = self.cmds.try_acquire_many(cmds) else {
            return false;
        };
        let Ok(b) = self.bytes.try_acquire_many(bytes) else {
            return false;
        };
        c.forget();
        b.forget();
        true
    }

    fn release(&self, cmds: usize, bytes: usize) {
        if cmds > 0 {
            self.cmds.add_permits(cmds);
        }
        if bytes > 0 {
            self.bytes.add_permits(bytes);
        }
    }

    fn close(&self) {
        self.cmds.close();
        self.bytes.close();
        self.dead.notify_one();
    }

    /// A command's share of the byte window (a command larger than the window goes alone).
    fn cost(&self, cmd: &Command) -> u32 {
        cmd.len().clamp(1, self.max_bytes) as u32
    }
}

async fn send_batches(
    mut wr: WriteHalf,
    rx: &mut OpReceiver,
    ptx: &mpsc::UnboundedSender<Vec<Pend>>,
    window: Window,
    unsent: &mut Vec<Op>,
    hold: Option<&Recovery>,
) -> Result<(), DestError> {
    let mut out = BytesMut::with_capacity(256 * 1024);
    // Nothing written since the last flush: a TLS session may hold bytes until flushed, and
    // their replies are what the window waits for.
    let mut flushed = true;
    loop {
        let batch = if flushed && out.is_empty() {
            // Idle: woken by the next batch, or by the receive task stopping (a lost
            // connection: this task ends too, so that the writer's hand-back can finish).
            tokio::select! {
                b = rx.recv() => b,
                _ = window.dead.notified() => return Err(abandoned()),
            }
        } else {
            match rx.try_recv() {
                Ok(b) => Some(b),
                Err(mpsc::error::TryRecvError::Empty) => {
                    flush(&mut wr, &mut out, &window.dead).await?;
                    flushed = true;
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            }
        };
        let Some(batch) = batch else {
            flush(&mut wr, &mut out, &window.dead).await?;
            return Ok(());
        };
        if hold.is_some_and(Recovery::frozen) {
            // Commands were refused: nothing more goes out until the sink has sent them again,
            // so that what follows them is not applied before them.
            flush(&mut wr, &mut out, &window.dead).await?;
            let pend = never_sent(batch);
            if ptx.send(pend).is_err() {
                return Ok(());
            }
            continue;
        }
        let mut ops = batch.into_iter().peekable();
        while ops.peek().is_some() {
            let result = send_group(&mut wr, &mut out, &mut ops, ptx, &window).await;
            flushed = false;
            if result.is_err() || window.cmds.is_closed() {
                unsent.extend(ops);
                return result;
            }
        }
    }
}

/// Sends the longest run of `ops` that fits the window, then hands the group to the receive
/// task (also when writing failed), so that nothing sent is unaccounted for.
async fn send_group(
    wr: &mut WriteHalf,
    out: &mut BytesMut,
    ops: &mut std::iter::Peekable<std::vec::IntoIter<Op>>,
    ptx: &mpsc::UnboundedSender<Vec<Pend>>,
    window: &Window,
) -> Result<(), DestError> {
    // The longest run of ops that fits the window, then room for all of it at once.
    let mut group = Vec::new();
    let (mut cmds, mut bytes) = (0usize, 0usize);
    while let Some(op) = ops.peek() {
        let cost = match op {
            Op::Cmd(c) => window.cost(c) as usize,
            Op::Mark(_) => 0,
        };
        let is_cmd = usize::from(matches!(op, Op::Cmd(_)));
        if !group.is_empty() && (cmds + is_cmd > window.max_cmds || bytes + cost > window.max_bytes)
        {
            break;
        }
        cmds += is_cmd;
        bytes += cost;
        group.extend(ops.next());
    }
    if !window.try_acquire(cmds as u32, bytes as u32) {
        flush(wr, out, &window.dead).await?;
        if !window.acquire(cmds as u32, bytes as u32).await {
            // Closed: the receive task stopped and will report why.
            let mut rest = group;
            rest.extend(ops.by_ref());
            *ops = rest.into_iter().peekable();
            return Ok(());
        }
    }
    let pend: Vec<Pend> = group
        .into_iter()
        .map(|op| match op {
            Op::Mark(offset) => Pend {
                cmd: None,
                offset: Some(offset),
                cost: 0,
                unsent: false,
            },
            Op::Cmd(cmd) => Pend {
                cost: window.cost(&cmd),
                offset: cmd.offset,
                cmd: Some(cmd),
                unsent: false,
            },
        })
        .collect();
    let written = write_group(wr, out, &pend, window).await;
    // Handed over whether or not writing failed: the receive task accounts for every command
    // of the group (answered, or handed back once the connection is found dead).
    if ptx.send(pend).is_err() {
        return Ok(());
    }
    written
}

async fn write_group(
    wr: &mut WriteHalf,
    out: &mut BytesMut,
    pend: &[Pend],
    window: &Window,
) -> Result<(), DestError> {
    for cmd in pend.iter().filter_map(|p| p.cmd.as_ref()) {
        for chunk in cmd.chunks() {
            if chunk.len() >= DIRECT_WRITE {
                flush(wr, out, &window.dead).await?;
                put(wr, chunk, &window.dead).await?;
            } else {
                out.extend_from_slice(chunk);
            }
        }
        if out.len() >= 256 * 1024 {
            flush(wr, out, &window.dead).await?;
        }
    }
    Ok(())
}

/// Writes what is buffered and pushes it out of a TLS session's buffer too (a no-op for TCP).
async fn flush(wr: &mut WriteHalf, out: &mut BytesMut, dead: &Notify) -> Result<(), DestError> {
    if !out.is_empty() {
        put(wr, out, dead).await?;
        out.clear();
    }
    tokio::select! {
        r = wr.flush() => Ok(r?),
        _ = dead.notified() => Err(abandoned()),
    }
}

/// Writes `data`, unless the receive task stops meanwhile (then the connection is given up).
async fn put(wr: &mut WriteHalf, data: &[u8], dead: &Notify) -> Result<(), DestError> {
    tokio::select! {
        r = wr.write_all(data) => Ok(r?),
        _ = dead.notified() => Err(abandoned()),
    }
}

fn abandoned() -> DestError {
    DestError::Io(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "the connection was given up while a write waited",
    ))
}

async fn recv_loop(
    mut rd: ReadHalf,
    mut buf: BytesMut,
    mut prx: mpsc::UnboundedReceiver<Vec<Pend>>,
    window: Window,
    progress: Arc<Progress>,
    recovery: Option<Arc<Recovery>>,
    watch: StallWatch,
) -> Result<(), DestError> {
    let mut rest = Vec::new();
    let rec = recovery.as_deref();
    let mut txs = Transactions::default();
    let mut ctx = Replies {
        window: &window,
        progress: &progress,
        recovery: rec,
        txs: &mut txs,
        watch: &watch,
    };
    let result = recv_replies(&mut rd, &mut buf, &mut prx, &mut ctx, &mut rest).await;
    // Wake a send task waiting for the window: nothing will free it any more.
    window.close();
    let (Err(e), Some(rec)) = (&result, rec) else {
        return result;
    };
    if !matches!(e, DestError::Io(_) | DestError::Conn(_)) {
        return result;
    }
    // A cluster node went away: everything it did not answer goes back, in order, to be sent
    // again once the topology is known (at least once: some of it may have been applied).
    // Until the hand-back is over, the writer counts as stopped, never as idle: what it has
    // not handed back yet must not be overtaken by anything sent after it.
    progress.lost.store(true, Ordering::Release);
    tracing::warn!(error = %e, "lost the connection to the destination; its unanswered commands will be sent again");
    txs.on_lost(rec);
    let mut back = |p: Pend| {
        if let Some(cmd) = p.cmd {
            progress.answered(cmd.len());
            let db = intended_db(&progress, &cmd);
            rec.hand_back(cmd, Returned::Lost, db);
        }
    };
    rest.into_iter().for_each(&mut back);
    while let Some(group) = prx.recv().await {
        group.into_iter().for_each(&mut back);
    }
    Ok(())
}

async fn recv_replies(
    rd: &mut ReadHalf,
    buf: &mut BytesMut,
    prx: &mut mpsc::UnboundedReceiver<Vec<Pend>>,
    ctx: &mut Replies<'_>,
    rest: &mut Vec<Pend>,
) -> Result<(), DestError> {
    // Room to give back to the window, released in bulk (always before waiting for bytes).
    let mut free = (0usize, 0usize);
    while let Some(group) = prx.recv().await {
        let mut it = group.into_iter();
        while let Some(p) = it.next() {
            let r = recv_one(rd, buf, &p, ctx, &mut free).await;
            if let Err(e) = r {
                rest.push(p);
                rest.extend(it);
                return Err(e);
            }
        }
        ctx.window.release(free.0, free.1);
        free = (0, 0);
    }
    Ok(())
}

/// What the receive task works with besides the connection.
struct Replies<'a> {
    window: &'a Window,
    progress: &'a Progress,
    recovery: Option<&'a Recovery>,
    txs: &'a mut Transactions,
    watch: &'a StallWatch,
}

/// The db `cmd` was meant for (the db selected by everything before it in the order sent);
/// a SELECT moves it on, whatever its reply.
fn intended_db(progress: &Progress, cmd: &Command) -> u64 {
    let before = progress.db.load(Ordering::Acquire);
    if let Some(db) = cmd.selected_db() {
        progress.db.store(db, Ordering::Release);
    }
    before
}

/// Publishes an applied offset, unless commands handed back are waiting to be sent again.
fn publish(progress: &Progress, recovery: Option<&Recovery>, offset: Option<u64>) {
    if let Some(off) = offset {
        if !recovery.is_some_and(Recovery::frozen) {
            progress.applied_offset.store(off, Ordering::Release);
        }
    }
}

async fn recv_one(
    rd: &mut ReadHalf,
    buf: &mut BytesMut,
    p: &Pend,
    ctx: &mut Replies<'_>,
    free: &mut (usize, usize),
) -> Result<(), DestError> {
    let (window, progress, recovery) = (ctx.window, ctx.progress, ctx.recovery);
    let txs = &mut *ctx.txs;
    let Some(cmd) = &p.cmd else {
        publish(progress, recovery, p.offset);
        return Ok(());
    };
    if p.unsent {
        // Handed back by the send task: never written, no reply to wait for.
        if let Some(rec) = recovery {
            progress.answered(cmd.len());
            let db = intended_db(progress, cmd);
            let o = Outcome {
                unsent: true,
                refused: None,
                error: false,
            };
            if txs.on_command(rec, cmd, db, o) == Seen::Normal {
                rec.hand_back(cmd.clone(), Returned::Lost, db);
            }
        }
        return Ok(());
    }
    let reply = loop {
        match scan_reply(buf) {
            Ok(Some(r)) => break r,
            Ok(None) => {
                window.release(free.0, free.1);
                *free = (0, 0);
                if buf.capacity() - buf.len() < 16 * 1024 {
                    buf.reserve(64 * 1024);
                }
                if read_watched(rd, buf, ctx.watch, progress).await? == 0 {
                    return Err(crate::resp::ConnError::Closed.into());
                }
            }
            Err(e) => {
                return Err(crate::resp::ConnError::Protocol(e.to_string()).into());
            }
        }
    };
    free.0 += 1;
    free.1 += p.cost as usize;
    progress.answered(cmd.len());
    progress.commands.fetch_add(1, Ordering::Relaxed);
    progress
        .bytes
        .fetch_add(cmd.len() as u64, Ordering::Relaxed);
    let error = reply
        .error
        .as_ref()
        .map(|r| String::from_utf8_lossy(&buf[r.clone()]).into_owned());
    let _ = buf.split_to(reply.len);
    let db = intended_db(progress, cmd);
    if let Some(rec) = recovery {
        let kind = error.as_deref().and_then(returned_kind);
        let o = Outcome {
            unsent: false,
            refused: kind.clone(),
            error: error.is_some(),
        };
        if txs.on_command(rec, cmd, db, o) == Seen::HandedBack {
            return Ok(());
        }
        if let Some(kind) = kind {
            rec.hand_back(cmd.clone(), kind, db);
            return Ok(());
        }
    }
    let action = error.as_deref().map_or(Action::Ok, classify_error);
    match (action, error) {
        (Action::Ok, _) => {}
        (Action::PerKey, msg) => {
            let n = progress.key_errors.fetch_add(1, Ordering::Relaxed) + 1;
            if n <= LOGGED_KEY_ERRORS || n.is_multiple_of(1000) {
                let (name, key) = cmd.describe();
                tracing::warn!(
                    command = %name,
                    key = %key.as_deref().map(printable).unwrap_or_default(),
                    reply = %msg.unwrap_or_default(),
                    errors = n,
                    "destination refused a command for one key; continuing"
                );
            }
        }
        (Action::Fatal, msg) => {
            let (name, key) = cmd.describe();
            return Err(DestError::Refused {
                cmd: name,
                key: key.as_deref().map(printable),
                reply: msg.unwrap_or_default(),
            });
        }
    }
    publish(progress, recovery, p.offset);
    Ok(())
}
