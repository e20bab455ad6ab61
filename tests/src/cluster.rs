//! `RedisCluster`: a Redis Cluster of real `redis-server` nodes, for cluster destinations.
//!
//! Every node is a [`RedisServer`] started as a cluster node (its own directory, its own
//! `nodes.conf`, a free cluster bus port, a short `cluster-node-timeout` so that failover
//! tests do not wait long); `redis-cli --cluster create … --cluster-replicas R --cluster-yes`
//! joins them (redis-cli chooses which nodes are masters), and starting waits (polling, with a
//! deadline) until every node reports `cluster_state:ok`, knows every other node, sees all
//! 16384 slots assigned to the same masters, and every replica's link to its master is up.
//! Dropping the cluster kills every node.
//!
//! [`key_slot`] and [`SlotMap`] (in `cluster/slots.rs`) say which master owns a key; the
//! comparison (`compare`) uses them to read each key from its master.
//!
//! `cluster/admin.rs` changes a running cluster as an operator would, for the topology tests:
//! `redis-cli --cluster reshard`, `add-node` (the new node is adopted by the `RedisCluster`)
//! and `rebalance`, `CLUSTER FAILOVER` on a replica, and a master killed with SIGKILL (it
//! leaves [`RedisCluster::nodes`], but the other nodes still count it as known).

mod admin;
mod slots;

use std::time::Duration;

use redis::{Connection, Value};

use crate::server::{self, RedisServer, RedisServerBuilder, ServerTls};
use crate::wait::{self, Check};

pub use slots::{hash_tag, key_slot, SlotMap, SLOTS};

/// The default `cluster-node-timeout`: short, for the failover tests.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(2_000);
/// How long `redis-cli --cluster create` and the cluster's convergence may take (scaled).
const FORM_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Redis Cluster; every node is killed on drop.
pub struct RedisCluster {
    /// Every live node, in the order they were started and joined the cluster.
    nodes: Vec<RedisServer>,
    /// Nodes killed by [`RedisCluster::kill_node`]: the others still count them as known.
    dead: Vec<RedisServer>,
    /// How every node was started: for nodes added later ([`RedisCluster::start_new_node`]).
    node_builder: RedisServerBuilder,
    /// `requirepass` of every node, for `redis-cli`.
    password: Option<String>,
}

/// How to start a [`RedisCluster`].
#[derive(Debug, Clone)]
pub struct RedisClusterBuilder {
    masters: usize,
    replicas_per_master: usize,
    node_timeout: Duration,
    password: Option<String>,
    config: Vec<(String, String)>,
    tls: Option<ServerTls>,
    binary: Option<std::path::PathBuf>,
}

impl RedisCluster {
    /// Three masters, no replicas.
    pub fn builder() -> RedisClusterBuilder {
        RedisClusterBuilder {
            masters: 3,
            replicas_per_master: 0,
            node_timeout: NODE_TIMEOUT,
            password: None,
            config: Vec::new(),
            tls: None,
            binary: None,
        }
    }

    /// Three masters, no replicas; panics if the cluster does not form.
    pub fn start() -> RedisCluster {
        RedisCluster::builder().start()
    }

    /// Every live node, masters and replicas, in the order they joined the cluster.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The nodes that are masters now (asked with `ROLE`: a failover changes them). A node
    /// that does not answer is left out.
    pub fn masters(&self) -> Vec<&RedisServer> {
        self.nodes_with_role("master")
    }

    /// The nodes that are replicas now (asked with `ROLE`).
    pub fn replicas(&self) -> Vec<&RedisServer> {
        self.nodes_with_role("slave")
    }

    fn nodes_with_role(&self, wanted: &str) -> Vec<&RedisServer> {
        self.nodes
            .iter()
            .filter(|node| role(node).is_ok_and(|role| role == wanted))
            .collect()
    }

    /// The URL of one master: what `replicant sync --target` is given.
    pub fn url(&self) -> String {
        match self.masters().first() {
            Some(master) => master.url(),
            None => panic!(
                "no node of the cluster answers as a master\n{}",
                self.log_tails(10)
            ),
        }
    }

    /// The TLS URL of one master (a cluster started with [`RedisClusterBuilder::tls`]).
    pub fn tls_url(&self) -> String {
        match self.masters().first() {
            Some(master) => master.tls_url(),
            None => panic!(
                "no node of the cluster answers as a master\n{}",
                self.log_tails(10)
            ),
        }
    }

    /// The node listening on `addr` (`ip:port`, as `CLUSTER SLOTS` gives it).
    pub fn node(&self, addr: &str) -> Option<&RedisServer> {
        self.nodes.iter().find(|node| node.addr() == addr)
    }

