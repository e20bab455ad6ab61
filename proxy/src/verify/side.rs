//! One side of the comparison: a standalone server, or every master of a Redis Cluster, with
//! the connections to them (the same URLs, users and TLS as `sync`), the rate limit of the
//! commands sent there, and pipelined exchanges that send each key's commands to the server
//! holding it (a cluster: the master of its slot, from the slot map read at the start).
//!
//! Error replies that say a key changed while it was read (`WRONGTYPE`, `NOGROUP`, `no such
//! key`) are handed back as replies: the comparison counts the key as differing and checks it
//! again later. Any other error reply ends the run with a message naming the side, the server,
//! the command and the key.

use std::time::Duration;

use bytes::Bytes;
use replay::cluster::slot::key_slot;
use replay::cluster::topology::{self, Topology};
use replay::cmd::Command;
use replay::display::printable;
use replay::net::{connect_and_auth, Endpoint, Stream};
use replay::plan::caps::info_field;
use replay::plan::Caps;
use replay::resp::{frame_error, frame_text, Conn, Frame};

use super::limit::RateLimit;
use crate::config::Side as Which;
use crate::fatal::Fatal;

/// How long a server may take to answer a batch.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Keys asked for per `SCAN` call.
const SCAN_COUNT: &str = "1000";

/// A command and the key that says where it goes.
#[derive(Debug, Clone)]
pub struct Req {
    pub key: Bytes,
    pub cmd: Command,
}

impl Req {
    /// `NAME key ARGS…`.
    pub fn new(name: &str, key: &Bytes, args: &[&[u8]]) -> Req {
        let mut all: Vec<&[u8]> = Vec::with_capacity(args.len() + 2);
        all.push(name.as_bytes());
        all.push(key);
        all.extend_from_slice(args);
        Req {
            key: key.clone(),
            cmd: Command::new(&all),
        }
    }
}

impl Req {
    /// `NAME SUBCOMMAND key ARGS…` (`XINFO STREAM key`).
    pub fn sub(name: &str, sub: &str, key: &Bytes, args: &[&[u8]]) -> Req {
        let mut all: Vec<&[u8]> = Vec::with_capacity(args.len() + 3);
        all.extend_from_slice(&[name.as_bytes(), sub.as_bytes(), key]);
        all.extend_from_slice(args);
        Req {
            key: key.clone(),
            cmd: Command::new(&all),
        }
    }
}

/// One server of a side.
struct Node {
    addr: String,
    conn: Conn<Stream>,
    /// The db selected on this connection.
    db: u64,
}

/// The servers of one side.
pub struct Side {
    pub which: Which,
    /// For the summary: the address, the version, standalone or cluster.
    pub description: String,
    nodes: Vec<Node>,
    /// A cluster's master (index into `nodes`) of every slot; `None` for a standalone server.
    owner: Option<Vec<usize>>,
    version: (u32, u32, u32),
    limit: RateLimit,
}

/// Both sides of the comparison.
pub struct Sides {
    pub src: Side,
    pub dst: Side,
}

impl Sides {
    /// Sends the same requests to both sides at once; their replies, source's first.
    pub async fn both(&mut self, db: u64, reqs: &[Req]) -> Result<(Vec<Frame>, Vec<Frame>), Fatal> {
        let (s, d) = tokio::join!(self.src.exchange(db, reqs), self.dst.exchange(db, reqs));
        Ok((s?, d?))
    }
}

impl Side {
    /// Connects to the server of `ep`, and to every master when it is a cluster node.
    pub async fn open(
        which: Which,
        ep: &Endpoint,
        timeout: Duration,
        max_ops: u64,
    ) -> Result<Side, Fatal> {
        let fail = |e: &dyn std::fmt::Display| Fatal {
            side: Some(which),
            what: e.to_string(),
        };
        let mut conn = connect_and_auth(ep, timeout).await.map_err(|e| fail(&e))?;
        let server = info(&mut conn, "server").await.map_err(|e| fail(&e))?;
        let version = Caps::from_info(&server).map_err(|e| fail(&e))?.version;
        let shown = format!("{}.{}.{}", version.0, version.1, version.2);
        let cluster = info(&mut conn, "cluster").await.map_err(|e| fail(&e))?;
        if info_field(&cluster, "cluster_enabled") != Some("1") {
            return Ok(Side {
                which,
                description: format!("{ep} (Redis {shown}, standalone)"),
                nodes: vec![Node {
                    addr: ep.to_string(),
                    conn,
                    db: 0,
                }],
                owner: None,
                version,
                limit: RateLimit::new(max_ops),
            });
        }
        let topo = slot_map(&mut conn, ep.tls.is_some())
            .await
            .map_err(|e| fail(&format!("{ep}: {e}")))?;
        let mut nodes = Vec::with_capacity(topo.masters.len());
        for m in &topo.masters {
            let node_ep = ep.with_addr(&m.host, m.port);
            let conn = connect_and_auth(&node_ep, timeout)
                .await
                .map_err(|e| fail(&e))?;
            nodes.push(Node {
                addr: node_ep.to_string(),
                conn,
                db: 0,
            });
        }
        Ok(Side {
            which,
            description: format!(
                "{ep} (Redis {shown}, cluster of {} masters)",
                topo.masters.len()
            ),
            nodes,
            owner: Some(topo.owner.iter().map(|o| o.unwrap_or(0)).collect()),
            version,
            limit: RateLimit::new(max_ops),
        })
    }

