//! Setting up the destination side from the command line: endpoint, capabilities, and the sink
//! the commands go to — one writer for a standalone server, or a router and one writer per
//! master for a cluster.

use std::sync::Arc;
use std::time::Duration;

use replay::cluster::commands::CommandTable;

use replay::cluster::Router;
use replay::dest::once::StateKeys;
use replay::dest::{self, ClusterSink, DestError, SingleSink, Sink, WriterConfig};
use replay::net::{connect_and_auth, Endpoint};
use replay::pipeline::Pipeline;
use replay::plan::slots::{DbMap, SlotPlanner};
use replay::plan::{BatchLimits, Caps};
use replay::resp::{frame_error, frame_text};

use crate::cli::ApplyArgs;
use crate::config::{side_endpoint, Side, SideFlags};
use crate::fatal::Fatal;

/// A side's endpoint from its URL and flags, the password from that side's environment
/// variable if the URL has none. Says so, every start, when certificates go unchecked.
pub fn endpoint(url: &str, side: Side, flags: &SideFlags) -> Result<Endpoint, Fatal> {
    let ep =
        side_endpoint(side, url, flags, std::env::var(side.password_env()).ok()).map_err(|e| {
            Fatal {
                side: Some(side),
                what: e,
            }
        })?;
    if ep.tls.as_ref().is_some_and(|t| t.is_insecure()) {
        tracing::warn!(
            side = side.name(),
            "TLS certificate verification is off ({}-tls-insecure): the connection is encrypted, but the server is not authenticated",
            side.flag()
        );
    }
    Ok(ep)
}

/// The destination, ready: its capabilities and where commands go.
pub struct Destination {
    pub caps: Caps,
    pub sink: Sink,
    pub batch: BatchLimits,
    /// The source dbs the destination takes, and its command table (cluster destinations
    /// only).
    pub dbs: Option<(DbMap, Arc<CommandTable>)>,
    /// `--on-unsplittable log`.
    pub log_unsplittable: bool,
}

impl Destination {
    /// A pipeline for one source stream into this destination (with the slot planner when it
    /// is a cluster).
    pub fn pipeline(&self) -> Pipeline {
        Pipeline::new(self.dbs.clone().map(|(dbs, table)| {
            let mut p = SlotPlanner::new(dbs, table);
            p.log_unsplittable = self.log_unsplittable;
            p
        }))
    }
}

/// `--db-map SRC:DST[,…]` / `--all-dbs-to 0` as a map (a cluster only has db 0).
pub fn db_map(a: &ApplyArgs) -> Result<DbMap, Fatal> {
    if let Some(to) = a.all_dbs_to {
        if to != 0 {
            return Err(Fatal::target(
                "a Redis Cluster has only db 0: use --all-dbs-to 0",
            ));
        }
        return Ok(DbMap::all());
    }
    let mut mapped = vec![0];
    if let Some(spec) = &a.db_map {
        for pair in spec.split(',').filter(|p| !p.is_empty()) {
            let parsed = pair.split_once(':').and_then(|(s, d)| {
                Some((s.trim().parse::<u64>().ok()?, d.trim().parse::<u64>().ok()?))
            });
            match parsed {
                Some((src, 0)) => mapped.push(src),
                Some((_, dst)) => {
                    return Err(Fatal::target(format!(
                        "--db-map {pair}: a Redis Cluster has only db 0, not db {dst}"
                    )))
                }
                None => return Err(Fatal::other(format!("--db-map: {pair:?} is not SRC:DST"))),
            }
        }
    }
    Ok(DbMap {
        mapped: Some(mapped),
    })
}