    /// Which master owns each slot, as the first node that answers sees it.
    pub fn slot_map(&self) -> SlotMap {
        self.try_slot_map().unwrap_or_else(|err| {
            panic!(
                "cannot read the cluster's slot map: {err}\n{}",
                self.log_tails(10)
            )
        })
    }

    fn try_slot_map(&self) -> Result<SlotMap, String> {
        let mut last_error = "the cluster has no nodes".to_string();
        for node in &self.nodes {
            match node_slot_map(node) {
                Ok(map) => return Ok(map),
                Err(err) => last_error = format!("{}: {err}", node.addr()),
            }
        }
        Err(last_error)
    }

    /// The master that owns `key`'s slot.
    pub fn master_for_key(&self, key: &[u8]) -> &RedisServer {
        let map = self.slot_map();
        let addr = map.owner_of_key(key).unwrap_or_else(|| {
            panic!(
                "slot {} of key {} has no master",
                key_slot(key),
                crate::display::show(key)
            )
        });
        self.node(addr)
            .unwrap_or_else(|| panic!("the slot map names {addr}, which is not a node here"))
    }

    /// A connection to the master that owns `key`'s slot.
    pub fn client_for_key(&self, key: &[u8]) -> Connection {
        self.master_for_key(key).client()
    }

    /// Waits until the cluster is whole again: every node answering reports
    /// `cluster_state:ok`, knows every node, sees all slots assigned and the same slot map,
    /// and every replica's link is up. For tests that kill or fail over nodes.
    pub fn wait_until_ok(&self, timeout: Duration) -> Result<(), String> {
        let mut last = String::new();
        let result = wait::wait_for(timeout, "the cluster to be ok on every node", || match self
            .health()
        {
            Ok(()) => Check::Ready(()),
            Err(problem) => {
                last = problem;
                Check::Pending
            }
        });
        result.map_err(|err| format!("{err}; last problem seen: {last}"))
    }

