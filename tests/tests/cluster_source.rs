//! Redis Cluster sources: one replicant per source shard (`--source-shard`, the sidecar next to
//! each master), all into one destination, under a write load on every shard (strings with
//! TTLs, counters, lists, hashes, sorted sets, sets, streams, hash-tagged MULTI/EXEC). The
//! source is a 3-master cluster with one replica per master, started by the harness.
//!
//! - Into a 4-master destination cluster (links on the masters) and, at the same time, into a
//!   standalone server (links on the replicas, `--source-read-from replica`): both equal the
//!   source key by key once the writes stop.
//! - Failovers: `CLUSTER FAILOVER` of one shard, then SIGKILL of another shard's master (the
//!   cluster promotes its replica): each replicant follows its shard to the new master and
//!   continues with PSYNC (no copy again), and the destination equals the source.
//! - SIGKILL of one replicant and a restart with the same state dir: it continues with PSYNC.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use replicant_tests::barrier;
use replicant_tests::cluster::RedisCluster;
use replicant_tests::compare::{self, CompareOptions};
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::{self, SyncProcess};
use replicant_tests::server::{self, RedisServer};
use replicant_tests::wait::{self, Check};
use replicant_tests::workload::sharded::ShardedWorkload;

const TIMEOUT: Duration = Duration::from_secs(120);
/// Writes a second on the source cluster (all shards together).
const RATE: u32 = 1_500;
/// What a replicant logs once its snapshot is read.
const STREAMING: &str = "snapshot read; following the replication stream";
/// What a replicant logs when its source shard could not continue the stream.
const RECOPY: &str = "could not continue the stream";

fn source_cluster() -> RedisCluster {
    RedisCluster::builder()
        .masters(3)
        .replicas_per_master(1)
        .config("repl-diskless-sync-delay", "0")
        .config("repl-backlog-size", "64mb")
        .start()
}

fn urls(cluster: &RedisCluster) -> Vec<String> {
    cluster.nodes().iter().map(RedisServer::url).collect()
}

/// One replicant per master of `source`, each given that master as `--source` and
/// `--source-shard`, with `extra` arguments (`{n}` in them: the shard's number).
fn sidecars(source: &RedisCluster, target_url: &str, extra: &[String]) -> Vec<SyncProcess> {
    source
        .masters()
        .iter()
        .enumerate()
        .map(|(n, m)| {
            let mut b = SyncProcess::builder(&m.url(), target_url)
                .arg("--source-shard")
                .arg(&m.addr());
            for a in extra {
                b = b.arg(&a.replace("{n}", &n.to_string()));
            }
            b.start()
        })
        .collect()
}

fn all_running(procs: &mut [SyncProcess]) -> Result<(), String> {
    for (i, p) in procs.iter_mut().enumerate() {
        p.check_running()
            .map_err(|e| format!("replicant {i}: {e}\n{}", p.log_tail(20)))?;
    }
    Ok(())
}