/// Opens the destination; `retry_connect` is how long a lost connection is retried.
pub async fn open(a: &ApplyArgs, retry_connect: Duration) -> Result<Destination, Fatal> {
    if a.batch_elements == 0 || a.window_commands == 0 || a.window_bytes == 0 || a.queue_bytes == 0
    {
        return Err(Fatal::other(
            "--batch-elements, --window-commands, --window-bytes and --queue-bytes must be at least 1",
        ));
    }
    let ep = endpoint(&a.target, Side::Target, &a.target_side.flags())?;
    let timeout = Duration::from_secs(a.connect_timeout.max(1));
    let target = dest::probe(&ep, timeout).await.map_err(Fatal::target)?;
    let caps = target.caps;
    let batch = BatchLimits {
        elements: a.batch_elements,
        ..BatchLimits::default()
    };
    let config = |endpoint: Endpoint| {
        let mut cfg = WriterConfig::new(endpoint);
        cfg.connect_timeout = timeout;
        cfg.window_cmds = a.window_commands;
        cfg.window_bytes = a.window_bytes;
        cfg.queue_bytes = a.queue_bytes;
        cfg.retry_errors = Duration::from_secs(a.retry_errors.saturating_mul(60));
        cfg.retry_connect = retry_connect;
        cfg.reply_timeout = Duration::from_secs(a.target_timeout.max(1));
        cfg
    };
    let Some(topo) = target.cluster else {
        if a.db_map.is_some() || a.all_dbs_to.is_some() {
            return Err(Fatal::target(
                "--db-map and --all-dbs-to apply to cluster destinations; a standalone destination takes every db as it is",
            ));
        }
        tracing::info!(target = %ep, version = ?caps.version, rdb_version = caps.rdb_version, tls = ep.tls.is_some(), "destination ready");
        let single = SingleSink::open(config(ep)).await.map_err(Fatal::target)?;
        return Ok(Destination {
            caps,
            sink: Sink::single(single),
            batch,
            dbs: None,
            log_unsplittable: false,
        });
    };
    let dbs = db_map(a)?;
    let table = target
        .commands
        .ok_or_else(|| Fatal::target("a cluster destination without its command table"))?;
    tracing::info!(target = %ep, version = ?caps.version, masters = topo.masters.len(), commands = table.len(), tls = ep.tls.is_some(), "destination is a Redis Cluster");
    let router = Router::new(topo.clone());
    let sink = ClusterSink::open(topo, router, ep.clone(), config(ep))
        .await
        .map_err(Fatal::target)?;
    Ok(Destination {
        caps,
        sink: Sink::Cluster(Box::new(sink)),
        batch,
        dbs: Some((dbs, table)),
        log_unsplittable: a.on_unsplittable == crate::cli::OnUnsplittable::Log,
    })
}