    /// `Ok` when the cluster is whole (see [`RedisCluster::wait_until_ok`]), else the first
    /// problem found.
    fn health(&self) -> Result<(), String> {
        let mut first_map: Option<SlotMap> = None;
        for node in &self.nodes {
            let name = node.addr();
            let mut con = server::connect(&node.url()).map_err(|err| format!("{name}: {err}"))?;
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut con)
                .map_err(|err| format!("{name}: CLUSTER INFO: {err}"))?;
            let field = |name: &str| info_field(&info, name).unwrap_or_default();
            if field("cluster_state") != "ok" {
                return Err(format!("{name}: cluster_state:{}", field("cluster_state")));
            }
            if field("cluster_slots_assigned") != SLOTS.to_string() {
                return Err(format!(
                    "{name}: cluster_slots_assigned:{}",
                    field("cluster_slots_assigned")
                ));
            }
            // A killed node stays known (flagged `fail`) until someone forgets it.
            let known = self.nodes.len() + self.dead.len();
            if field("cluster_known_nodes") != known.to_string() {
                return Err(format!(
                    "{name}: cluster_known_nodes:{} of {known}",
                    field("cluster_known_nodes"),
                ));
            }
            let map = node_slot_map(node).map_err(|err| format!("{name}: {err}"))?;
            match &first_map {
                Some(first) if *first != map => {
                    return Err(format!("{name} sees another slot map than the first node"))
                }
                Some(_) => {}
                None => first_map = Some(map),
            }
            if role(node)? == "slave" {
                let replication: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut con)
                    .map_err(|err| format!("{name}: INFO replication: {err}"))?;
                let link = info_field(&replication, "master_link_status").unwrap_or_default();
                if link != "up" {
                    return Err(format!("{name}: replica with master_link_status:{link}"));
                }
            }
        }
        Ok(())
    }

    /// The last `lines` lines of every node's log (killed nodes' too), for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let live = self.nodes.iter().map(|node| (node, ""));
        let dead = self.dead.iter().map(|node| (node, " (killed)"));
        live.chain(dead)
            .map(|(node, killed)| {
                let tail = node.log_tail(lines);
                format!("--- node {}{killed} ---\n{tail}", node.addr())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl RedisClusterBuilder {
    /// Masters (at least 3, which `redis-cli --cluster create` requires).
    pub fn masters(mut self, masters: usize) -> Self {
        self.masters = masters;
        self
    }

    /// Replicas of every master.
    pub fn replicas_per_master(mut self, replicas: usize) -> Self {
        self.replicas_per_master = replicas;
        self
    }

    /// `cluster-node-timeout` (default [`NODE_TIMEOUT`]).
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.node_timeout = timeout;
        self
    }

    /// `requirepass` (and `masterauth`) on every node.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }

    /// TLS on every node's second port, and between the nodes (`tls-cluster yes`,
    /// `tls-replication yes`); the harness keeps using the plain ports.
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Runs this server binary on every node (another version: see
    /// [`server::other_server`]).
    pub fn binary(mut self, path: &std::path::Path) -> Self {
        self.binary = Some(path.to_path_buf());
        self
    }

    /// Adds `--name value` to every node's command line.
    pub fn config(mut self, name: &str, value: &str) -> Self {
        self.config.push((name.to_string(), value.to_string()));
        self
    }

    /// Starts the nodes, creates the cluster and waits until it is ok; panics with the
    /// nodes' log tails if it cannot.
    pub fn start(self) -> RedisCluster {
        assert!(
            self.masters >= 3,
            "redis-cli --cluster create needs at least 3 masters, not {}",
            self.masters
        );
        let count = self.masters * (1 + self.replicas_per_master);
        let node_builder = self.node_builder();
        let nodes = (0..count).map(|_| node_builder.clone().start()).collect();
        let cluster = RedisCluster {
            nodes,
            dead: Vec::new(),
            node_builder,
            password: self.password.clone(),
        };
        if let Err(err) = self.create(&cluster) {
            panic!("the cluster did not form: {err}\n{}", cluster.log_tails(10));
        }
        if let Err(err) = cluster.wait_until_ok(FORM_TIMEOUT) {
            panic!(
                "the cluster did not become ok: {err}\n{}",
                cluster.log_tails(10)
            );
        }
        cluster
    }

    /// How every node is started: a cluster node with the password and configuration asked.
    fn node_builder(&self) -> RedisServerBuilder {
        let builder = RedisServer::builder().cluster_node(self.node_timeout);
        let builder = match &self.binary {
            Some(b) => builder.binary(b),
            None => builder,
        };
        let builder = match &self.password {
            Some(password) => builder.password(password),
            None => builder,
        };
        let builder = match &self.tls {
            Some(tls) => builder
                .tls(tls.clone())
                .config("tls-cluster", "yes")
                .config("tls-replication", "yes"),
            None => builder,
        };
        self.config.iter().fold(builder, |builder, (name, value)| {
            builder.config(name, value)
        })
    }

    /// `redis-cli --cluster create`, under a deadline; its output in the error.
    fn create(&self, cluster: &RedisCluster) -> Result<(), String> {
        let mut args = vec!["--cluster".to_string(), "create".to_string()];
        args.extend(cluster.nodes.iter().map(RedisServer::addr));
        args.extend([
            "--cluster-replicas".to_string(),
            self.replicas_per_master.to_string(),
            "--cluster-yes".to_string(),
        ]);
        admin::redis_cli(&args, self.password.as_deref(), FORM_TIMEOUT).map(|_| ())
    }
}

/// `redis-cli`, next to `$REDIS_SERVER` if that is set, else from `PATH`.
pub fn redis_cli_binary() -> String {
    let server = server::redis_server_binary();
    match server.parent().map(|dir| dir.join("redis-cli")) {
        Some(cli) if std::env::var_os("REDIS_SERVER").is_some() && cli.is_file() => {
            cli.display().to_string()
        }
        _ => "redis-cli".to_string(),
    }
}

/// A node's role from `ROLE`: `master` or `slave`.
fn role(node: &RedisServer) -> Result<String, String> {
    let name = node.addr();
    let mut con = server::connect(&node.url()).map_err(|err| format!("{name}: {err}"))?;
    let reply: Value = redis::cmd("ROLE")
        .query(&mut con)
        .map_err(|err| format!("{name}: ROLE: {err}"))?;
    match reply {
        Value::Array(parts) if !parts.is_empty() => Ok(crate::display::text(&parts[0])),
        other => Err(format!(
            "{name}: unexpected ROLE reply {}",
            crate::display::text(&other)
        )),
    }
}

/// One node's view of the slot map (`CLUSTER SLOTS`).
fn node_slot_map(node: &RedisServer) -> Result<SlotMap, String> {
    let mut con = server::connect(&node.url()).map_err(|err| err.to_string())?;
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut con)
        .map_err(|err| format!("CLUSTER SLOTS: {err}"))?;
    SlotMap::from_cluster_slots(&reply)
}

/// The value of `name:value` in an `INFO`-style text.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
}
