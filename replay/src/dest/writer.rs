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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use super::queue::{queue, OpReceiver, OpSender};
use super::reply::{classify_error, Action};
use super::{DestError, Progress};
use crate::cmd::Command;
use crate::display::printable;
use crate::net::{connect_and_auth, Endpoint};
use crate::resp::scan::scan_reply;

/// One thing for the writer to do, in order.
#[derive(Debug)]
pub enum Op {
    Cmd(Command),
    /// The source offset reached once everything before this is applied.
    Mark(u64),
}

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
    tx: Option<OpSender>,
    progress: Arc<Progress>,
    send: JoinHandle<Result<(), DestError>>,
    recv: JoinHandle<Result<(), DestError>>,
}

struct Pend {
    cmd: Option<Command>,
    offset: Option<u64>,
    cost: u32,
}

impl Writer {
    /// Connects (with AUTH) and starts the two tasks.
    pub async fn start(cfg: WriterConfig, progress: Arc<Progress>) -> Result<Writer, DestError> {
        let conn = connect_and_auth(&cfg.endpoint, cfg.connect_timeout).await?;
        let (stream, leftover) = conn.into_parts();
        let (rd, wr) = stream.into_split();
        let (tx, rx) = queue(cfg.queue_batches, cfg.queue_bytes);
        let (ptx, prx) = mpsc::unbounded_channel();
        let window_bytes = cfg.window_bytes.clamp(1, u32::MAX as usize >> 1);
        let cmds = Arc::new(Semaphore::new(cfg.window_cmds.max(1)));
        let bytes = Arc::new(Semaphore::new(window_bytes));
        let send = tokio::spawn(send_loop(
            wr,
            rx,
            ptx,
            cmds.clone(),
            bytes.clone(),
            window_bytes,
        ));
        let recv = tokio::spawn(recv_loop(rd, leftover, prx, cmds, bytes, progress.clone()));
        Ok(Writer {
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
    wr: OwnedWriteHalf,
    mut rx: OpReceiver,
    ptx: mpsc::UnboundedSender<Pend>,
    cmds: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    window_bytes: usize,
) -> Result<(), DestError> {
    let result = send_batches(wr, &mut rx, ptx, cmds, bytes, window_bytes).await;
    // Whatever ended the loop, feeders must not wait for room any more.
    rx.close();
    result
}

async fn send_batches(
    mut wr: OwnedWriteHalf,
    rx: &mut OpReceiver,
    ptx: mpsc::UnboundedSender<Pend>,
    cmds: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    window_bytes: usize,
) -> Result<(), DestError> {
    let mut out = BytesMut::with_capacity(256 * 1024);
    loop {
        let batch = if out.is_empty() {
            rx.recv().await
        } else {
            match rx.try_recv() {
                Ok(b) => Some(b),
                Err(mpsc::error::TryRecvError::Empty) => {
                    flush(&mut wr, &mut out).await?;
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            }
        };
        let Some(batch) = batch else {
            flush(&mut wr, &mut out).await?;
            return Ok(());
        };
        for op in batch {
            let cmd = match op {
                Op::Mark(offset) => {
                    let p = Pend {
                        cmd: None,
                        offset: Some(offset),
                        cost: 0,
                    };
                    if ptx.send(p).is_err() {
                        return Ok(());
                    }
                    continue;
                }
                Op::Cmd(cmd) => cmd,
            };
            let cost = cmd.len().clamp(1, window_bytes) as u32;
            // Never wait for the window with unsent bytes: their replies are what frees it.
            let permits = match (cmds.try_acquire(), bytes.try_acquire_many(cost)) {
                (Ok(a), Ok(b)) => (a, b),
                _ => {
                    flush(&mut wr, &mut out).await?;
                    match (cmds.acquire().await, bytes.acquire_many(cost).await) {
                        (Ok(a), Ok(b)) => (a, b),
                        // Closed: the receive task stopped and will report why.
                        _ => return Ok(()),
                    }
                }
            };
            permits.0.forget();
            permits.1.forget();
            for chunk in cmd.chunks() {
                if chunk.len() >= DIRECT_WRITE {
                    flush(&mut wr, &mut out).await?;
                    wr.write_all(chunk).await?;
                } else {
                    out.extend_from_slice(chunk);
                }
            }
            let offset = cmd.offset;
            let p = Pend {
                cmd: Some(cmd),
                offset,
                cost,
            };
            if ptx.send(p).is_err() {
                return Ok(());
            }
            if out.len() >= 256 * 1024 {
                flush(&mut wr, &mut out).await?;
            }
        }
    }
}

async fn flush(wr: &mut OwnedWriteHalf, out: &mut BytesMut) -> Result<(), DestError> {
    if !out.is_empty() {
        wr.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

async fn recv_loop(
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    mut prx: mpsc::UnboundedReceiver<Pend>,
    cmds: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    progress: Arc<Progress>,
) -> Result<(), DestError> {
    let result = recv_replies(&mut rd, &mut buf, &mut prx, &cmds, &bytes, &progress).await;
    // Wake a send task waiting for the window: nothing will free it any more.
    cmds.close();
    bytes.close();
    result
}

async fn recv_replies(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    prx: &mut mpsc::UnboundedReceiver<Pend>,
    cmds: &Semaphore,
    bytes: &Semaphore,
    progress: &Progress,
) -> Result<(), DestError> {
    while let Some(p) = prx.recv().await {
        let Some(cmd) = p.cmd else {
            if let Some(off) = p.offset {
                progress.applied_offset.store(off, Ordering::Release);
            }
            continue;
        };
        let reply = loop {
            match scan_reply(buf) {
                Ok(Some(r)) => break r,
                Ok(None) => {
                    if buf.capacity() - buf.len() < 16 * 1024 {
                        buf.reserve(64 * 1024);
                    }
                    if rd.read_buf(buf).await? == 0 {
                        return Err(crate::resp::ConnError::Closed.into());
                    }
                }
                Err(e) => {
                    return Err(crate::resp::ConnError::Protocol(e.to_string()).into());
                }
            }
        };
        cmds.add_permits(1);
        bytes.add_permits(p.cost as usize);
        progress.commands.fetch_add(1, Ordering::Relaxed);
        progress
            .bytes
            .fetch_add(cmd.len() as u64, Ordering::Relaxed);
        let error = reply
            .error
            .as_ref()
            .map(|r| String::from_utf8_lossy(&buf[r.clone()]).into_owned());
        let _ = buf.split_to(reply.len);
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
        if let Some(off) = p.offset {
            progress.applied_offset.store(off, Ordering::Release);
        }
    }
    Ok(())
}
