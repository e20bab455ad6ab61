//! The queue between the planner and a destination writer, bounded in bytes (and in batches):
//! when it is full, whoever feeds it waits, and that wait is the backpressure that reaches back
//! to the source link. A batch larger than the whole bound goes alone.

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

use crate::cmd::Op;

/// A batch in the queue with the byte permits it holds.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) ops: Vec<Op>,
    pub(crate) permits: u32,
}

/// The queue is closed: the writer has stopped (its own result says why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the destination writer has stopped")]
pub struct Closed;

/// The feeding end of a writer's queue.
#[derive(Debug, Clone)]
pub struct OpSender {
    tx: mpsc::Sender<Batch>,
    bytes: Arc<Semaphore>,
    max_bytes: usize,
}

/// The writer's end.
#[derive(Debug)]
pub(crate) struct OpReceiver {
    rx: mpsc::Receiver<Batch>,
    bytes: Arc<Semaphore>,
}

/// A queue of at most `max_batches` batches and about `max_bytes` encoded bytes.
pub(crate) fn queue(max_batches: usize, max_bytes: usize) -> (OpSender, OpReceiver) {
    let max_bytes = max_bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let (tx, rx) = mpsc::channel(max_batches.max(1));
    let bytes = Arc::new(Semaphore::new(max_bytes));
    (
        OpSender {
            tx,
            bytes: bytes.clone(),
            max_bytes,
        },
        OpReceiver { rx, bytes },
    )
}

fn op_bytes(op: &Op) -> usize {
    match op {
        Op::Cmd(c) => c.len(),
        Op::Mark(_) => 0,
    }
}

impl OpSender {
    /// Queues a batch, waiting while the queue is full.
    pub async fn send(&self, ops: Vec<Op>) -> Result<(), Closed> {
        self.send_or_return(ops).await.map_err(|_| Closed)
    }

    /// Queues a batch; if the writer has stopped, the batch comes back.
    pub async fn send_or_return(&self, ops: Vec<Op>) -> Result<(), Vec<Op>> {
        if ops.is_empty() {
            return Ok(());
        }
        let size = ops
            .iter()
            .map(op_bytes)
            .sum::<usize>()
            .clamp(1, self.max_bytes) as u32;
        match self.bytes.acquire_many(size).await {
            Ok(p) => p.forget(),
            Err(_) => return Err(ops),
        }
        self.tx
            .send(Batch { ops, permits: size })
            .await
            .map_err(|e| e.0.ops)
    }

    /// Resolves when the writer has stopped.
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl OpReceiver {
    /// The next batch; its bytes leave the queue's bound (they enter the writer's window).
    pub(crate) async fn recv(&mut self) -> Option<Vec<Op>> {
        let b = self.rx.recv().await?;
        self.bytes.add_permits(b.permits as usize);
        Some(b.ops)
    }

    pub(crate) fn try_recv(&mut self) -> Result<Vec<Op>, mpsc::error::TryRecvError> {
        let b = self.rx.try_recv()?;
        self.bytes.add_permits(b.permits as usize);
        Ok(b.ops)
    }

    /// No more batches: wake any sender waiting for room.
    pub(crate) fn close(&mut self) {
        self.rx.close();
        self.bytes.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::Command;

    #[tokio::test]
    async fn bounded_in_bytes() {
        let (tx, mut rx) = queue(100, 100);
        let op = || Op::Cmd(Command::new(&["SET", "k", &"v".repeat(40)]));
        tx.send(vec![op()]).await.expect("room");
        // A second 60-byte batch does not fit in 100 bytes until the first is taken.
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(50), tx.send(vec![op()])).await;
        assert!(pending.is_err(), "second batch should wait");
        assert!(rx.recv().await.is_some());
        tx.send(vec![op()]).await.expect("room again");
        rx.close();
        assert_eq!(tx.send(vec![op()]).await, Err(Closed));
    }
}
