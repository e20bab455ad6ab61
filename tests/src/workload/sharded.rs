//! A write workload on a Redis Cluster *source*, on its own thread until told to stop: each
//! write to the master that owns its key's slot now, as a cluster-aware client sends it,
//! following MOVED and failovers (the slot map is read again after any error and the write
//! tried again). Keys are hash-tagged in 256 groups spread over every shard; every group gets
//! strings with TTLs, counters, lists, hashes, sorted sets, sets, streams, and MULTI/EXEC blocks
//! on its own keys (one slot, so one shard), and now and then a DEL.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use redis::Connection;

use crate::cluster::SlotMap;
use crate::server;
use crate::wait;

/// Key groups (hash tags).
const GROUPS: u64 = 256;
/// How long one write is tried again (through a failover) before the workload gives up.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// See the module documentation.
pub struct ShardedWorkload {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    handle: JoinHandle<Result<u64, String>>,
}

impl ShardedWorkload {
    /// Starts writing to the cluster whose nodes are at `urls` (any of them will do to find
    /// the others), at most `rate` writes a second.
    pub fn start(urls: Vec<String>, rate: u32) -> ShardedWorkload {
        Self::spawn(urls, rate, false)
    }

    /// Only writes that can be applied twice with the same result (SET, HSET, ZADD, SADD,
    /// DEL, MULTI/EXEC of those): for runs where a write may be applied again after a crash
    /// (delivery is at least once).
    pub fn start_idempotent(urls: Vec<String>, rate: u32) -> ShardedWorkload {
        Self::spawn(urls, rate, true)
    }

    fn spawn(urls: Vec<String>, rate: u32, idempotent: bool) -> ShardedWorkload {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let handle = {
            let (stop, ops) = (stop.clone(), ops.clone());
            thread::spawn(move || run(&urls, rate, idempotent, &stop, &ops))
        };
        ShardedWorkload { stop, ops, handle }
    }

    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    /// Waits until `n` writes are done.
    pub fn wait_for_ops(&self, n: u64, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + wait::scaled(timeout);
        while self.ops() < n {
            if self.handle.is_finished() {
                return Err("the sharded workload stopped early".into());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} of {n} sharded writes within {timeout:?}",
                    self.ops()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops and returns the writes done; panics with the workload's error if it failed.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.join() {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => panic!("sharded workload: {e}"),
            Err(_) => panic!("sharded workload panicked"),
        }
    }
}

/// The cluster as the writer sees it: the slot map and a connection per master.
struct View {
    urls: Vec<String>,
    map: SlotMap,
    conns: Vec<(String, Connection)>,
}

impl View {
    fn read(urls: &[String]) -> Result<View, String> {
        let mut last = String::from("no node");
        for url in urls {
            let Ok(mut con) = server::connect(url) else {
                continue;
            };
            match redis::cmd("CLUSTER").arg("SLOTS").query(&mut con) {
                Ok(reply) => match SlotMap::from_cluster_slots(&reply) {
                    Ok(map) => {
                        return Ok(View {
                            urls: urls.to_vec(),
                            map,
                            conns: Vec::new(),
                        })
                    }
                    Err(e) => last = e,
                },
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("cannot read the slot map: {last}"))
    }

    fn conn_for(&mut self, key: &str) -> Result<&mut Connection, String> {
        let addr = self
            .map
            .owner_of_key(key.as_bytes())
            .ok_or_else(|| format!("no master for {key}"))?
            .to_string();
        if let Some(i) = self.conns.iter().position(|(a, _)| *a == addr) {
            return Ok(&mut self.conns[i].1);
        }
        let con =
            server::connect(&format!("redis://{addr}")).map_err(|e| format!("{addr}: {e}"))?;
        self.conns.push((addr, con));
        let last = self.conns.len() - 1;
        Ok(&mut self.conns[last].1)
    }
}

fn run(
    urls: &[String],
    rate: u32,
    idempotent: bool,
    stop: &AtomicBool,
    ops: &AtomicU64,
) -> Result<u64, String> {
    let mut view = View::read(urls)?;
    let started = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // At most `rate` writes a second.
        let due = Duration::from_secs_f64(n as f64 / f64::from(rate.max(1)));
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            thread::sleep(wait.min(Duration::from_millis(50)));
            continue;
        }
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            let r = view
                .conn_for(&key(n, "s"))
                .and_then(|con| write(con, n, idempotent).map_err(|e| e.to_string()));
            match r {
                Ok(()) => break,
                Err(_) if Instant::now() < deadline => {
                    // MOVED, a failover, a node down: read the map again and try again.
                    thread::sleep(Duration::from_millis(50));
                    view = View::read(&view.urls.clone()).unwrap_or(view);
                    view.conns.clear();
                }
                Err(e) => return Err(format!("write {n}: {e}")),
            }
        }
        n += 1;
        ops.store(n, Ordering::Relaxed);
    }
    Ok(n)
}

fn key(n: u64, kind: &str) -> String {
    format!("sh:{{g{}}}:{kind}", n % GROUPS)
}

/// A write that means the same applied twice: `which` 0 SET with a TTL, 1 HSET, 2 ZADD, else
/// DEL.
fn same_twice(n: u64, which: u64) -> redis::Cmd {
    let k = |kind: &str| key(n, kind);
    match which {
        0 => redis::cmd("SET")
            .arg(k("s"))
            .arg(n)
            .arg("EX")
            .arg(3600)
            .clone(),
        1 => redis::cmd("HSET")
            .arg(k("h"))
            .arg(format!("f{}", n % 20))
            .arg(n)
            .clone(),
        2 => redis::cmd("ZADD")
            .arg(k("z"))
            .arg(n % 1000)
            .arg(format!("m{}", n % 50))
            .clone(),
        _ => redis::cmd("DEL").arg(k("t")).clone(),
    }
}

fn write(con: &mut Connection, n: u64, idempotent: bool) -> redis::RedisResult<()> {
    let k = |kind: &str| key(n, kind);
    let v = n.to_string();
    if idempotent {
        return match n % 5 {
            3 => redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(k("t"))
                .arg(&v)
                .cmd("SADD")
                .arg(k("set"))
                .arg(n % 100)
                .query(con),
            w => same_twice(n, w).query(con),
        };
    }
    match n % 10 {
        0 => same_twice(n, 0).query(con),
        1 => redis::cmd("INCRBY").arg(k("n")).arg(n % 7 + 1).query(con),
        2 => redis::cmd("RPUSH").arg(k("l")).arg(&v).query(con),
        3 => same_twice(n, 1).query(con),
        4 => same_twice(n, 2).query(con),
        5 => redis::cmd("SADD").arg(k("set")).arg(n % 100).query(con),
        6 => redis::cmd("XADD")
            .arg(k("x"))
            .arg("MAXLEN")
            .arg("~")
            .arg(100)
            .arg("*")
            .arg("n")
            .arg(&v)
            .query(con),
        7 => redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(k("n"))
            .cmd("RPUSH")
            .arg(k("l"))
            .arg("tx")
            .cmd("PEXPIRE")
            .arg(k("l"))
            .arg(3_600_000)
            .query(con),
        8 => redis::cmd("SET").arg(k("t")).arg(&v).query(con),
        _ => redis::cmd("DEL").arg(k("t")).query(con),
    }
}
