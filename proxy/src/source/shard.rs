//! A Redis Cluster source, one shard per run: which shard this run follows
//! (`--source-shard ADDR|NODE-ID`), which of its nodes the link reads (`--source-read-from`),
//! and, after the link is lost, where that shard is now. A failover promotes a replica: the
//! shard is followed, not the node — it is whichever master one of the nodes seen in it is, or
//! serves. The topology is read with `CLUSTER NODES` from any node seen so far.
//!
//! It owns finding nodes; it must not read the stream or touch the destination.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use replay::cluster::nodes::{parse_nodes, ClusterNode};
use replay::cluster::slot::{key_slot, SLOTS};
use replay::cluster::NodeAddr;
use replay::net::{connect_and_auth, Endpoint};
use replay::resp::{frame_error, frame_text};

use super::SourceError;
use crate::cli::{ReadFrom, SyncArgs};
use crate::fatal::Fatal;

/// Which shard, as the operator named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardSpec {
    /// A node of the shard (its master or one of its replicas) by address.
    Addr(NodeAddr),
    /// A node of the shard by its cluster node id.
    Id(String),
    /// The shard that serves this slot (a whole cluster source: one plan per master).
    Slot(u16),
}

impl ShardSpec {
    pub fn parse(text: &str) -> Result<ShardSpec, String> {
        if let Some((host, port)) = text.rsplit_once(':') {
            let port = port
                .parse()
                .map_err(|_| format!("--source-shard {text:?}: bad port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            return Ok(ShardSpec::Addr(NodeAddr {
                host: host.to_string(),
                port,
            }));
        }
        if text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(ShardSpec::Id(text.to_ascii_lowercase()));
        }
        Err(format!(
            "--source-shard {text:?}: expected HOST:PORT or a 40-character node id"
        ))
    }

    fn names(&self, n: &ClusterNode) -> bool {
        match self {
            ShardSpec::Addr(a) => n.addr == *a,
            ShardSpec::Id(id) => n.id == *id,
            ShardSpec::Slot(s) => {
                n.master && !n.failed && n.slots.iter().any(|&(a, b)| (a..=b).contains(s))
            }
        }
    }
}

/// The shard now: its master (with its slots) and its replicas.
#[derive(Debug, Clone)]
pub struct Shard {
    pub master: ClusterNode,
    pub replicas: Vec<ClusterNode>,
}

impl Shard {
    /// Whether each slot is the shard's.
    pub fn slot_set(&self) -> Vec<bool> {
        let mut set = vec![false; SLOTS];
        for &(a, b) in &self.master.slots {
            for s in a..=b {
                set[usize::from(s)] = true;
            }
        }
        set
    }
}

/// The node the source's writes go to now (the shard's master), for the heartbeat and the
/// cutover; the link may read a replica.
#[derive(Debug, Clone)]
pub struct MasterAt(Arc<RwLock<Endpoint>>);

impl MasterAt {
    pub fn new(ep: Endpoint) -> Self {
        MasterAt(Arc::new(RwLock::new(ep)))
    }

