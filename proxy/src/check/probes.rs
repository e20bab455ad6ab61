//! The checks themselves: each asks one or two servers (on control connections with the
//! run's credentials and TLS) and turns the answer into a [`Finding`]. A connection that
//! cannot be made is itself a failed check; the checks that need it are then left out.

use std::time::Duration;

use redis_protocol::resp2::types::BytesFrame;
use replay::dest::probe;
use replay::net::{connect_and_auth, Endpoint, Stream};
use replay::plan::caps::{info_field, Caps};
use replay::resp::{frame_error, frame_text, Conn};

use super::{Finding, Verdict};
use crate::apply;
use crate::cli::SyncArgs;
use crate::config::Side;
use crate::fatal::Fatal;

/// What INFO says of one server.
#[derive(Debug, Default)]
struct Facts {
    info: String,
}

impl Facts {
    fn get(&self, name: &str) -> Option<&str> {
        info_field(&self.info, name)
    }

    fn num(&self, name: &str) -> u64 {
        self.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    fn keys(&self) -> u64 {
        apply::keyspace_keys(&self.info)
    }

    fn dbs(&self) -> Vec<u64> {
        self.info
            .lines()
            .filter_map(|l| l.strip_prefix("db")?.split(':').next()?.parse().ok())
            .collect()
    }
}

async fn facts(conn: &mut Conn<Stream>) -> Result<Facts, String> {
    let mut info = String::new();
    for section in ["server", "replication", "memory", "keyspace", "cluster"] {
        let r = conn
            .call(&["INFO", section])
            .await
            .map_err(|e| e.to_string())?;
        if let Some(e) = frame_error(&r) {
            return Err(format!("INFO {section} refused: {e}"));
        }
        info.push_str(&frame_text(&r));
    }
    Ok(Facts { info })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// Runs every check. `resuming`: the destination holds an earlier run's copy.
pub async fn all(args: &SyncArgs, resuming: bool) -> Result<Vec<Finding>, Fatal> {
    let timeout = Duration::from_secs(args.apply.connect_timeout.max(1));
    let source = apply::endpoint(&args.source, Side::Source, &args.source_side.flags())?;
    let target = apply::endpoint(
        &args.apply.target,
        Side::Target,
        &args.apply.target_side.flags(),
    )?;
    let mut out = Vec::new();
    let src = connect(&source, Side::Source, timeout, &mut out).await;
    let dst = connect(&target, Side::Target, timeout, &mut out).await;
    let src_facts = match src {
        Some(mut c) => {
            let f = facts(&mut c).await;
            if let Ok(f) = &f {
                source_buffers(&mut c, f, &mut out).await;
            }
            psync_allowed(&mut c, source.user.as_deref(), &mut out).await;
            match f {
                Ok(f) => Some(f),
                Err(e) => {
                    out.push(Finding::new("source info", Verdict::Fail, e).on(Side::Source));
                    None
                }
            }
        }
        None => None,
    };
    let dst_facts = match dst {
        Some(mut c) => match facts(&mut c).await {
            Ok(f) => Some(f),
            Err(e) => {
                out.push(Finding::new("target info", Verdict::Fail, e).on(Side::Target));
                None
            }
        },
        None => None,
    };
    // A whole cluster source: every other master shard is checked as the seed was.
    if args.source_shard.is_none()
        && src_facts
            .as_ref()
            .is_some_and(|f| f.get("cluster_enabled") == Some("1"))
    {
        shard_checks(&source, timeout, &mut out).await;
    }
    if let (Some(s), Some(d)) = (&src_facts, &dst_facts) {
        versions(s, d, &mut out);
        target_checks(args, &target, timeout, s, d, resuming, &mut out).await;
    }
    Ok(out)
}

/// The source checks (reachable, PSYNC allowed, backlog, output buffer) of every master of the
/// cluster `seed` belongs to, but the seed's own; each reason names the master.
async fn shard_checks(seed: &Endpoint, timeout: Duration, out: &mut Vec<Finding>) {
    let nodes = match crate::source::shard::read_nodes(seed, timeout).await {
        Ok(n) => n,
        Err(e) => {
            out.push(Finding::new("source shards", Verdict::Fail, e.to_string()).on(Side::Source));
            return;
        }
    };
    let masters: Vec<_> = nodes
        .iter()
        .filter(|n| n.master && !n.failed && !n.slots.is_empty())
        .filter(|n| !(n.addr.host == seed.host && n.addr.port == seed.port))
        .collect();
    out.push(
        Finding::new(
            "source shards",
            Verdict::Pass,
            format!(
                "a Redis Cluster: {} master shards, one link each",
                masters.len() + 1
            ),
        )
        .on(Side::Source),
    );
    for m in masters {
        let ep = seed.with_addr(&m.addr.host, m.addr.port);
        let mut found = Vec::new();
        if let Some(mut c) = connect(&ep, Side::Source, timeout, &mut found).await {
            match facts(&mut c).await {
                Ok(f) => source_buffers(&mut c, &f, &mut found).await,
                Err(e) => {
                    found.push(Finding::new("source info", Verdict::Fail, e).on(Side::Source))
                }
            }
            psync_allowed(&mut c, ep.user.as_deref(), &mut found).await;
        }
        for mut f in found {
            if !f.reason.starts_with(&ep.to_string()) {
                f.reason = format!("master {ep}: {}", f.reason);
            }
            out.push(f);
        }
    }
}

impl Finding {
    fn on(mut self, side: Side) -> Self {
        self.side = Some(side);
        self
    }
}

async fn connect(
    ep: &Endpoint,
    side: Side,
    timeout: Duration,
    out: &mut Vec<Finding>,
) -> Option<Conn<Stream>> {
    let name = match side {
        Side::Source => "source connection",
        Side::Target => "target connection",
    };
    match connect_and_auth(ep, timeout).await {
        Ok(c) => {
            let how = if ep.tls.is_some() { "TLS" } else { "plain TCP" };
            let who = ep
                .user
                .as_deref()
                .map_or(String::new(), |u| format!(" as {u}"));
            out.push(
                Finding::new(
                    name,
                    Verdict::Pass,
                    format!("{ep} reached over {how}, authenticated{who}"),
                )
                .on(side),
            );
            Some(c)
        }
        Err(e) => {
            out.push(Finding::new(name, Verdict::Fail, e.to_string()).on(side));
            None
        }
    }
}

/// PSYNC may not be tried for real (the source would start a snapshot): `ACL DRYRUN` asks the
/// source whether the user may run it. A user that may not run `ACL DRYRUN` (or a source
/// older than 7.0) leaves the question to the sync's handshake.
async fn psync_allowed(c: &mut Conn<Stream>, user: Option<&str>, out: &mut Vec<Finding>) {
    const NAME: &str = "source PSYNC permission";
    let user = user.unwrap_or("default");
    let finding = match c.call(&["ACL", "DRYRUN", user, "PSYNC", "?", "-1"]).await {
        Ok(r) => match (frame_error(&r), frame_text(&r)) {
            (None, t) if t == "OK" => {
                Finding::new(NAME, Verdict::Pass, format!("{user} may run PSYNC"))
            }
            (None, t) => Finding::new(
                NAME,
                Verdict::Fail,
                format!("the source user may not replicate: {t}"),
            ),
            (Some(e), _) => Finding::new(
                NAME,
                Verdict::Warn,
                format!("not probed (ACL DRYRUN refused: {e}); the sync's handshake will tell"),
            ),
        },
        Err(e) => Finding::new(NAME, Verdict::Warn, format!("could not probe: {e}")),
    };
    out.push(finding.on(Side::Source));
}

/// The source's backlog and output-buffer limit for replicas: advice.
async fn source_buffers(c: &mut Conn<Stream>, f: &Facts, out: &mut Vec<Finding>) {
    let backlog = f.num("repl_backlog_size");
    let finding = if backlog < 64 << 20 {
        Finding::new(
            "source repl-backlog-size",
            Verdict::Warn,
            format!(
                "{}: after a lost link or a restart the stream continues only while the backlog still holds the writes since; raise it (e.g. CONFIG SET repl-backlog-size 256mb) or a blip means a full copy",
                mib(backlog)
            ),
        )
    } else {
        Finding::new("source repl-backlog-size", Verdict::Pass, mib(backlog))
    };
    out.push(finding.on(Side::Source));
    let limit = match c
        .call(&["CONFIG", "GET", "client-output-buffer-limit"])
        .await
    {
        Ok(BytesFrame::Array(parts)) => parts.iter().map(frame_text).collect::<Vec<_>>().join(" "),
        _ => {
            out.push(Finding::new("source replica output buffer", Verdict::Pass, "not readable (CONFIG GET refused); replicant reads the link at line rate whatever the destination's speed").on(Side::Source));
            return;
        }
    };
    let replica = limit
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(4)
        .find(|w| w[0] == "replica" || w[0] == "slave")
        .map(|w| w[1..].join(" "));
    out.push(
        Finding::new(
            "source replica output buffer",
            Verdict::Pass,
            format!(
                "client-output-buffer-limit replica {}: replicant reads the link at line rate (spooling to disk), so only a full spool (--spool-max) lets it fill",
                replica.unwrap_or_else(|| "?".into())
            ),
        )
        .on(Side::Source),
    );
}

fn versions(s: &Facts, d: &Facts, out: &mut Vec<Finding>) {
    let parse = |f: &Facts| Caps::from_info(&f.info).ok();
    let (Some(sc), Some(dc)) = (parse(s), parse(d)) else {
        out.push(Finding::new(
            "versions",
            Verdict::Warn,
            "a version could not be read",
        ));
        return;
    };
    let v = |c: &Caps| format!("{}.{}.{}", c.version.0, c.version.1, c.version.2);
    let f = if sc.rdb_version <= dc.rdb_version {
        Finding::new(
            "versions",
            Verdict::Pass,
            format!(
                "source {} (RDB {}), destination {} (RDB {}): every value goes by RESTORE",
                v(&sc),
                sc.rdb_version,
                v(&dc),
                dc.rdb_version
            ),
        )
    } else {
        Finding::new(
            "versions",
            Verdict::Warn,
            format!("source {} writes RDB {}, destination {} restores up to RDB {}: values in newer encodings are rewritten as commands (same data, slower); features the destination lacks (e.g. hash field TTLs before 7.4) are counted and logged", v(&sc), sc.rdb_version, v(&dc), dc.rdb_version),
        )
    };
    out.push(f);
}

#[allow(clippy::too_many_arguments)]
async fn target_checks(
    args: &SyncArgs,
    target: &Endpoint,
    timeout: Duration,
    s: &Facts,
    d: &Facts,
    resuming: bool,
    out: &mut Vec<Finding>,
) {
    // The nodes that hold data: every master of a cluster.
    let cluster = d.get("cluster_enabled") == Some("1");
    let nodes = if cluster {
        match probe(target, timeout).await {
            Ok(t) => {
                let Some(topo) = t.cluster else {
                    out.push(
                        Finding::new(
                            "target cluster slots",
                            Verdict::Fail,
                            "the destination left cluster mode",
                        )
                        .on(Side::Target),
                    );
                    return;
                };
                out.push(
                    Finding::new(
                        "target cluster slots",
                        Verdict::Pass,
                        format!("all 16384 slots served by {} masters", topo.masters.len()),
                    )
                    .on(Side::Target),
                );
                topo.masters
                    .iter()
                    .map(|m| target.with_addr(&m.host, m.port))
                    .collect()
            }
            Err(e) => {
                out.push(
                    Finding::new("target cluster slots", Verdict::Fail, e.to_string())
                        .on(Side::Target),
                );
                return;
            }
        }
    } else {
        vec![target.clone()]
    };
    if cluster {
        match apply::db_map(&args.apply) {
            Ok(map) => {
                let unmapped: Vec<String> = s
                    .dbs()
                    .into_iter()
                    .filter(|db| !map.maps(*db))
                    .map(|d| d.to_string())
                    .collect();
                if unmapped.is_empty() {
                    out.push(
                        Finding::new(
                            "source dbs",
                            Verdict::Pass,
                            "every source db with keys maps to the cluster's db 0",
                        )
                        .on(Side::Target),
                    );
                } else {
                    let example = unmapped[0].clone();
                    out.push(Finding::new("source dbs", Verdict::Fail, format!(
                        "the destination is a Redis Cluster, which has only db 0, and the source has keys in db {}; map them with --db-map {example}:0 (one SRC:0 per db) or --all-dbs-to 0",
                        unmapped.join(", ")
                    )).on(Side::Target));
                }
            }
            Err(e) => out.push(Finding::new("source dbs", Verdict::Fail, e.what).on(Side::Target)),
        }
    }
    // Keys, memory and eviction, summed over the nodes.
    let mut keys = 0u64;
    let (mut used, mut max) = (0u64, 0u64);
    let mut policies = Vec::new();
    for ep in &nodes {
        let facts = match connect_and_auth(ep, timeout).await {
            Ok(mut c) => facts(&mut c).await,
            Err(e) => Err(e.to_string()),
        };
        match facts {
            Ok(f) => {
                keys += f.keys();
                used += f.num("used_memory");
                max = if f.num("maxmemory") == 0 || (max == 0 && !policies.is_empty()) {
                    0
                } else {
                    max + f.num("maxmemory")
                };
                policies.push(f.get("maxmemory_policy").unwrap_or("?").to_string());
            }
            Err(e) => {
                out.push(
                    Finding::new("target node", Verdict::Fail, format!("{ep}: {e}"))
                        .on(Side::Target),
                );
                return;
            }
        }
    }
    let empty = if keys == 0 {
        Finding::new(
            "target empty",
            Verdict::Pass,
            "the destination holds no keys",
        )
    } else if resuming {
        Finding::new(
            "target empty",
            Verdict::Pass,
            format!("{keys} keys, from the run this one continues"),
        )
    } else if args.source_shard.is_some() {
        // One replicant per source shard: the others write here too.
        Finding::new(
            "target empty",
            Verdict::Warn,
            format!("the destination holds {keys} keys; expected when the other shards of the source cluster are copied into it too (else empty it first)"),
        )
    } else {
        Finding::new("target empty", Verdict::Fail, format!("the destination holds {keys} keys: keys of the same name are replaced, the others stay and the result is not a copy of the source; empty it (FLUSHALL) or choose another"))
    };
    out.push(empty.on(Side::Target));
    let evicting: Vec<&String> = policies
        .iter()
        .filter(|p| p.as_str() != "noeviction")
        .collect();
    let policy = match evicting.first() {
        None => Finding::new("target maxmemory-policy", Verdict::Pass, "noeviction: a full destination refuses writes (OOM, the run stops) instead of losing keys"),
        Some(p) => Finding::new("target maxmemory-policy", Verdict::Fail, format!("{p}: the destination may evict keys during the migration and they would be lost silently; CONFIG SET maxmemory-policy noeviction for the migration")),
    };
    out.push(policy.on(Side::Target));
    let need = s.num("used_memory_dataset").max(
        s.num("used_memory")
            .saturating_sub(s.num("used_memory_startup")),
    );
    let headroom = if max == 0 {
        Finding::new(
            "target memory headroom",
            Verdict::Pass,
            format!(
                "no maxmemory on the destination; the source's dataset takes about {}",
                mib(need)
            ),
        )
    } else {
        let free = max.saturating_sub(used);
        let v = if need > free {
            Verdict::Fail
        } else if need * 10 > free * 8 {
            Verdict::Warn
        } else {
            Verdict::Pass
        };
        Finding::new(
            "target memory headroom",
            v,
            format!(
                "the source's dataset takes about {}, the destination has {} free of maxmemory {}",
                mib(need),
                mib(free),
                mib(max)
            ),
        )
    };
    out.push(headroom.on(Side::Target));
}