/// Waits until `ready` holds, failing at once if a replicant exited.
fn wait_until(
    procs: &mut [SyncProcess],
    what: &str,
    mut ready: impl FnMut(&[SyncProcess]) -> bool,
) {
    let r = wait::wait_for(TIMEOUT, what, || match all_running(procs) {
        Err(e) => Check::Failed(e),
        Ok(()) if ready(procs) => Check::Ready(()),
        Ok(()) => Check::Pending,
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// Waits until every replicant has read its snapshot and follows its stream.
fn wait_streaming(procs: &mut [SyncProcess]) {
    wait_until(procs, "every replicant to follow its stream", |p| {
        p.iter().all(|p| p.log().contains(STREAMING))
    });
}

/// The sync barrier on every node of `source` that has replicas now (each replicant's link is
/// on a master, or on a replica with `--source-read-from replica`).
fn barrier_all(source: &RedisCluster, procs: &mut [SyncProcess]) {
    let n = procs.len();
    barrier_links(source, procs, n);
}

/// [`barrier_all`] for `n` links in all (one replicant of a whole cluster has one per shard).
fn barrier_links(source: &RedisCluster, procs: &mut [SyncProcess], n: usize) {
    wait_linked(source, procs, n);
    for node in source.nodes() {
        let linked = barrier::replication_info(node).is_ok_and(|i| !i.replicas.is_empty());
        if !linked {
            continue;
        }
        if let Err(e) = barrier::wait_for_sync(node, TIMEOUT, || all_running(procs)) {
            panic!("{}: {e}", node.addr());
        }
    }
}

/// Waits until `n` links are up on the source's nodes (online replica lines announcing port 0).
fn wait_linked(source: &RedisCluster, procs: &mut [SyncProcess], n: usize) {
    wait_until(procs, "every replicant to be linked to its shard", |_| {
        let linked: usize = source
            .nodes()
            .iter()
            .filter_map(|node| barrier::replication_info(node).ok())
            .map(|i| {
                i.replicas
                    .iter()
                    .filter(|r| r.port == 0 && r.state == "online")
                    .count()
            })
            .sum();
        linked == n
    });
}

/// A 3-master source cluster (a replica each) under the sharded workload, `ops` writes in,
/// and one replicant following all of it into `target_url`, its three streams up.
fn whole_cluster(target_url: &str, ops: u64) -> (RedisCluster, ShardedWorkload, Vec<SyncProcess>) {
    let source = source_cluster();
    let workload = ShardedWorkload::start(urls(&source), RATE);
    workload
        .wait_for_ops(ops, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut procs = vec![SyncProcess::start(&source.masters()[0].url(), target_url)];
    wait_until(&mut procs, "every shard to follow its stream", |p| {
        p[0].log().matches(STREAMING).count() == 3
    });
    (source, workload, procs)
}

/// Waits until the workload has done `n` writes more than now.
fn more_writes(workload: &ShardedWorkload, n: u64) {
    let until = workload.ops() + n;
    workload
        .wait_for_ops(until, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `args` on the admin port `admin`, its answer as text.
fn admin_call(admin: &str, args: &[&str]) -> String {
    let mut con = redis::Client::open(format!("redis://:{}@{admin}", replicant::ADMIN_PASSWORD))
        .and_then(|c| c.get_connection())
        .expect("admin port");
    redis::cmd(args[0])
        .arg(&args[1..])
        .query(&mut con)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// `CUTOVER RESUME` on the admin port `admin`: the source's writes go on.
fn resume(admin: &str) {
    assert_eq!(admin_call(admin, &["CUTOVER", "RESUME"]), "source=resumed");
}

fn assert_equal(source: &RedisCluster, target: &impl compare::Compared, what: &str) {
    let differences =
        compare::dataset_differences_with(source, target, CompareOptions::live_replication());
    assert!(
        differences.is_empty(),
        "{what}: {}",
        compare::format_differences(&differences)
    );
}

#[test]
fn three_shards_into_a_cluster_and_from_replicas_into_a_standalone_server() {
    let _guard = heavy_test_guard();
    let source = source_cluster();
    let into_cluster = RedisCluster::builder().masters(4).start();
    let into_single = RedisServer::start();
    let workload = ShardedWorkload::start(urls(&source), RATE);
    workload
        .wait_for_ops(3_000, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut procs = sidecars(&source, &into_cluster.url(), &[]);
    procs.extend(sidecars(
        &source,
        &into_single.url(),
        &["--source-read-from".into(), "replica".into()],
    ));
    wait_streaming(&mut procs);
    more_writes(&workload, 4_000);
    workload.stop();
    barrier_all(&source, &mut procs);
    // The replicas serve the links of `--source-read-from replica`: each has one replica.
    for r in source.replicas() {
        let links = barrier::replication_info(r).map(|i| i.replicas.len());
        assert_eq!(
            links,
            Ok(1),
            "{}: the replicant of its shard reads it",
            r.addr()
        );
    }
    assert_equal(&source, &into_cluster, "into the 4-master cluster");
    assert_equal(&source, &into_single, "into the standalone server");
    for p in procs {
        let log = p.stop();
        assert!(!log.contains(RECOPY), "no copy again");
    }
}

#[test]
fn failovers_of_source_shards_are_followed_with_psync() {
    let _guard = heavy_test_guard();
    let mut source = source_cluster();
    let target = RedisServer::start();
    let workload = ShardedWorkload::start(urls(&source), RATE);
    workload
        .wait_for_ops(2_000, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut procs = sidecars(&source, &target.url(), &[]);
    wait_streaming(&mut procs);
    let masters: Vec<String> = source.masters().iter().map(|m| m.addr()).collect();
    // A coordinated failover of the first shard.
    let replica = source
        .replica_of(&masters[0])
        .expect("a replica of shard 0");
    more_writes(&workload, 1_500);
    source
        .manual_failover(&replica, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    // The second shard's master dies; the cluster promotes its replica.
    let promoted = source
        .replica_of(&masters[1])
        .expect("a replica of shard 1");
    more_writes(&workload, 1_500);
    source
        .kill_node(&masters[1])
        .unwrap_or_else(|e| panic!("{e}"));
    source
        .wait_for_role(&promoted, "master", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    source
        .wait_until_ok(TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    more_writes(&workload, 2_000);
    workload.stop();
    barrier_all(&source, &mut procs);
    for addr in [&replica, &promoted] {
        let node = source.node(addr).expect("live");
        assert!(
            barrier::info_number(node, "stats", "sync_partial_ok") >= 1,
            "{addr}: the replicant of its shard continued there with PSYNC\n{}",
            procs
                .iter()
                .map(|p| p.log_tail(25))
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
    }
    assert_equal(&source, &target, "after two failovers");
    for p in procs {
        let log = p.stop();
        assert!(
            !log.contains(RECOPY),
            "no shard copied again:\n{}",
            replicant::tail(&log, 30)
        );
    }
}

#[test]
fn a_killed_shard_replicant_continues_with_psync_after_a_restart() {
    let _guard = heavy_test_guard();
    let source = source_cluster();
    let target = RedisCluster::builder().masters(3).start();
    let state = tempfile::tempdir().expect("temp dir");
    let dir = |n: usize| state.path().join(format!("shard{n}"));
    // Delivery is at least once: what was applied after the last checkpoint before the kill
    // is applied again, so only writes that mean the same twice.
    let workload = ShardedWorkload::start_idempotent(urls(&source), RATE);
    workload
        .wait_for_ops(2_000, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let state_arg = format!("{}/shard{{n}}", state.path().display());
    let mut procs = sidecars(&source, &target.url(), &["--state-dir".into(), state_arg]);
    wait_streaming(&mut procs);
    more_writes(&workload, 1_500);
    let master = source.masters()[0].addr();
    let partial_before = barrier::info_number(
        source.node(&master).expect("live"),
        "stats",
        "sync_partial_ok",
    );
    let killed = procs.remove(0);
    let _ = killed.kill();
    more_writes(&workload, 1_000);
    let restarted = restart(&source, &master, &target.url(), &dir(0));
    procs.insert(0, restarted);
    more_writes(&workload, 1_500);
    workload.stop();
    barrier_all(&source, &mut procs);
    let node = source.node(&master).expect("live");
    assert!(
        barrier::info_number(node, "stats", "sync_partial_ok") > partial_before,
        "the restarted replicant continued with PSYNC"
    );
    assert_equal(&source, &target, "after a restart");
    for p in procs {
        let log = p.stop();
        assert!(!log.contains(RECOPY), "no copy again");
    }
}

fn restart(source: &RedisCluster, master: &str, target: &str, dir: &Path) -> SyncProcess {
    let node = source.node(master).expect("live");
    SyncProcess::builder(&node.url(), target)
        .arg("--source-shard")
        .arg(master)
        .arg("--state-dir")
        .arg(&dir.display().to_string())
        .start()
}

/// `replicant cutover` given the three replicants' admin ports: every shard's master paused,
/// ready only once every shard has caught up; while paused the destination equals the source.
#[test]
fn a_cutover_across_every_shards_admin_port_is_ready_when_all_are() {
    let _guard = heavy_test_guard();
    let source = source_cluster();
    let target = RedisCluster::builder().masters(3).start();
    let workload = ShardedWorkload::start(urls(&source), RATE);
    workload
        .wait_for_ops(2_000, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut procs = sidecars(&source, &target.url(), &[]);
    wait_streaming(&mut procs);
    let admins: Vec<String> = procs.iter_mut().map(|p| p.admin_addr(TIMEOUT)).collect();
    more_writes(&workload, 1_500);
    let mut args: Vec<OsString> = ["cutover", "--pause-timeout", "30"]
        .into_iter()
        .map(OsString::from)
        .collect();
    for a in &admins {
        args.push("--admin".into());
        args.push(a.into());
    }
    // The writes go on meanwhile: they wait while their master is paused.
    let out = replicant::run(&args, &[], Duration::from_secs(90));
    assert!(out.status.success(), "{}", out.describe());
    assert!(
        out.stdout.contains("ready: all 3 shards"),
        "{}",
        out.describe()
    );
    assert_eq!(
        out.stdout
            .lines()
            .filter(|l| l.contains(": ready offset="))
            .count(),
        3,
        "{}",
        out.describe()
    );
    // Every master still paused: the destination holds every write.
    assert_equal(&source, &target, "at the cutover");
    for a in &admins {
        resume(a);
    }
    more_writes(&workload, 500);
    workload.stop();
    for p in procs {
        p.stop();
    }
}

/// One replicant for the whole source cluster (`--source` any node, no `--source-shard`): a
/// link per master shard, each with its own state dir; the admin port's INFO has a section
/// per shard and its CUTOVER pauses every master; a failover is followed; after SIGKILL and a
/// restart with the same state dir, every shard continues with PSYNC.
#[test]
fn one_replicant_for_the_whole_cluster_follows_every_shard() {
    let _guard = heavy_test_guard();
    let source = source_cluster();
    let target = RedisCluster::builder().masters(4).start();
    let state = tempfile::tempdir().expect("temp dir");
    let state_arg = state.path().display().to_string();
    let start = |source: &RedisCluster| {
        SyncProcess::builder(&source.masters()[1].url(), &target.url())
            .arg("--state-dir")
            .arg(&state_arg)
            .start()
    };
    let workload = ShardedWorkload::start_idempotent(urls(&source), RATE);
    workload
        .wait_for_ops(2_000, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut procs = vec![start(&source)];
    wait_until(&mut procs, "every shard to follow its stream", |p| {
        p[0].log().matches(STREAMING).count() == 3
    });
    let admin = procs[0].admin_addr(TIMEOUT);
    let info = admin_call(&admin, &["INFO", "replication"]);
    assert_eq!(info.matches("# Shard").count(), 3, "{info}");
    // A coordinated failover of one shard, under writes.
    let masters: Vec<String> = source.masters().iter().map(|m| m.addr()).collect();
    let replica = source.replica_of(&masters[2]).expect("a replica");
    more_writes(&workload, 1_500);
    source
        .manual_failover(&replica, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    more_writes(&workload, 1_500);
    // SIGKILL, and a restart with the same state dir.
    let partial_before: u64 = source
        .masters()
        .iter()
        .map(|m| barrier::info_number(m, "stats", "sync_partial_ok"))
        .sum();
    let _ = procs.remove(0).kill();
    more_writes(&workload, 1_000);
    procs.push(start(&source));
    wait_linked(&source, &mut procs, 3);
    let partial_after: u64 = source
        .masters()
        .iter()
        .map(|m| barrier::info_number(m, "stats", "sync_partial_ok"))
        .sum();
    assert!(
        partial_after >= partial_before + 3,
        "every shard continued with PSYNC after the restart ({partial_before} → {partial_after})\n{}",
        procs[0].log_tail(30)
    );
    more_writes(&workload, 1_000);
    // The cutover on the one admin port pauses every shard's master.
    let admin = procs[0].admin_addr(TIMEOUT);
    let out = replicant::run(
        &[
            "cutover".into(),
            "--admin".into(),
            admin.clone().into(),
            "--pause-timeout".into(),
            "30".into(),
        ],
        &[],
        Duration::from_secs(90),
    );
    assert!(out.status.success(), "{}", out.describe());
    assert!(
        out.stdout.contains("ready: all 3 shards"),
        "{}",
        out.describe()
    );
    assert_equal(
        &source,
        &target,
        "one replicant for the whole cluster, at the cutover",
    );
    resume(&admin);
    workload.stop();
    let log = procs.remove(0).stop();
    assert!(!log.contains(RECOPY), "no shard copied again");
}

/// `replicant check` of a whole cluster source checks every master shard: reachable, PSYNC
/// allowed, backlog, output buffer.
#[test]
fn check_covers_every_master_shard() {
    let source = source_cluster();
    let target = RedisServer::start();
    let seed = source.masters()[0].url();
    let args: Vec<OsString> = ["check", "--source", &seed, "--target", &target.url()]
        .into_iter()
        .map(OsString::from)
        .collect();
    let out = replicant::run(&args, &[], Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains("3 master shards, one link each"),
        "{}",
        out.describe()
    );
    let psync: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("source PSYNC permission"))
        .collect();
    assert_eq!(psync.len(), 3, "{}", out.describe());
    assert_eq!(
        psync
            .iter()
            .filter(|l| l.contains("master 127.0.0.1:"))
            .count(),
        2,
        "the other two masters are named:\n{}",
        out.describe()
    );
}

/// A FLUSHALL run on one master of the source cluster empties that shard only: replicant
/// removes that shard's keys from the destination (the other shards' stay) and goes on.
#[test]
fn a_flushall_of_one_shard_removes_only_its_keys() {
    let _guard = heavy_test_guard();
    let target = RedisServer::start();
    let (source, workload, mut procs) = whole_cluster(&target.url(), 2_000);
    more_writes(&workload, 1_000);
    let flushed = source.masters()[1].addr();
    let _: () = redis::cmd("FLUSHALL")
        .query(&mut source.node(&flushed).expect("live").client())
        .expect("FLUSHALL");
    more_writes(&workload, 1_000);
    workload.stop();
    barrier_links(&source, &mut procs, 3);
    assert_equal(&source, &target, "after a FLUSHALL of one shard");
    let log = procs.remove(0).stop();
    assert!(
        log.contains("its keys are removed from the destination"),
        "{}",
        replicant::tail(&log, 20)
    );
}

/// 1,000 slots resharded between two shards of the source (`redis-cli --cluster reshard`:
/// MIGRATE, key by key) under writes, while one replicant follows the whole cluster: no key
/// lost, none brought back; each migrated key's copy waited for the old shard's deletion.
#[test]
fn a_reshard_of_the_source_loses_no_key_and_brings_none_back() {
    let _guard = heavy_test_guard();
    let target = RedisServer::start();
    let (source, workload, mut procs) = whole_cluster(&target.url(), 3_000);
    more_writes(&workload, 1_000);
    let (from, to) = (source.masters()[0].addr(), source.masters()[1].addr());
    let out = source
        .reshard(&from, &to, 1_000)
        .unwrap_or_else(|e| panic!("reshard: {e}"));
    assert!(out.contains("Moving slot"), "{out}");
    more_writes(&workload, 1_500);
    workload.stop();
    barrier_links(&source, &mut procs, 3);
    assert_equal(&source, &target, "after a reshard of the source");
    let log = procs.remove(0).stop();
    assert!(
        !log.contains("without a deletion from another shard"),
        "every migrated key matched its deletion:\n{}",
        replicant::tail(&log, 20)
    );
}

/// One shard's backlog overrun while its link is down: that shard alone is copied again, its
/// slots' keys removed from the destination first (keys deleted on it meanwhile go), the other
/// shards go on streaming.
#[test]
fn a_shard_that_must_be_copied_again_is_copied_alone() {
    let _guard = heavy_test_guard();
    let target = RedisServer::start();
    let (source, workload, mut procs) = whole_cluster(&target.url(), 2_000);
    workload.stop();
    let shard = source.masters()[2];
    let mut con = shard.client();
    // A backlog the writes below overrun, then the link cut.
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "repl-backlog-size", "16384"])
        .query(&mut con)
        .expect("CONFIG SET");
    let doomed: Vec<String> = (0..50)
        .map(|i| format!("doomed:{{{}}}:{i}", shard_tag(&source, 2)))
        .collect();
    for k in &doomed {
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg("x")
            .query(&mut con)
            .expect("SET");
    }
    barrier_links(&source, &mut procs, 3);
    // replicant stopped (SIGSTOP) while its link to the shard is cut and the shard's backlog
    // overrun: once it goes on, its PSYNC finds its offset gone.
    let pid = procs[0].pid();
    server::signal("-STOP", pid);
    let _: redis::RedisResult<u64> = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "replica"])
        .query(&mut con);
    let _: () = redis::cmd("DEL").arg(&doomed).query(&mut con).expect("DEL");
    let filler = "y".repeat(4096);
    for i in 0..64 {
        let _: () = redis::cmd("SET")
            .arg(format!("fill:{{{}}}:{i}", shard_tag(&source, 2)))
            .arg(&filler)
            .query(&mut con)
            .expect("SET");
    }
    server::signal("-CONT", pid);
    wait_until(&mut procs, "the shard to be copied again", |p| {
        p[0].log()
            .contains("removing the destination's keys of the shard's slots")
    });
    barrier_links(&source, &mut procs, 3);
    assert_equal(&source, &target, "after one shard was copied again");
    let log = procs.remove(0).stop();
    assert_eq!(
        log.matches(RECOPY).count(),
        1,
        "one shard copied again:\n{}",
        replicant::tail(&log, 30)
    );
}

/// A hash tag whose slot the `n`th master of `cluster` serves.
fn shard_tag(cluster: &RedisCluster, n: usize) -> String {
    let map = cluster.slot_map();
    let addr = cluster.masters()[n].addr();
    (0u32..)
        .map(|i| format!("t{i}"))
        .find(|t| {
            map.owner(replicant_tests::cluster::key_slot(t.as_bytes())) == Some(addr.as_str())
        })
        .expect("a tag")
}

/// With one replicant per shard, a reshard cannot be ordered across the processes: the
/// replicant of the shard that receives migrated keys stops and says why, rather than risk a
/// lost key or an old value.
#[test]
fn a_lone_shard_replicant_stops_at_a_reshard_and_says_why() {
    let _guard = heavy_test_guard();
    let source = source_cluster();
    let target = RedisServer::start();
    let workload = ShardedWorkload::start(urls(&source), RATE);
    workload
        .wait_for_ops(2_000, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut procs = sidecars(&source, &target.url(), &[]);
    wait_streaming(&mut procs);
    workload.stop();
    let (from, to) = (source.masters()[0].addr(), source.masters()[1].addr());
    source
        .reshard(&from, &to, 500)
        .unwrap_or_else(|e| panic!("reshard: {e}"));
    let importer = &mut procs[1];
    let status = importer.wait_exit(TIMEOUT).unwrap_or_else(|| {
        panic!(
            "the importing shard's replicant went on:\n{}",
            importer.log_tail(20)
        )
    });
    assert!(!status.success());
    let log = importer.log();
    assert!(
        log.contains("is being resharded"),
        "{}",
        replicant::tail(&log, 20)
    );
}