    pub fn get(&self) -> Endpoint {
        match self.0.read() {
            Ok(e) => e.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn set(&self, ep: Endpoint) {
        match self.0.write() {
            Ok(mut e) => *e = ep,
            Err(p) => *p.into_inner() = ep,
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct ShardFollower {
    /// The source's credentials and TLS, for every node.
    base: Endpoint,
    timeout: Duration,
    read_from: ReadFrom,
    /// Every node id seen in the shard.
    members: BTreeSet<String>,
    /// Every node of the cluster last seen: where to ask next time.
    known: Vec<NodeAddr>,
    pub shard: Shard,
    /// The last link to a replica failed: read the master until the shard changes.
    replica_failed: bool,
}

impl ShardFollower {
    /// Finds the shard `spec` names, asking `seed` (any node of the cluster).
    pub async fn resolve(
        seed: &Endpoint,
        spec: &ShardSpec,
        read_from: ReadFrom,
        timeout: Duration,
    ) -> Result<ShardFollower, SourceError> {
        let nodes = read_nodes(seed, timeout).await?;
        let named = nodes.iter().find(|n| spec.names(n)).ok_or_else(|| {
            SourceError::Refused(format!(
                "--source-shard: no node {spec:?} in the source cluster; its masters: {}",
                masters_list(&nodes)
            ))
        })?;
        let master_id = match &named.master_id {
            Some(m) if !named.master => m.clone(),
            _ => named.id.clone(),
        };
        let members = BTreeSet::from([master_id]);
        let shard = find_shard(&nodes, &members).ok_or_else(|| {
            SourceError::Unready(format!(
                "the source shard of {spec:?} has no healthy master now"
            ))
        })?;
        let mut f = ShardFollower {
            base: seed.clone(),
            timeout,
            read_from,
            members,
            known: Vec::new(),
            shard,
            replica_failed: false,
        };
        f.learn(&nodes);
        Ok(f)
    }

    /// Reads the topology again (from any node seen so far): where the shard is now.
    /// `Ok(true)` when its master changed.
    pub async fn refresh(&mut self) -> Result<bool, SourceError> {
        let mut last = None;
        for addr in self.ask_order() {
            let ep = self.base.with_addr(&addr.host, addr.port);
            match read_nodes(&ep, self.timeout).await {
                Ok(nodes) => {
                    let Some(shard) = find_shard(&nodes, &self.members) else {
                        last = Some(SourceError::Unready(
                            "the source shard has no healthy master now (a failover may be under way)"
                                .into(),
                        ));
                        continue;
                    };
                    let moved = shard.master.id != self.shard.master.id;
                    if moved {
                        self.replica_failed = false;
                    }
                    self.shard = shard;
                    self.learn(&nodes);
                    return Ok(moved);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            SourceError::Unready("no node of the source cluster answers".into())
        }))
    }

    /// The last link to the node it read failed (so a replica is not tried again at once).
    pub fn link_failed(&mut self) {
        if self.reads_replica() {
            self.replica_failed = true;
        }
    }

    fn reads_replica(&self) -> bool {
        self.read_from == ReadFrom::Replica
            && !self.replica_failed
            && self.shard.replicas.iter().any(|r| !r.failed)
    }

    /// The node the link reads: a healthy replica when asked for one, else the master.
    pub fn link_endpoint(&self) -> Endpoint {
        let node = if self.reads_replica() {
            self.shard.replicas.iter().find(|r| !r.failed)
        } else {
            None
        };
        let a = &node.unwrap_or(&self.shard.master).addr;
        self.base.with_addr(&a.host, a.port)
    }

    pub fn master_endpoint(&self) -> Endpoint {
        let a = &self.shard.master.addr;
        self.base.with_addr(&a.host, a.port)
    }

    /// A hash tag whose slot is the shard's (for keys replicant writes to the source).
    pub fn tag(&self) -> Option<String> {
        let set = self.shard.slot_set();
        (0u32..1_000_000)
            .map(|i| i.to_string())
            .find(|t| set[usize::from(key_slot(t.as_bytes()))])
    }

    fn learn(&mut self, nodes: &[ClusterNode]) {
        self.members.insert(self.shard.master.id.clone());
        self.members
            .extend(self.shard.replicas.iter().map(|r| r.id.clone()));
        self.known = nodes
            .iter()
            .filter(|n| !n.failed)
            .map(|n| n.addr.clone())
            .collect();
    }

    /// The shard's own nodes first (they know it best), then the rest.
    fn ask_order(&self) -> Vec<NodeAddr> {
        let mut order: Vec<NodeAddr> = std::iter::once(self.shard.master.addr.clone())
            .chain(self.shard.replicas.iter().map(|r| r.addr.clone()))
            .collect();
        order.extend(
            self.known
                .iter()
                .filter(|a| !order.contains(a))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let seed = NodeAddr {
            host: self.base.host.clone(),
            port: self.base.port,
        };
        if !order.contains(&seed) {
            order.push(seed);
        }
        order
    }
}

/// One source stream a run follows.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The shard, for a cluster source.
    pub spec: Option<ShardSpec>,
    pub state_dir: PathBuf,
    /// The source side of the checkpoint's pair.
    pub source_id: String,
    /// Its name in metrics, INFO and logs: empty for the only stream, else the shard's first
    /// slot range at the start (bounded: one per source master).
    pub label: String,
}

/// The streams a run follows, from its flags and what the source is: the source itself; one
/// shard (`--source-shard`); or every master shard of a cluster source, each with a state dir
/// of its own under `--state-dir` (`shard-<first slot>`), named by its first slot so that a
/// restart finds each shard again whichever node is its master then.
pub async fn plans(
    args: &SyncArgs,
    source: &Endpoint,
    cluster: bool,
    timeout: Duration,
) -> Result<Vec<Plan>, Fatal> {
    let one = |spec, source_id| Plan {
        spec,
        state_dir: args.state_dir.clone(),
        source_id,
        label: String::new(),
    };
    match (&args.source_shard, cluster) {
        (None, false) => Ok(vec![one(None, source.to_string())]),
        (Some(_), false) => Err(Fatal::other(format!(
            "--source-shard is for a Redis Cluster source; {source} is a standalone server"
        ))),
        (Some(text), true) => {
            let spec = ShardSpec::parse(text).map_err(Fatal::other)?;
            Ok(vec![one(Some(spec), format!("{source} shard {text}"))])
        }
        (None, true) => {
            let nodes = read_nodes(source, timeout).await.map_err(Fatal::source)?;
            let mut firsts: Vec<(u16, u16)> = nodes
                .iter()
                .filter(|n| n.master && !n.failed)
                .filter_map(|n| n.slots.iter().min().copied())
                .collect();
            firsts.sort_unstable();
            if firsts.is_empty() {
                return Err(Fatal::source(format!(
                    "{source}: the source cluster has no healthy master with slots"
                )));
            }
            tracing::info!(shards = firsts.len(), masters = %masters_list(&nodes), "the source is a Redis Cluster: one link per master shard");
            Ok(firsts
                .into_iter()
                .map(|(a, b)| Plan {
                    spec: Some(ShardSpec::Slot(a)),
                    state_dir: args.state_dir.join(format!("shard-{a}")),
                    source_id: format!("{source} shard slot {a}"),
                    label: format!("{a}-{b}"),
                })
                .collect())
        }
    }
}

/// The healthy master that is, or is served by, one of `members`, with its replicas.
pub fn find_shard(nodes: &[ClusterNode], members: &BTreeSet<String>) -> Option<Shard> {
    let serves_member = |m: &ClusterNode| {
        members.contains(&m.id)
            || nodes
                .iter()
                .any(|n| n.master_id.as_deref() == Some(m.id.as_str()) && members.contains(&n.id))
    };
    let mut masters: Vec<&ClusterNode> = nodes
        .iter()
        .filter(|n| n.master && !n.failed && serves_member(n))
        .collect();
    // A master with slots wins over one that has none (a failed-over one, in a stale view).
    masters.sort_by_key(|m| m.slots.is_empty());
    let master = (*masters.first()?).clone();
    let replicas = nodes
        .iter()
        .filter(|n| n.master_id.as_deref() == Some(master.id.as_str()))
        .cloned()
        .collect();
    Some(Shard { master, replicas })
}

/// The cluster's masters, for messages: `id host:port slots …`.
pub fn masters_list(nodes: &[ClusterNode]) -> String {
    nodes
        .iter()
        .filter(|n| n.master && !n.slots.is_empty())
        .map(|n| format!("{} {}:{}", n.id, n.addr.host, n.addr.port))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CLUSTER NODES` of the node at `ep`.
pub async fn read_nodes(ep: &Endpoint, timeout: Duration) -> Result<Vec<ClusterNode>, SourceError> {
    let mut conn = connect_and_auth(ep, timeout).await?;
    let reply = conn.call(&["CLUSTER", "NODES"]).await?;
    if let Some(e) = frame_error(&reply) {
        return Err(SourceError::Refused(format!("CLUSTER NODES refused: {e}")));
    }
    parse_nodes(&frame_text(&reply)).map_err(SourceError::Protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        id: &str,
        port: u16,
        master: bool,
        of: Option<&str>,
        failed: bool,
        slots: &[(u16, u16)],
    ) -> ClusterNode {
        ClusterNode {
            id: id.into(),
            addr: NodeAddr {
                host: "127.0.0.1".into(),
                port,
            },
            master,
            failed,
            master_id: of.map(str::to_string),
            slots: slots.to_vec(),
        }
    }

    #[test]
    fn the_shard_is_followed_across_a_failover() {
        let before = vec![
            node("a", 1, true, None, false, &[(0, 8191)]),
            node("a2", 2, false, Some("a"), false, &[]),
            node("b", 3, true, None, false, &[(8192, 16383)]),
        ];
        let members = BTreeSet::from(["a".to_string()]);
        let s = find_shard(&before, &members).expect("found");
        assert_eq!(s.master.id, "a");
        assert_eq!(s.replicas.len(), 1);
        let members = BTreeSet::from(["a".to_string(), "a2".to_string()]);
        // a failed; a2 promoted with a's slots.
        let after = vec![
            node("a", 1, true, None, true, &[]),
            node("a2", 2, true, None, false, &[(0, 8191)]),
            node("b", 3, true, None, false, &[(8192, 16383)]),
        ];
        assert_eq!(find_shard(&after, &members).expect("found").master.id, "a2");
        // a back, as a replica of a2.
        let back = vec![
            node("a", 1, false, Some("a2"), false, &[]),
            node("a2", 2, true, None, false, &[(0, 8191)]),
        ];
        let s = find_shard(&back, &members).expect("found");
        assert_eq!((s.master.id.as_str(), s.replicas.len()), ("a2", 1));
        // A shard with no healthy master yet.
        let down = vec![
            node("a", 1, true, None, true, &[(0, 8191)]),
            node("a2", 2, false, Some("a"), false, &[]),
        ];
        assert!(find_shard(&down, &members).is_none());
    }

    #[test]
    fn specs() {
        assert_eq!(
            ShardSpec::parse("10.0.0.1:7000"),
            Ok(ShardSpec::Addr(NodeAddr {
                host: "10.0.0.1".into(),
                port: 7000
            }))
        );
        let id = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca";
        assert_eq!(ShardSpec::parse(id), Ok(ShardSpec::Id(id.into())));
        assert!(ShardSpec::parse("nonsense").is_err());
        assert!(ShardSpec::parse("host:port").is_err());
    }
}