    pub fn is_cluster(&self) -> bool {
        self.owner.is_some()
    }

    /// Whether every server of this side runs at least Redis `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.version.0, self.version.1) >= (major, minor)
    }

    /// Servers to scan: 1, or a cluster's masters.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The dbs holding keys (`INFO keyspace`); a cluster has db 0 only.
    pub async fn dbs(&mut self) -> Result<Vec<u64>, Fatal> {
        if self.is_cluster() {
            return Ok(vec![0]);
        }
        let which = self.which;
        let node = &mut self.nodes[0];
        let text = info(&mut node.conn, "keyspace").await.map_err(|e| Fatal {
            side: Some(which),
            what: format!("{}: {e}", node.addr),
        })?;
        Ok(keyspace_dbs(&text))
    }

    /// One `SCAN` call on server `node` in `db`: the next cursor (`0` at the end) and keys.
    pub async fn scan(
        &mut self,
        node: usize,
        db: u64,
        cursor: &Bytes,
    ) -> Result<(Bytes, Vec<Bytes>), Fatal> {
        self.limit.take(1).await;
        let db = self.db_here(db);
        let which = self.which;
        let Some(n) = self.nodes.get_mut(node) else {
            return Err(Fatal::other(format!("no server {node} to scan")));
        };
        let err = |what: String| Fatal {
            side: Some(which),
            what,
        };
        select(n, db).await.map_err(err)?;
        let reply = n
            .conn
            .call(&[&b"SCAN"[..], cursor, b"COUNT", SCAN_COUNT.as_bytes()])
            .await
            .map_err(|e| err(format!("{}: SCAN: {e}", n.addr)))?;
        if let Some(e) = frame_error(&reply) {
            return Err(err(format!("{}: SCAN refused: {e}", n.addr)));
        }
        match reply {
            Frame::Array(mut parts) if parts.len() == 2 => {
                let keys = match parts.pop() {
                    Some(Frame::Array(keys)) => keys,
                    _ => Vec::new(),
                };
                let next = match parts.pop() {
                    Some(Frame::BulkString(c) | Frame::SimpleString(c)) => c,
                    _ => return Err(err(format!("{}: SCAN: a reply without a cursor", n.addr))),
                };
                let keys = keys
                    .into_iter()
                    .filter_map(|k| match k {
                        Frame::BulkString(k) | Frame::SimpleString(k) => Some(k),
                        _ => None,
                    })
                    .collect();
                Ok((next, keys))
            }
            other => Err(err(format!(
                "{}: SCAN: unexpected reply {}",
                n.addr,
                frame_text(&other)
            ))),
        }
    }

    /// Sends `reqs` (pipelined, each to the server holding its key) in `db` (db 0 of a
    /// cluster), and returns their replies in order. See the module doc for error replies.
    pub async fn exchange(&mut self, db: u64, reqs: &[Req]) -> Result<Vec<Frame>, Fatal> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        self.limit.take(reqs.len()).await;
        let db = self.db_here(db);
        let which = self.which;
        let err = |what: String| Fatal {
            side: Some(which),
            what,
        };
        let route: Vec<usize> = reqs.iter().map(|r| self.node_of(&r.key)).collect();
        // Every server gets its batch before any reply is read: they work at the same time.
        let mut sent = vec![false; self.nodes.len()];
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let mut cmds: Vec<Command> = Vec::new();
            if node.db != db {
                cmds.push(Command::new(&["SELECT", &db.to_string()]));
            }
            let first = cmds.len();
            cmds.extend(
                reqs.iter()
                    .zip(&route)
                    .filter(|(_, n)| **n == i)
                    .map(|(r, _)| r.cmd.clone()),
            );
            if cmds.len() == first {
                continue;
            }
            node.conn
                .send_many(&cmds)
                .await
                .map_err(|e| err(format!("{}: {e}", node.addr)))?;
            sent[i] = true;
        }
        let mut out = vec![Frame::Null; reqs.len()];
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if !sent[i] {
                continue;
            }
            if node.db != db {
                let reply = read(node).await.map_err(err)?;
                if let Some(e) = frame_error(&reply) {
                    return Err(err(format!("{}: SELECT {db} refused: {e}", node.addr)));
                }
                node.db = db;
            }
            for (at, req) in reqs.iter().enumerate().filter(|(at, _)| route[*at] == i) {
                let reply = read(node).await.map_err(err)?;
                if let Some(e) = frame_error(&reply) {
                    if !key_changed(&e) {
                        return Err(err(refusal(&node.addr, req, &e)));
                    }
                }
                out[at] = reply;
            }
        }
        Ok(out)
    }

    /// The db that stands for `db` here: a cluster's db 0 stands for the standalone side's db
    /// being compared.
    fn db_here(&self, db: u64) -> u64 {
        if self.is_cluster() {
            0
        } else {
            db
        }
    }

    fn node_of(&self, key: &[u8]) -> usize {
        match &self.owner {
            None => 0,
            Some(owner) => owner.get(usize::from(key_slot(key))).copied().unwrap_or(0),
        }
    }
}

