//! `cluster`: a full sync of a 3-master source cluster into a 3-master destination cluster.
//! The limit is native replication: one replica per source master, all three at once. Then
//! replicant, one process per shard (`--source-shard`, as a sidecar per master would run),
//! into a destination cluster; and RedisShake 4.2 (`$REDIS_SHAKE`, or the copy in
//! `../shared/servers/`, when present) with its cluster reader and writer. Each tool's
//! destination is then compared with the source, key by key (`DEBUG DIGEST-VALUE`, TTLs within
//! 1 s), and what it got wrong is reported beside its time.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use redis::Connection;
use replicant_tests::cluster::{key_slot, RedisCluster, SlotMap};
use replicant_tests::server::RedisServer;

use crate::dataset::{self, key_count};
use crate::procstat;
use crate::runner::replicant_binary;
use crate::{mib, secs, used_dataset};

const DEADLINE: Duration = Duration::from_secs(1800);

fn cluster(masters: usize) -> RedisCluster {
    RedisCluster::builder()
        .masters(masters)
        .config("repl-diskless-sync", "yes")
        .config("repl-diskless-sync-delay", "0")
        .config("client-output-buffer-limit", "replica 0 0 0")
        .start()
}

fn conns(c: &RedisCluster) -> (SlotMap, Vec<Connection>) {
    let map = c.slot_map();
    let conns = map
        .masters()
        .iter()
        .map(|a| c.node(a).expect("a master").client())
        .collect();
    (map, conns)
}

fn total_keys(conns: &mut [Connection]) -> u64 {
    conns.iter_mut().map(|c| key_count(c).unwrap_or(0)).sum()
}

