//! Changing a running [`RedisCluster`] as an operator would, for the topology tests: moving
//! slots (`redis-cli --cluster reshard`, `rebalance`), adding a master (`add-node`), a
//! coordinated failover (`CLUSTER FAILOVER` on a replica) and a master lost without warning
//! (SIGKILL). `redis-cli` runs under a deadline with its output in a file (in the error if it
//! fails); every wait afterwards polls with a deadline.

use std::fs::{self, File};
use std::process::{Command, Stdio};
use std::time::Duration;

use redis::Value;

use super::{redis_cli_binary, role, RedisCluster};
use crate::display::text;
use crate::server::{self, RedisServer};
use crate::wait::{self, Check};

/// How long one `redis-cli --cluster` command (a reshard, a rebalance) may take (scaled).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(120);

impl RedisCluster {
    /// The cluster id of the live node at `addr` (`CLUSTER MYID`).
    pub fn node_id(&self, addr: &str) -> Result<String, String> {
        let node = self.live_node(addr)?;
        let mut con = server::connect(&node.url()).map_err(|err| format!("{addr}: {err}"))?;
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut con)
            .map_err(|err| format!("{addr}: CLUSTER MYID: {err}"))
    }

    /// The address of the node that replicates the master at `master` now (by `ROLE`), if
    /// any.
    pub fn replica_of(&self, master: &str) -> Option<String> {
        self.replicas()
            .into_iter()
            .find(|replica| master_of(replica).is_ok_and(|addr| addr == master))
            .map(RedisServer::addr)
    }

    /// Waits until the node at `addr` answers `ROLE` with `wanted` (`master` or `slave`).
    pub fn wait_for_role(&self, addr: &str, wanted: &str, timeout: Duration) -> Result<(), String> {
        let node = self.live_node(addr)?;
        let mut last = String::new();
        let what = format!("{addr} to be a {wanted}");
        wait::wait_for(timeout, &what, || match role(node) {
            Ok(role) if role == wanted => Check::Ready(()),
            Ok(role) => {
                last = role;
                Check::Pending
            }
            Err(err) => {
                last = err;
                Check::Pending
            }
        })
        .map_err(|err| format!("{err}; last ROLE seen: {last}"))
    }

    /// `redis-cli --cluster reshard`: moves `slots` slots from the master at `from` to the
    /// master at `to`, slot by slot (`CLUSTER SETSLOT … IMPORTING/MIGRATING`, the keys with
    /// `MIGRATE`, then `SETSLOT … NODE`). Returns redis-cli's output.
    pub fn reshard(&self, from: &str, to: &str, slots: u16) -> Result<String, String> {
        let (from_id, to_id) = (self.node_id(from)?, self.node_id(to)?);
        let slots = slots.to_string();
        self.cli(&[
            "--cluster",
            "reshard",
            from,
            "--cluster-from",
            &from_id,
            "--cluster-to",
            &to_id,
            "--cluster-slots",
            &slots,
            "--cluster-yes",
        ])
    }

    /// `CLUSTER FAILOVER` on the replica at `replica` (coordinated: its master stops its
    /// clients until the replica has caught up, then the replica takes over its slots), then
    /// waits until the replica reports itself master.
    pub fn manual_failover(&self, replica: &str, timeout: Duration) -> Result<(), String> {
        let node = self.live_node(replica)?;
        let mut con = server::connect(&node.url()).map_err(|err| format!("{replica}: {err}"))?;
        redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .query::<()>(&mut con)
            .map_err(|err| format!("{replica}: CLUSTER FAILOVER: {err}"))?;
        self.wait_for_role(replica, "master", timeout)
    }

    /// Kills the node at `addr` with SIGKILL. It leaves [`RedisCluster::nodes`] (its log stays
    /// in [`RedisCluster::log_tails`]); the other nodes go on counting it as known, flagged
    /// `fail` once they notice, which [`RedisCluster::wait_until_ok`] expects.
    pub fn kill_node(&mut self, addr: &str) -> Result<(), String> {
        let index = self
            .nodes
            .iter()
            .position(|node| node.addr() == addr)
            .ok_or_else(|| format!("{addr} is not a live node of the cluster"))?;
        let mut node = self.nodes.remove(index);
        let killed = node.kill();
        self.dead.push(node);
        killed
    }

    /// Starts a node configured like the others (node timeout, password, configuration),
    /// alone in a cluster of its own until [`RedisCluster::add_node`] joins it.
    pub fn start_new_node(&self) -> RedisServer {
        self.node_builder.clone().start()
    }

    /// `redis-cli --cluster add-node NEW EXISTING`: `node` joins as a master without slots and
    /// becomes one of this cluster's nodes. Then waits until every node knows every other one
    /// and the cluster is ok.
    pub fn add_node(&mut self, node: RedisServer, timeout: Duration) -> Result<(), String> {
        let existing = self.any_master()?;
        let output = self.cli(&["--cluster", "add-node", &node.addr(), &existing])?;
        self.nodes.push(node);
        self.wait_until_ok(timeout)
            .map_err(|err| format!("{err}\n--- redis-cli add-node output ---\n{output}"))
    }

    /// `redis-cli --cluster rebalance EXISTING --cluster-use-empty-masters`: moves slots (as
    /// [`RedisCluster::reshard`] does) until every master, empty ones included, owns about as
    /// many. Returns redis-cli's output.
    pub fn rebalance_with_empty_masters(&self) -> Result<String, String> {
        let existing = self.any_master()?;
        self.cli(&[
            "--cluster",
            "rebalance",
            &existing,
            "--cluster-use-empty-masters",
        ])
    }

    fn live_node(&self, addr: &str) -> Result<&RedisServer, String> {
        self.node(addr)
            .ok_or_else(|| format!("{addr} is not a live node of the cluster"))
    }

    fn any_master(&self) -> Result<String, String> {
        self.masters()
            .first()
            .map(|master| master.addr())
            .ok_or_else(|| "no node of the cluster answers as a master".to_string())
    }

    fn cli(&self, args: &[&str]) -> Result<String, String> {
        let args: Vec<String> = args.iter().map(ToString::to_string).collect();
        redis_cli(&args, self.password.as_deref(), CLI_TIMEOUT)
    }
}