/// The keys of every db in the text of `INFO keyspace` (`db0:keys=N,...` lines).
pub fn keyspace_keys(info: &str) -> u64 {
    info.lines()
        .filter(|l| l.starts_with("db"))
        .filter_map(|l| {
            l.split_once(':')?
                .1
                .split(',')
                .next()?
                .strip_prefix("keys=")?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Keys on the destination (every db; every master of a cluster), from `INFO keyspace`.
pub async fn key_count(nodes: &[Endpoint], timeout: Duration) -> Result<u64, DestError> {
    let mut total = 0;
    for ep in nodes {
        let mut conn = connect_and_auth(ep, timeout).await?;
        let info = conn.call(&["INFO", "keyspace"]).await?;
        if let Some(reply) = frame_error(&info) {
            return Err(DestError::Refused {
                cmd: "INFO keyspace".into(),
                key: None,
                reply,
            });
        }
        total += keyspace_keys(&frame_text(&info));
    }
    Ok(total)
}

/// Removes every key of db 0 whose slot is in `slots` from the destination's `nodes` (a
/// standalone server, or every master of a cluster), by SCAN and UNLINK in batches: what a
/// copy, or a FLUSHALL, of one cluster source shard (whose keys all go to db 0) replaces. How
/// many keys it removed.
pub async fn clear_slots(
    nodes: &[Endpoint],
    slots: &[bool],
    timeout: Duration,
) -> Result<u64, DestError> {
    let refused = |cmd: &str, reply: String| DestError::Refused {
        cmd: cmd.into(),
        key: None,
        reply,
    };
    let mut removed = 0u64;
    for ep in nodes {
        let mut conn = connect_and_auth(ep, timeout).await?;
        for db in ["0"] {
            let r = conn.call(&["SELECT", db]).await?;
            if let Some(e) = frame_error(&r) {
                return Err(refused("SELECT", e));
            }
            let mut cursor = "0".to_string();
            loop {
                let reply = conn
                    .call(&["SCAN", cursor.as_str(), "COUNT", "1000"])
                    .await?;
                if let Some(e) = frame_error(&reply) {
                    return Err(refused("SCAN", e));
                }
                let (next, keys) = scan_reply(&reply)
                    .ok_or_else(|| DestError::Unsupported("SCAN: unexpected reply".into()))?;
                let mine: Vec<&[u8]> = keys
                    .iter()
                    .map(|k| &k[..])
                    .filter(|k| slots[usize::from(replay::cluster::slot::key_slot(k))])
                    .collect();
                if !mine.is_empty() {
                    let mut args: Vec<&[u8]> = vec![b"UNLINK"];
                    args.extend(&mine);
                    let r = conn.call(&args).await?;
                    if let Some(e) = frame_error(&r) {
                        return Err(refused("UNLINK", e));
                    }
                    removed += mine.len() as u64;
                }
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
    }
    Ok(removed)
}

/// The cursor and the keys of a SCAN reply.
fn scan_reply(reply: &replay::resp::Frame) -> Option<(String, Vec<bytes::Bytes>)> {
    use replay::resp::Frame;
    let Frame::Array(parts) = reply else {
        return None;
    };
    let cursor = frame_text(parts.first()?);
    let Frame::Array(keys) = parts.get(1)? else {
        return None;
    };
    let keys = keys
        .iter()
        .filter_map(|k| match k {
            Frame::BulkString(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    Some((cursor, keys))
}

/// Removes replicant's state keys (`every_stream`: every stream's under `keys`' prefix, else
/// only `keys`' stream's) from every db of the destination's `nodes` (a standalone server, or
/// every master of a cluster), by SCAN with MATCH and UNLINK one key at a time (they are in
/// different slots). How many it removed.
pub async fn remove_state_keys(
    nodes: &[Endpoint],
    keys: &StateKeys,
    every_stream: bool,
    timeout: Duration,
) -> Result<u64, DestError> {
    let mine = |k: &[u8]| match every_stream {
        true => keys.is_state_key(k),
        false => keys.is_stream_key(k),
    };
    let refused = |cmd: &str, reply: String| DestError::Refused {
        cmd: cmd.into(),
        key: None,
        reply,
    };
    let mut removed = 0u64;
    for ep in nodes {
        let mut conn = connect_and_auth(ep, timeout).await?;
        let info = conn.call(&["INFO", "keyspace"]).await?;
        if let Some(e) = frame_error(&info) {
            return Err(refused("INFO keyspace", e));
        }
        for db in replay::dest::once::read::keyspace_dbs(&frame_text(&info)) {
            let r = conn.call(&["SELECT", db.to_string().as_str()]).await?;
            if let Some(e) = frame_error(&r) {
                return Err(refused("SELECT", e));
            }
            for pattern in keys.patterns() {
                let mut cursor = "0".to_string();
                loop {
                    let args: [&[u8]; 6] = [
                        b"SCAN",
                        cursor.as_bytes(),
                        b"MATCH",
                        &pattern,
                        b"COUNT",
                        b"1000",
                    ];
                    let reply = conn.call(&args).await?;
                    if let Some(e) = frame_error(&reply) {
                        return Err(refused("SCAN", e));
                    }
                    let (next, found) = scan_reply(&reply)
                        .ok_or_else(|| DestError::Unsupported("SCAN: unexpected reply".into()))?;
                    for k in found.iter().filter(|k| mine(k)) {
                        let r = conn.call(&[&b"UNLINK"[..], k]).await?;
                        if let Some(e) = frame_error(&r) {
                            return Err(refused("UNLINK", e));
                        }
                        removed += 1;
                    }
                    if next == "0" {
                        break;
                    }
                    cursor = next;
                }
            }
        }
    }
    Ok(removed)
}

/// The servers a destination's keys live on: every master of a cluster, or the server.
pub async fn key_nodes(ep: &Endpoint, timeout: Duration) -> Result<Vec<Endpoint>, Fatal> {
    let target = dest::probe(ep, timeout).await.map_err(Fatal::target)?;
    Ok(match target.cluster {
        Some(topo) => topo
            .masters
            .iter()
            .map(|m| ep.with_addr(&m.host, m.port))
            .collect(),
        None => vec![ep.clone()],
    })
}
