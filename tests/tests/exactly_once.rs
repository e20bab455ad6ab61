//! Exactly-once delivery (the default `--delivery exactly-once`): under a write load that
//! shows any write applied twice or lost (INCR, INCRBY, APPEND, RPUSH, LPUSH, ZINCRBY,
//! MULTI/EXEC blocks, …), for 60 s, replicant is killed with SIGKILL ten times and started
//! again, its destination connections are killed five times (`CLIENT KILL` on the
//! destination), and — into a cluster — one destination master fails over to its replica.
//! Afterwards the destination equals the source key by key, and the restarts said that the
//! destination held more than the checkpoint (so the record was read back and used). A last
//! check: `replicant cleanup` removes the state keys. Into the cluster, moves between keys of
//! different slots (`LMOVE`, `SMOVE`, applied from their effect) run alongside.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;
use replicant_tests::barrier;
use replicant_tests::cluster::RedisCluster;
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::{self, SyncProcess};
use replicant_tests::server::{self, RedisServer};
use replicant_tests::wait::scaled;
use replicant_tests::workload::{Workload, WorkloadConfig};

const TIMEOUT: Duration = Duration::from_secs(120);
/// How long the load (and the faults) last.
const LOAD_FOR: Duration = Duration::from_secs(60);
const KILLS: u32 = 10;
const CLIENT_KILLS: u32 = 5;
/// Said by a start that found the destination ahead of the checkpoint.
const DEST_WINS: &str = "the destination wins";

