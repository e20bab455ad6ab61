//! A destination that stops answering (a SIGSTOPped or wedged node, a connection whose peer is
//! gone without a reset). Reading replies is watched: after `--target-timeout` without a byte
//! while replies are due, a new connection is opened and PINGed. If the node answers there,
//! and this connection stays silent for another `--target-timeout` (asked again), this
//! connection is broken: it is treated as lost (its unanswered commands are sent again).
//! If the node answers nobody, it is hung: closing the connection would gain nothing (the
//! node may still apply what it holds when it wakes, and sending it again would apply it
//! twice), so the writer keeps waiting, says so once a minute and marks itself stalled for
//! the metrics, and stops the run once the node has been silent for `--retry-connect`.
//! Unless it is a cluster master that the cluster failed over meanwhile (its peers' `CLUSTER
//! NODES` say `fail` or that it is a replica now), and the sink delivers exactly once: then
//! the connection is treated as lost, the sink follows the slot map to the new master, reads
//! back what it holds and sends the rest — a demoted node that wakes up discards what it
//! applied when it syncs from its new master.
//!
//! It owns nothing but the probe connection, which it closes; it must not touch the writer's
//! connection other than reading it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;

use super::{DestError, Progress};
use crate::cluster::nodes::parse_nodes;
use crate::net::{connect_and_auth, Endpoint, ReadHalf};
use crate::resp::frame_text;

/// How a writer watches its replies.
#[derive(Debug, Clone)]
pub struct StallWatch {
    pub endpoint: Endpoint,
    /// Silence while replies are due before the node is probed (`--target-timeout`).
    pub timeout: Duration,
    /// Silence after which the run stops (`--retry-connect`).
    pub give_up: Duration,
    pub connect_timeout: Duration,
    /// Whom to ask whether the node was failed over.
    pub peers: FailoverPeers,
}

/// The other nodes of a cluster destination, shared by a sink with its writers (kept up to
/// date as the slot map changes); empty: a hung node is waited for.
#[derive(Debug, Clone, Default)]
pub struct FailoverPeers(pub Arc<Mutex<Vec<Endpoint>>>);

impl FailoverPeers {
    pub fn set(&self, peers: Vec<Endpoint>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = peers;
    }

    fn get(&self) -> Vec<Endpoint> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// How often a node still silent is reported.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Reads more reply bytes into `buf` (0: the connection closed), watching for silence.
pub async fn read_watched(
    rd: &mut ReadHalf,
    buf: &mut BytesMut,
    w: &StallWatch,
    progress: &Progress,
) -> Result<usize, DestError> {
    let started = Instant::now();
    let mut reported: Option<Instant> = None;
    // The node answered a new connection at the last probe: one more `timeout` of silence
    // here, and this connection is broken. (A node waking up answers the probe and this
    // connection's backlog at about the same moment: one probe alone would misjudge it.)
    let mut answered_elsewhere = false;
    loop {
        match tokio::time::timeout(w.timeout, rd.read_buf(buf)).await {
            Ok(r) => {
                if reported.is_some() {
                    progress.stalled.store(false, Ordering::Release);
                    tracing::warn!(node = %w.endpoint, silent_s = started.elapsed().as_secs(), "the destination answers again");
                }
                return Ok(r?);
            }
            Err(_) => {
                let silent = started.elapsed();
                progress.stalled.store(true, Ordering::Release);
                if reported.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
                    tracing::warn!(node = %w.endpoint, silent_s = silent.as_secs(), timeout_s = w.timeout.as_secs(), "the destination does not answer (hung, or a command that takes long): waiting for it — not sending again what it may still apply");
                    reported = Some(Instant::now());
                }
                let answers = answers_elsewhere(w).await;
                if answers && !answered_elsewhere {
                    answered_elsewhere = true;
                    continue;
                }
                answered_elsewhere = answers;
                if !answers && failed_over(w).await {
                    progress.stalled.store(false, Ordering::Release);
                    return Err(DestError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "{} answered nothing for {} s and the cluster failed it over: following the failover",
                            w.endpoint,
                            silent.as_secs()
                        ),
                    )));
                }
                if answers {
                    progress.stalled.store(false, Ordering::Release);
                    return Err(DestError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "no reply from {} on this connection for {} s (--target-timeout), while it answers a new one: the connection is broken",
                            w.endpoint,
                            silent.as_secs()
                        ),
                    )));
                }
                if silent >= w.give_up {
                    return Err(DestError::Unsupported(format!(
                        "the destination {} has answered nothing for {} s (hung? SIGSTOPped?): stopping (--retry-connect)",
                        w.endpoint,
                        silent.as_secs()
                    )));
                }
            }
        }
    }
}

/// Whether one of the peers says the node is failed or a replica now (its slots served by
/// another master).
async fn failed_over(w: &StallWatch) -> bool {
    let wait = w.timeout.min(Duration::from_secs(5));
    for peer in w.peers.get() {
        if peer.host == w.endpoint.host && peer.port == w.endpoint.port {
            continue;
        }
        let ask = async {
            let mut c = connect_and_auth(&peer, w.connect_timeout).await.ok()?;
            let reply = c.call(&["CLUSTER", "NODES"]).await.ok()?;
            parse_nodes(&frame_text(&reply)).ok()
        };
        let Ok(Some(nodes)) = tokio::time::timeout(wait, ask).await else {
            continue;
        };
        let Some(me) = nodes
            .iter()
            .find(|n| n.addr.host == w.endpoint.host && n.addr.port == w.endpoint.port)
        else {
            continue;
        };
        return me.failed || !me.master;
    }
    false
}

/// Whether the node answers a PING on a new connection (any reply counts, LOADING included).
async fn answers_elsewhere(w: &StallWatch) -> bool {
    let probe = async {
        let mut c = connect_and_auth(&w.endpoint, w.connect_timeout)
            .await
            .ok()?;
        c.call(&["PING"]).await.ok()
    };
    let wait = w.timeout.min(Duration::from_secs(5));
    matches!(tokio::time::timeout(wait, probe).await, Ok(Some(_)))
}