fn wait_keys(
    what: &str,
    keys: u64,
    mut count: impl FnMut() -> u64,
    mut alive: impl FnMut() -> Result<(), String>,
) {
    let start = Instant::now();
    while count() < keys {
        if let Err(e) = alive() {
            panic!("{what}: {e}");
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// One tool's run: wall time, peak RSS (the largest of its processes, and their sum), CPU.
struct Run {
    name: &'static str,
    wall: Duration,
    rss_max: Option<u64>,
    rss_sum: Option<u64>,
    cpu: Option<f64>,
    wrong: Option<Wrong>,
}

pub fn run(size_mb: u64) {
    let src = cluster(3);
    let (map, mut masters) = conns(&src);
    let owner = |k: &[u8]| map.owner_index(key_slot(k)).unwrap_or(0);
    let written = dataset::fill_mixed_sharded(&mut masters, owner, size_mb << 20).expect("fill");
    let keys = total_keys(&mut masters);
    // Every key the fill wrote is there (its TTLs are a day long).
    assert_eq!(keys, written, "keys on the source cluster");
    let bytes: u64 = masters.iter_mut().map(used_dataset).sum();
    println!(
        "\n## cluster: 3-master source cluster into a 3-master destination cluster, {keys} keys, {:.0} MiB dataset",
        mib(bytes)
    );
    let mut runs = vec![native(&src, keys)];
    runs.push(replicant(&src, keys));
    match redis_shake_binary() {
        Some(bin) => runs.push(redis_shake(&bin, &src, keys)),
        None => println!("RedisShake: skipped (not found: set REDIS_SHAKE or put it in ../shared/servers/redis-shake-4.2.0/)"),
    }
    println!("| run | wall | MB/s | keys/s | peak RSS (largest process) | peak RSS (all processes) | CPU | keys wrong |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {:.2} s | {:.0} | {:.0} | {} | {} | {} | {} |",
            r.name,
            secs(r.wall),
            mib(bytes) / secs(r.wall),
            keys as f64 / secs(r.wall),
            crate::opt_mib(r.rss_max),
            crate::opt_mib(r.rss_sum),
            crate::opt_s(r.cpu),
            r.wrong.as_ref().map_or("-".into(), |w| w.to_string())
        );
    }
    let native_wall = secs(runs[0].wall);
    for r in &runs[1..] {
        println!(
            "{} / native wall time: {:.2}",
            r.name,
            secs(r.wall) / native_wall
        );
    }
}

/// Three native replicas, one per source master, started together.
fn native(src: &RedisCluster, keys: u64) -> Run {
    let replicas: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let start = Instant::now();
    for (r, m) in replicas.iter().zip(src.masters()) {
        redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(m.port())
            .query::<()>(&mut r.client())
            .expect("REPLICAOF");
    }
    let mut cs: Vec<Connection> = replicas.iter().map(RedisServer::client).collect();
    wait_keys(
        "the native replicas",
        keys,
        || total_keys(&mut cs),
        || Ok(()),
    );
    let wall = start.elapsed();
    let pids: Vec<u32> = replicas.iter().map(RedisServer::pid).collect();
    Run {
        name: "native replicas (3)",
        wall,
        rss_max: pids.iter().filter_map(|p| procstat::peak_rss(*p)).max(),
        rss_sum: sum(pids.iter().map(|p| procstat::peak_rss(*p))),
        cpu: sum_f(pids.iter().map(|p| procstat::cpu_seconds(*p))),
        wrong: None,
    }
}

/// One `replicant sync --source-shard` per source master into a destination cluster.
fn replicant(src: &RedisCluster, keys: u64) -> Run {
    let dst = cluster(3);
    let state = dst.nodes()[0].dir().join("replicant-states");
    let start = Instant::now();
    let mut procs: Vec<Child> = src
        .masters()
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let log = std::fs::File::create(state.with_extension(format!("{i}.log"))).expect("log");
            Command::new(replicant_binary())
                .args([
                    "sync",
                    "--source",
                    &m.url(),
                    "--source-shard",
                    &m.addr(),
                    "--target",
                    &dst.url(),
                ])
                .arg("--state-dir")
                .arg(state.join(i.to_string()))
                .args([
                    "--metrics-addr",
                    "127.0.0.1:0",
                    "--admin-addr",
                    "127.0.0.1:0",
                ])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start {}: {e} (run bench/run.sh)",
                        replicant_binary().display()
                    )
                })
        })
        .collect();
    let (_, mut cs) = conns(&dst);
    wait_keys(
        "replicant's destination",
        keys,
        || total_keys(&mut cs),
        || {
            for p in procs.iter_mut() {
                if !matches!(p.try_wait(), Ok(None)) {
                    return Err("a replicant exited (see its log in the destination's dir)".into());
                }
            }
            Ok(())
        },
    );
    let wall = start.elapsed();
    let pids: Vec<u32> = procs.iter().map(Child::id).collect();
    let mut run = Run {
        name: "replicant (3, one per shard)",
        wall,
        rss_max: pids.iter().filter_map(|p| procstat::peak_rss(*p)).max(),
        rss_sum: sum(pids.iter().map(|p| procstat::peak_rss(*p))),
        cpu: sum_f(pids.iter().map(|p| procstat::cpu_seconds(*p))),
        wrong: None,
    };
    for p in procs.iter_mut() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(p.id().to_string())
            .status();
        let _ = p.wait();
    }
    run.wrong = Some(compare(src, &dst));
    run
}

fn redis_shake_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REDIS_SHAKE") {
        return Some(PathBuf::from(p));
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [
        "../../shared/servers/redis-shake-4.2.0/redis-shake",
        "../shared/servers/redis-shake-4.2.0/redis-shake",
    ]
    .iter()
    .map(|p| here.join(p))
    .find(|p| p.is_file())
}