/// Writes across slots that are not idempotent, on a thread of their own until stopped:
/// `LMOVE` between lists and `SMOVE` between sets whose keys are in different slots (a
/// cluster destination applies them from their effect), at about 200 a second. A move applied
/// twice moves one element too many.
struct Moves {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

const MOVE_KEYS: usize = 6;

impl Moves {
    fn start(url: &str) -> Moves {
        let mut con = server::connect(url).expect("connect to the source");
        for i in 0..MOVE_KEYS {
            let items: Vec<String> = (0..40).map(|n| format!("e{i}-{n}")).collect();
            redis::cmd("RPUSH")
                .arg(format!("mv:l:{i}"))
                .arg(&items)
                .query::<()>(&mut con)
                .expect("RPUSH");
            redis::cmd("SADD")
                .arg(format!("mv:s:{i}"))
                .arg(&items)
                .query::<()>(&mut con)
                .expect("SADD");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let (s, d) = (stop.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0usize;
            while !s.load(Ordering::Acquire) {
                n += 1;
                let (a, b) = (n % MOVE_KEYS, (n * 7 + 1) % MOVE_KEYS);
                if a == b {
                    continue;
                }
                let r = if n % 3 == 0 {
                    let member = format!("e{a}-{}", n % 40);
                    redis::cmd("SMOVE")
                        .arg(format!("mv:s:{a}"))
                        .arg(format!("mv:s:{b}"))
                        .arg(member)
                        .query::<Value>(&mut con)
                } else {
                    redis::cmd("LMOVE")
                        .arg(format!("mv:l:{a}"))
                        .arg(format!("mv:l:{b}"))
                        .arg("LEFT")
                        .arg("RIGHT")
                        .query::<Value>(&mut con)
                };
                r.map_err(|e| format!("move {n}: {e}"))?;
                d.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        });
        Moves {
            stop,
            done,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join()
                .expect("the moves thread")
                .unwrap_or_else(|e| panic!("{e}"));
        }
        self.done.load(Ordering::Relaxed)
    }
}

fn source() -> RedisServer {
    RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .config("repl-backlog-size", "256mb")
        .start()
}

fn start(source: &RedisServer, target_url: &str, dir: &Path) -> SyncProcess {
    SyncProcess::builder(&source.url(), target_url)
        .arg("--state-dir")
        .arg(dir.to_str().expect("utf-8 temp path"))
        .start()
}

/// Kills every normal client connection of the server at `url` but the caller's (replicant's
/// writers); how many.
fn kill_connections(url: &String) -> i64 {
    let mut con = server::connect(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    match redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query::<Value>(&mut con)
    {
        Ok(Value::Int(n)) => n,
        other => panic!("CLIENT KILL on {url}: {other:?}"),
    }
}

/// Waits until the source has `n` partial resyncs more than `before` (a restart linked).
fn wait_partial(sync: &mut SyncProcess, source: &RedisServer, want: u64) {
    let deadline = Instant::now() + scaled(TIMEOUT);
    while barrier::info_number(source, "stats", "sync_partial_ok") < want {
        if let Err(e) = sync.check_running() {
            sync.fail(&e);
        }
        if Instant::now() > deadline {
            sync.fail(&format!("no PSYNC #{want} within {TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the load for [`LOAD_FOR`] with the faults spread over it: SIGKILL and restart of
/// replicant, `CLIENT KILL` of its connections on `dest_nodes()`, and `failover` once, half
/// way. Returns the running replicant and the logs of the killed ones.
fn faults(
    source: &RedisServer,
    target_url: &str,
    dir: &Path,
    workload: &Workload,
    dest_nodes: &dyn Fn() -> Vec<String>,
    mut failover: Option<&mut dyn FnMut()>,
) -> (SyncProcess, String) {
    let mut sync = start(source, target_url, dir);
    if let Err(e) = barrier::wait_for_replica_online(source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    let mut partial = barrier::info_number(source, "stats", "sync_partial_ok");
    let mut logs = String::new();
    let began = Instant::now();
    let step = LOAD_FOR / (KILLS + 1);
    let (mut kills, mut client_kills) = (0u32, 0u32);
    while began.elapsed() < LOAD_FOR {
        if let Err(e) = sync.check_running() {
            sync.fail(&e);
        }
        let t = began.elapsed();
        if kills < KILLS && t >= step * (kills + 1) {
            kills += 1;
            logs.push_str(&sync.kill());
            sync = start(source, target_url, dir);
            partial += 1;
            wait_partial(&mut sync, source, partial);
        } else if client_kills < CLIENT_KILLS && t >= step * (2 * client_kills + 1) + step / 2 {
            client_kills += 1;
            let killed: i64 = dest_nodes().iter().map(kill_connections).sum();
            assert!(
                killed > 0,
                "CLIENT KILL #{client_kills} found no connection"
            );
        } else if t >= LOAD_FOR / 2 {
            if let Some(f) = failover.take() {
                f();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((kills, client_kills), (KILLS, CLIENT_KILLS));
    assert!(
        workload.ops() > 10_000,
        "the load ran: {} ops",
        workload.ops()
    );
    (sync, logs)
}

fn check_restarts_read_the_destination(logs: &str) {
    let restarts_ahead = logs.matches(DEST_WINS).count();
    assert!(
        restarts_ahead >= 1,
        "no restart found the destination ahead of the checkpoint:\n{}",
        replicant::tail(logs, 40)
    );
}

#[test]
fn kills_and_lost_connections_apply_nothing_twice() {
    let _guard = heavy_test_guard();
    let source = source();
    let target = RedisServer::start();
    let dir = tempfile::tempdir().expect("state dir");
    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    workload
        .wait_for_ops(500, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let nodes = || vec![target.url()];
    let (mut sync, logs) = faults(&source, &target.url(), dir.path(), &workload, &nodes, None);
    // Keys with TTLs of a second or two are gone before the comparison.
    workload.stop().wait_for_short_ttls();
    sync.synced_and_equal(&source, &target, TIMEOUT);
    let log = sync.stop();
    check_restarts_read_the_destination(&format!("{logs}{log}"));
    // The record is there, and `replicant cleanup` removes it.
    let mut con = target.client();
    let held: Option<Vec<u8>> = redis::cmd("GET")
        .arg("replicant:applied")
        .query(&mut con)
        .unwrap_or(None);
    let held = held.unwrap_or_else(|| {
        // In the db the stream had selected last.
        (0..16)
            .find_map(|db| {
                redis::cmd("SELECT").arg(db).query::<()>(&mut con).ok()?;
                redis::cmd("GET")
                    .arg("replicant:applied")
                    .query(&mut con)
                    .ok()?
            })
            .expect("a replicant:applied key in some db")
    });
    assert!(String::from_utf8_lossy(&held).contains(':'));
    let out = replicant::run(
        &["cleanup".into(), "--target".into(), target.url().into()],
        &[],
        TIMEOUT,
    );
    assert!(out.status.success(), "{}", out.describe());
    assert!(out.stdout.contains("removed"), "{}", out.describe());
    for db in 0..16 {
        redis::cmd("SELECT")
            .arg(db)
            .query::<()>(&mut con)
            .expect("SELECT");
        let left: i64 = redis::cmd("EXISTS")
            .arg("replicant:applied")
            .query(&mut con)
            .expect("EXISTS");
        assert_eq!(left, 0, "db{db} still has replicant:applied");
    }
}

#[test]
fn a_cluster_destination_with_a_failover_applies_nothing_twice() {
    let _guard = heavy_test_guard();
    let source = source();
    let target = RedisCluster::builder()
        .masters(3)
        .replicas_per_master(1)
        .start();
    let dir = tempfile::tempdir().expect("state dir");
    // With the cluster workload's writes across slots (split per slot, or within one slot),
    // and moves across slots applied from their effect.
    let workload = Workload::start(&source.url(), WorkloadConfig::for_cluster());
    let moves = Moves::start(&source.url());
    workload
        .wait_for_ops(500, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let first = target.masters()[0].addr();
    let replica = target
        .replica_of(&first)
        .expect("a replica of the first master");
    let mut failed_over = false;
    let mut failover = || {
        target
            .manual_failover(&replica, TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        failed_over = true;
    };
    let nodes = || target.masters().iter().map(|m| m.url()).collect();
    let (mut sync, logs) = faults(
        &source,
        &target.url(),
        dir.path(),
        &workload,
        &nodes,
        Some(&mut failover),
    );
    assert!(failed_over, "the failover ran");
    let moved = moves.stop();
    assert!(moved > 1_000, "{moved} moves across slots");
    // Keys with TTLs of a second or two are gone before the comparison.
    workload.stop().wait_for_short_ttls();
    sync.synced_and_equal(&source, &target, TIMEOUT);
    let log = sync.stop();
    check_restarts_read_the_destination(&format!("{logs}{log}"));
}