/// Error replies that mean the key changed between two reads of it (a live source).
fn key_changed(error: &str) -> bool {
    error.starts_with("WRONGTYPE")
        || error.starts_with("NOGROUP")
        || error.to_ascii_lowercase().contains("no such key")
}

/// The message of an error reply that ends the run.
fn refusal(addr: &str, req: &Req, error: &str) -> String {
    let (name, _) = req.cmd.describe();
    let key = printable(&req.key);
    if ["MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"]
        .iter()
        .any(|p| error.starts_with(p))
    {
        format!(
            "{addr}: {name} of key {key}: {error}: the cluster's slots changed during the comparison; run it again"
        )
    } else {
        format!("{addr}: {name} of key {key} refused: {error}")
    }
}

async fn select(node: &mut Node, db: u64) -> Result<(), String> {
    if node.db == db {
        return Ok(());
    }
    let reply = node
        .conn
        .call(&["SELECT", &db.to_string()])
        .await
        .map_err(|e| format!("{}: SELECT {db}: {e}", node.addr))?;
    if let Some(e) = frame_error(&reply) {
        return Err(format!("{}: SELECT {db} refused: {e}", node.addr));
    }
    node.db = db;
    Ok(())
}

async fn read(node: &mut Node) -> Result<Frame, String> {
    match tokio::time::timeout(READ_TIMEOUT, node.conn.read_frame()).await {
        Ok(Ok(f)) => Ok(f),
        Ok(Err(e)) => Err(format!("{}: {e}", node.addr)),
        Err(_) => Err(format!(
            "{}: no reply within {} s",
            node.addr,
            READ_TIMEOUT.as_secs()
        )),
    }
}

async fn info(conn: &mut Conn<Stream>, section: &str) -> Result<String, String> {
    let reply = conn
        .call(&["INFO", section])
        .await
        .map_err(|e| format!("INFO {section}: {e}"))?;
    if let Some(e) = frame_error(&reply) {
        return Err(format!("INFO {section} refused: {e}"));
    }
    Ok(frame_text(&reply))
}

/// The slot map (`CLUSTER SHARDS`, or `CLUSTER SLOTS` before Redis 7.0); every slot served.
async fn slot_map(conn: &mut Conn<Stream>, tls: bool) -> Result<Topology, String> {
    let shards = conn
        .call(&["CLUSTER", "SHARDS"])
        .await
        .map_err(|e| e.to_string())?;
    let topo = if frame_error(&shards).is_none() {
        topology::from_shards(&shards, tls)?
    } else {
        let slots = conn
            .call(&["CLUSTER", "SLOTS"])
            .await
            .map_err(|e| e.to_string())?;
        if let Some(e) = frame_error(&slots) {
            return Err(format!("CLUSTER SLOTS refused: {e}"));
        }
        topology::from_slots(&slots)?
    };
    if topo.unassigned() > 0 {
        return Err(format!(
            "the cluster leaves {} of 16384 slots without a master",
            topo.unassigned()
        ));
    }
    Ok(topo)
}

/// The dbs listed by `INFO keyspace` (`db5:keys=…`).
fn keyspace_dbs(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("db")?.split(':').next()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbs_from_keyspace() {
        let text =
            "# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\ndb5:keys=1,expires=1,avg_ttl=9\r\n";
        assert_eq!(keyspace_dbs(text), vec![0, 5]);
        assert!(keyspace_dbs("# Keyspace\r\n").is_empty());
    }

    #[test]
    fn changed_keys_are_not_refusals() {
        assert!(key_changed(
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        ));
        assert!(key_changed("NOGROUP No such key 'k' or consumer group 'g'"));
        assert!(key_changed("ERR no such key"));
        assert!(!key_changed("NOPERM this user has no permissions"));
        let req = Req::new("LRANGE", &Bytes::from_static(b"k"), &[b"0", b"9"]);
        let moved = refusal("h:1", &req, "MOVED 1 h:2");
        assert!(
            moved.contains("run it again") && moved.contains("LRANGE"),
            "{moved}"
        );
    }
}