/// RedisShake's sync reader (cluster) into its cluster writer, until the destination holds
/// every key (it then goes on following the source; it is stopped there).
fn redis_shake(bin: &PathBuf, src: &RedisCluster, keys: u64) -> Run {
    let dst = cluster(3);
    let dir = dst.nodes()[0].dir().join("redis-shake");
    std::fs::create_dir_all(&dir).expect("dir");
    let config = format!(
        "[sync_reader]\ncluster = true\naddress = \"{}\"\n\n[redis_writer]\ncluster = true\naddress = \"{}\"\n\n[advanced]\ndir = \"{}\"\nlog_file = \"shake.log\"\nlog_level = \"warn\"\nrdb_restore_command_behavior = \"rewrite\"\n",
        src.masters()[0].addr(),
        dst.masters()[0].addr(),
        dir.join("data").display()
    );
    let path = dir.join("shake.toml");
    std::fs::write(&path, config).expect("config");
    let start = Instant::now();
    let mut child = Command::new(bin)
        .arg(&path)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-shake");
    let (_, mut cs) = conns(&dst);
    wait_keys(
        "RedisShake's destination",
        keys,
        || total_keys(&mut cs),
        || match child.try_wait() {
            Ok(None) => Ok(()),
            _ => Err(format!("RedisShake exited (see {})", dir.display())),
        },
    );
    let wall = start.elapsed();
    let pid = child.id();
    let mut run = Run {
        name: "RedisShake 4.2",
        wall,
        rss_max: procstat::peak_rss(pid),
        rss_sum: procstat::peak_rss(pid),
        cpu: procstat::cpu_seconds(pid),
        wrong: None,
    };
    let _ = child.kill();
    let _ = child.wait();
    run.wrong = Some(compare(src, &dst));
    run
}

/// Keys that differ between the source and a destination: missing, or another value, or a
/// TTL more than 1 s apart.
#[derive(Debug, Default)]
struct Wrong {
    missing: u64,
    value: u64,
    ttl: u64,
}

impl std::fmt::Display for Wrong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.missing + self.value + self.ttl;
        if n == 0 {
            return write!(f, "0");
        }
        write!(
            f,
            "{n} ({} missing, {} other value, {} other TTL)",
            self.missing, self.value, self.ttl
        )
    }
}

fn compare(src: &RedisCluster, dst: &RedisCluster) -> Wrong {
    let (_, mut s) = conns(src);
    let (dmap, mut d) = conns(dst);
    let mut wrong = Wrong::default();
    for sc in s.iter_mut() {
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query(sc)
                .expect("SCAN");
            let facts = |c: &mut Connection, ks: &[&Vec<u8>]| -> Vec<(Option<String>, i64)> {
                let mut p = redis::pipe();
                for k in ks {
                    p.cmd("DEBUG")
                        .arg("DIGEST-VALUE")
                        .arg(*k)
                        .cmd("PTTL")
                        .arg(*k);
                }
                let out: Vec<redis::Value> = p.query(c).expect("digests");
                out.chunks(2)
                    .map(|v| {
                        let digest = match &v[0] {
                            redis::Value::Array(a) => a
                                .first()
                                .and_then(|d| redis::from_redis_value::<String>(d).ok()),
                            _ => None,
                        };
                        (digest, redis::from_redis_value::<i64>(&v[1]).unwrap_or(-2))
                    })
                    .collect()
            };
            // replicant's heartbeat keys (written to the source, never copied) are not data.
            let keys: Vec<Vec<u8>> = keys
                .into_iter()
                .filter(|k| !k.starts_with(b"replicant:heartbeat:"))
                .collect();
            let all: Vec<&Vec<u8>> = keys.iter().collect();
            let here = facts(sc, &all);
            for (i, dc) in d.iter_mut().enumerate() {
                let mine: Vec<usize> = (0..keys.len())
                    .filter(|&j| dmap.owner_index(key_slot(&keys[j])) == Some(i))
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let ks: Vec<&Vec<u8>> = mine.iter().map(|&j| &keys[j]).collect();
                let there = facts(dc, &ks);
                for (&j, (digest, ttl)) in mine.iter().zip(there) {
                    let (sd, sttl) = (&here[j].0, here[j].1);
                    let ttl_differs =
                        (ttl >= 0) != (sttl >= 0) || (sttl >= 0 && (ttl - sttl).abs() > 1000);
                    if ttl == -2 {
                        wrong.missing += 1;
                    } else if digest != *sd {
                        wrong.value += 1;
                    } else if ttl_differs {
                        wrong.ttl += 1;
                    }
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    wrong
}

fn sum(v: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    v.sum()
}

fn sum_f(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    v.sum()
}