/// The `ip:port` of the master a replica follows, from its `ROLE` reply
/// (`slave, ip, port, state, offset`).
fn master_of(replica: &RedisServer) -> Result<String, String> {
    let name = replica.addr();
    let mut con = server::connect(&replica.url()).map_err(|err| format!("{name}: {err}"))?;
    let reply: Value = redis::cmd("ROLE")
        .query(&mut con)
        .map_err(|err| format!("{name}: ROLE: {err}"))?;
    match reply {
        Value::Array(parts) if parts.len() >= 3 && text(&parts[0]) == "slave" => {
            Ok(format!("{}:{}", text(&parts[1]), text(&parts[2])))
        }
        other => Err(format!("{name}: not a replica: ROLE {}", text(&other))),
    }
}

/// Runs `redis-cli ARGS` (with `-a PASSWORD` if given) until it exits or `timeout` (scaled)
/// passes; its output, or an error with the output.
pub(super) fn redis_cli(
    args: &[String],
    password: Option<&str>,
    timeout: Duration,
) -> Result<String, String> {
    let what = format!(
        "redis-cli {}",
        args.iter().take(2).cloned().collect::<Vec<_>>().join(" ")
    );
    let dir = tempfile::Builder::new()
        .prefix("replicant-redis-cli-")
        .tempdir()
        .map_err(|err| format!("cannot create a temp dir: {err}"))?;
    let output_path = dir.path().join("redis-cli.log");
    let output =
        File::create(&output_path).map_err(|err| format!("cannot create a log file: {err}"))?;
    let output_err = output
        .try_clone()
        .map_err(|err| format!("cannot clone a file handle: {err}"))?;
    let mut command = Command::new(redis_cli_binary());
    command.args(args);
    if let Some(password) = password {
        command.args(["-a", password, "--no-auth-warning"]);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(output_err)
        .spawn()
        .map_err(|err| format!("cannot run {}: {err}", redis_cli_binary()))?;
    let status = wait::wait_for(timeout, &what, || match child.try_wait() {
        Ok(Some(status)) => Check::Ready(status),
        Ok(None) => Check::Pending,
        Err(err) => Check::Failed(err.to_string()),
    });
    let read_output =
        || String::from_utf8_lossy(&fs::read(&output_path).unwrap_or_default()).into_owned();
    match status {
        Ok(status) if status.success() => Ok(read_output()),
        Ok(status) => Err(format!("{what} exited with {status}:\n{}", read_output())),
        Err(err) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("{err}:\n{}", read_output()))
        }
    }
}
