//! The sync barrier: has the replica (replicant) applied everything the source wrote?
//!
//! replicant acknowledges to the source (`REPLCONF ACK`) the offset the destination has
//! applied, so once writes stop, the destination holds the source's dataset when the replica
//! line of the source's `INFO replication` (`slaveN:…,state=online,offset=X,…`) shows X equal
//! to `master_repl_offset`. The source adds a `PING` to the stream every 10 s, moving its
//! offset ahead of the replica's for about a second, so both numbers are re-read on every poll.

use std::time::Duration;

use crate::server::RedisServer;
use crate::wait::{self, Check};

/// One `slaveN:` line of `INFO replication`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaLine {
    /// `wait_bgsave`, `send_bulk`, `online`, …
    pub state: String,
    /// The offset the replica last acknowledged.
    pub offset: u64,
    /// The port it announced (`REPLCONF listening-port`): replicant's is 0 unless told.
    pub port: u16,
}

/// The parts of `INFO replication` the barrier needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationInfo {
    pub master_repl_offset: u64,
    pub replicas: Vec<ReplicaLine>,
}

impl ReplicationInfo {
    /// Parses the text of `INFO replication`.
    pub fn parse(text: &str) -> Result<ReplicationInfo, String> {
        let mut master_repl_offset = None;
        let mut replicas = Vec::new();
        for line in text.lines().map(str::trim) {
            if let Some(value) = line.strip_prefix("master_repl_offset:") {
                master_repl_offset = Some(
                    value
                        .parse()
                        .map_err(|_| format!("bad master_repl_offset line {line:?}"))?,
                );
            } else if let Some((name, fields)) = line.split_once(':') {
                let is_replica = name
                    .strip_prefix("slave")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if is_replica {
                    replicas.push(parse_replica(fields)?);
                }
            }
        }
        Ok(ReplicationInfo {
            master_repl_offset: master_repl_offset
                .ok_or_else(|| "no master_repl_offset in INFO replication".to_string())?,
            replicas,
        })
    }

    /// At least one replica, every replica online and at the source's offset.
    pub fn in_sync(&self) -> bool {
        !self.replicas.is_empty()
            && self
                .replicas
                .iter()
                .all(|r| r.state == "online" && r.offset == self.master_repl_offset)
    }

    /// At least one replica has finished receiving the snapshot.
    pub fn any_online(&self) -> bool {
        self.replicas.iter().any(|r| r.state == "online")
    }
}

fn parse_replica(fields: &str) -> Result<ReplicaLine, String> {
    let mut state = None;
    let mut offset = None;
    let mut port = 0;
    for field in fields.split(',') {
        match field.split_once('=') {
            Some(("port", value)) => port = value.parse().unwrap_or(0),
            Some(("state", value)) => state = Some(value.to_string()),
            Some(("offset", value)) => {
                offset = Some(
                    value
                        .parse()
                        .map_err(|_| format!("bad replica offset in {fields:?}"))?,
                )
            }
            _ => {}
        }
    }
    match (state, offset) {
        (Some(state), Some(offset)) => Ok(ReplicaLine {
            state,
            offset,
            port,
        }),
        _ => Err(format!("replica line without state or offset: {fields:?}")),
    }
}

/// Reads and parses the source's `INFO replication`.
pub fn replication_info(source: &RedisServer) -> Result<ReplicationInfo, String> {
    let mut con = crate::server::connect(&source.url()).map_err(|err| err.to_string())?;
    let text: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut con)
        .map_err(|err| err.to_string())?;
    ReplicationInfo::parse(&text)
}

/// A numeric field of `INFO <section>` (e.g. `sync_full` of `stats`); panics naming it when
/// the server does not answer or has no such field.
pub fn info_number(server: &RedisServer, section: &str, name: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(&mut server.client())
        .unwrap_or_else(|e| panic!("INFO {section}: {e}"));
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} has no {name}"))
}

/// Waits until a replica of `source` is online (the snapshot has been sent). `alive` is
/// called on every poll and ends the wait early with its error (e.g. replicant exited).
pub fn wait_for_replica_online(
    source: &RedisServer,
    timeout: Duration,
    alive: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    wait_on_info(
        source,
        timeout,
        "a replica of the source to be online",
        alive,
        |info| info.any_online(),
    )
}

/// The sync barrier: waits until every replica of `source` is online and has acknowledged
/// `master_repl_offset`. Call it after the writes have stopped.
pub fn wait_for_sync(
    source: &RedisServer,
    timeout: Duration,
    alive: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    wait_on_info(
        source,
        timeout,
        "the replica to acknowledge the source's offset",
        alive,
        ReplicationInfo::in_sync,
    )
}

fn wait_on_info(
    source: &RedisServer,
    timeout: Duration,
    what: &str,
    mut alive: impl FnMut() -> Result<(), String>,
    done: impl Fn(&ReplicationInfo) -> bool,
) -> Result<(), String> {
    let mut last = None;
    let result = wait::wait_for(timeout, what, || {
        if let Err(err) = alive() {
            return Check::Failed(err);
        }
        match replication_info(source) {
            Ok(info) if done(&info) => Check::Ready(()),
            Ok(info) => {
                last = Some(info);
                Check::Pending
            }
            Err(err) => Check::Failed(format!("cannot read the source's INFO: {err}")),
        }
    });
    result.map_err(|err| format!("{err}; last INFO replication seen: {last:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
        slave0:ip=127.0.0.1,port=6380,state=online,offset=1234,lag=0\r\n\
        master_failover_state:no-failover\r\nmaster_replid:abc\r\n\
        master_repl_offset:1234\r\nslave_read_repl_offset:1234\r\n";

    #[test]
    fn parses_and_judges() {
        let info = ReplicationInfo::parse(INFO).expect("valid INFO");
        assert_eq!(info.master_repl_offset, 1234);
        assert_eq!(
            info.replicas,
            vec![ReplicaLine {
                state: "online".into(),
                offset: 1234,
                port: 6380
            }]
        );
        assert!(info.in_sync() && info.any_online());

        let behind = ReplicationInfo::parse(&INFO.replace("offset=1234,", "offset=1200,"))
            .expect("valid INFO");
        assert!(!behind.in_sync());

        let loading = ReplicationInfo::parse(&INFO.replace("state=online", "state=wait_bgsave"))
            .expect("valid INFO");
        assert!(!loading.in_sync() && !loading.any_online());

        let none = ReplicationInfo::parse("master_repl_offset:5\r\n").expect("valid INFO");
        assert!(!none.in_sync());
        assert!(ReplicationInfo::parse("role:master\r\n").is_err());
    }
}
