//! Redis Cluster destinations: the cluster harness on its own, then `replicant sync` from a
//! standalone source into a three-master cluster (snapshot and live stream, with multi-key
//! writes across slots), and the refusal of a source with keys outside db 0 unless the dbs
//! are mapped (`--db-map`, `--all-dbs-to`).

use std::collections::BTreeMap;
use std::time::Duration;

use replicant_tests::barrier;
use replicant_tests::cluster::{key_slot, RedisCluster};
use replicant_tests::compare::{self, CompareOptions, DiffKind};
use replicant_tests::dataset;
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::{self, SyncProcess};
use replicant_tests::server::RedisServer;
use replicant_tests::workload::{Workload, WorkloadConfig};

/// Time for replicant to receive the snapshot (the source's replica line turns `online`).
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(180);
/// Time for replicant to apply everything once the writes have stopped.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(180);
/// Operations of the workload after the snapshot: about 3 s at the default rate.
const OPS_AFTER_SNAPSHOT: u64 = 4_500;
/// How long replicant may take to refuse a source it cannot map onto a cluster (scaled).
const REFUSAL_DEADLINE: Duration = Duration::from_secs(30);

fn query<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command
        .query(con)
        .unwrap_or_else(|err| panic!("{args:?} failed: {err}"))
}

/// The differences found, as (db, key) → kinds, for exact assertions.
fn kinds_by_key(differences: &[compare::Difference]) -> BTreeMap<(u8, String), Vec<DiffKind>> {
    let mut map: BTreeMap<(u8, String), Vec<DiffKind>> = BTreeMap::new();
    for difference in differences {
        let key = String::from_utf8_lossy(&difference.key).into_owned();
        map.entry((difference.db, key))
            .or_default()
            .push(difference.kind);
    }
    map
}

/// Writes the same small dataset (every type, a TTL, a stream group, hash-tagged keys) to a
/// standalone server and, key by key through the master owning its slot, to a cluster.
fn write_alike(server: &RedisServer, cluster: &RedisCluster) -> Vec<String> {
    let mut written = Vec::new();
    let mut both = |key: &str, args: &[&[&str]]| {
        for command in args {
            let _: redis::Value = query(&mut server.client(), command);
            let _: redis::Value = query(&mut cluster.client_for_key(key.as_bytes()), command);
        }
        written.push(key.to_string());
    };
    for i in 0..24 {
        let key = format!("str:{i}");
        both(&key, &[&["SET", &key, &format!("value {i}")]]);
    }
    both("hash", &[&["HSET", "hash", "f1", "v1", "f2", "v2"]]);
    both("list", &[&["RPUSH", "list", "a", "b", "c"]]);
    both("set", &[&["SADD", "set", "x", "y"]]);
    both("zset", &[&["ZADD", "zset", "1", "one", "2.5", "two"]]);
    both(
        "ttl",
        &[&["SET", "ttl", "v"], &["PEXPIREAT", "ttl", "4102444800000"]],
    );
    both(
        "stream",
        &[
            &["XADD", "stream", "1-1", "f", "v"],
            &["XGROUP", "CREATE", "stream", "g", "0"],
        ],
    );
    both(
        "{user1000}.following",
        &[&["SADD", "{user1000}.following", "a"]],
    );
    both(
        "{user1000}.followers",
        &[&["SADD", "{user1000}.followers", "b"]],
    );
    written
}

#[test]
fn harness_cluster_comes_up() {
    let cluster = RedisCluster::start();
    assert_eq!(cluster.masters().len(), 3, "{}", cluster.log_tails(5));
    assert!(cluster.replicas().is_empty());
    let map = cluster.slot_map();
    assert_eq!(map.masters().len(), 3);
    assert_eq!(map.unassigned(), 0);

    // The harness's slots are Redis's.
    let mut con = cluster.client_for_key(b"any");
    for key in [
        "123456789",
        "foo",
        "{user1000}.following",
        "a{b}c",
        "{}x",
        "wl:{t3}:str:a",
    ] {
        let slot: u16 = query(&mut con, &["CLUSTER", "KEYSLOT", key]);
        assert_eq!(slot, key_slot(key.as_bytes()), "slot of {key}");
    }
    assert_eq!(key_slot(b"123456789"), 12739);

    // The right node takes a key; another one redirects.
    let owner = cluster.master_for_key(b"foo").port();
    let other = cluster
        .masters()
        .into_iter()
        .find(|master| master.port() != owner)
        .expect("three masters");
    let moved = redis::cmd("SET")
        .arg("foo")
        .arg("bar")
        .query::<()>(&mut other.client())
        .expect_err("a node that does not own the slot must refuse the key");
    assert_eq!(moved.code(), Some("MOVED"), "{moved}");

    let source = RedisServer::start();
    let written = write_alike(&source, &cluster);
    for master in cluster.masters() {
        let keys: u64 = query(&mut master.client(), &["DBSIZE"]);
        assert!(keys > 0, "master {} got none of the keys", master.addr());
    }
    let total: u64 = cluster
        .masters()
        .iter()
        .map(|master| query::<u64>(&mut master.client(), &["DBSIZE"]))
        .sum();
    assert_eq!(total, written.len() as u64);
    compare::assert_same_dataset(&source, &cluster);

    // Deliberate differences, on the cluster side and in a db the cluster does not have.
    let _: () = query(
        &mut cluster.client_for_key(b"hash"),
        &["HSET", "hash", "f1", "x"],
    );
    let _: () = query(&mut cluster.client_for_key(b"str:3"), &["DEL", "str:3"]);
    let _: () = query(
        &mut cluster.client_for_key(b"extra"),
        &["SET", "extra", "v"],
    );
    let _: () = query(
        &mut cluster.client_for_key(b"ttl"),
        &["PEXPIREAT", "ttl", "4102444900000"],
    );
    let mut con = source.client();
    let _: () = query(&mut con, &["SELECT", "5"]);
    let _: () = query(&mut con, &["SET", "db5:key", "v"]);

    let differences = compare::dataset_differences(&source, &cluster);
    let report = compare::format_differences(&differences);
    let expected: BTreeMap<(u8, String), Vec<DiffKind>> = [
        (0, "hash", DiffKind::Value),
        (0, "str:3", DiffKind::MissingOnTarget),
        (0, "extra", DiffKind::ExtraOnTarget),
        (0, "ttl", DiffKind::Ttl),
        (5, "db5:key", DiffKind::MissingOnTarget),
    ]
    .into_iter()
    .map(|(db, key, kind)| ((db, key.to_string()), vec![kind]))
    .collect();
    assert_eq!(kinds_by_key(&differences), expected, "{report}");
    assert!(
        report.contains("\"f1\": \"v1\" vs \"x\""),
        "the value diff should name the field: {report}"
    );
}

#[test]
fn harness_cluster_with_replicas_comes_up() {
    let cluster = RedisCluster::builder().replicas_per_master(1).start();
    assert_eq!(cluster.nodes().len(), 6);
    assert_eq!(cluster.masters().len(), 3, "{}", cluster.log_tails(5));
    assert_eq!(cluster.replicas().len(), 3, "{}", cluster.log_tails(5));

    let source = RedisServer::start();
    write_alike(&source, &cluster);
    compare::assert_same_dataset(&source, &cluster);
    // Every master's writes reach its replica.
    for master in cluster.masters() {
        let acked: u64 = query(&mut master.client(), &["WAIT", "1", "10000"]);
        assert_eq!(
            acked,
            1,
            "master {} has no replica acknowledging",
            master.addr()
        );
    }
}

/// What a replica of Redis 7.0 cannot keep either: see `CompareOptions::live_replication`.
fn live() -> CompareOptions {
    CompareOptions::live_replication()
}

/// The cluster workload on its own, with Redis's own replication standing in for replicant:
/// it runs without errors, stays in db 0, writes across slots, and a replica fed its stream
/// equals the source. If this fails, the harness is wrong, not replicant.
#[test]
fn harness_cluster_workload_with_a_native_replica() {
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .start();
    let workload = Workload::start(&source.url(), WorkloadConfig::for_cluster());
    workload
        .wait_for_ops(300, Duration::from_secs(60))
        .unwrap_or_else(|err| panic!("{err}"));
    let replica = RedisServer::start();
    let port = source.port().to_string();
    let _: () = query(&mut replica.client(), &["REPLICAOF", "127.0.0.1", &port]);
    barrier::wait_for_replica_online(&source, Duration::from_secs(60), || Ok(()))
        .unwrap_or_else(|err| panic!("{err}"));
    let until = workload.ops() + 3_000;
    workload
        .wait_for_ops(until, Duration::from_secs(120))
        .unwrap_or_else(|err| panic!("{err}"));
    let report = workload.stop();
    assert!(
        report.cross_slot_ops > 200,
        "few cross-slot writes: {report:?}"
    );
    assert_eq!(report.flushdbs, 0, "{report:?}");
    report.wait_for_short_ttls();

    let keyspace: String = query(&mut source.client(), &["INFO", "keyspace"]);
    let dbs: Vec<&str> = keyspace
        .lines()
        .filter(|line| line.starts_with("db"))
        .collect();
    assert!(
        dbs.len() == 1 && dbs[0].starts_with("db0:"),
        "the workload left db 0: {keyspace}"
    );
    barrier::wait_for_sync(&source, Duration::from_secs(60), || Ok(()))
        .unwrap_or_else(|err| panic!("{err}"));
    compare::assert_same_dataset_with(&source, &replica, live());
}

#[test]
fn full_and_live_sync_into_a_three_master_cluster() {
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .start();
    let cluster = RedisCluster::start();
    dataset::fill_db0(&mut source.client());

    let workload = Workload::start(&source.url(), WorkloadConfig::for_cluster());
    workload
        .wait_for_ops(300, Duration::from_secs(60))
        .unwrap_or_else(|err| panic!("{err}"));

    let mut sync = SyncProcess::start(&source.url(), &cluster.url());
    if let Err(err) =
        barrier::wait_for_replica_online(&source, SNAPSHOT_TIMEOUT, || sync.check_running())
    {
        sync.fail(&err);
    }
    let until = workload.ops() + OPS_AFTER_SNAPSHOT;
    if let Err(err) = workload.wait_for_ops(until, Duration::from_secs(120)) {
        sync.fail(&err);
    }
    let report = workload.stop();
    assert!(
        report.cross_slot_ops > 0,
        "no cross-slot writes: {report:?}"
    );
    report.wait_for_short_ttls();

    if let Err(err) = barrier::wait_for_sync(&source, BARRIER_TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    let differences = compare::dataset_differences_with(&source, &cluster, live());
    if !differences.is_empty() {
        sync.fail(&format!(
            "after {} workload operations: {}",
            report.ops,
            compare::format_differences(&differences)
        ));
    }
    let log = sync.stop();
    let stopped = replicant::log_line(&log, "sync stopped").unwrap_or_else(|| {
        panic!(
            "no `sync stopped` line in the log\n--- replicant log tail ---\n{}",
            replicant::tail(&log, 40)
        )
    });
    let count = |name: &str| {
        replicant::log_count(stopped, name)
            .unwrap_or_else(|| panic!("no number {name}=… in the line {stopped:?}"))
    };
    assert!(
        count("split_commands") > 0,
        "the workload's MSET/DEL/UNLINK across slots were not split: {stopped:?}"
    );
    assert!(
        count("split_transactions") > 0,
        "the workload's MULTI/EXEC across slots were not applied per slot: {stopped:?}"
    );
    // Nothing the workload writes is beyond a cluster: everything must have been applied.
    assert_eq!(
        count("unsplittable"),
        0,
        "{stopped:?}\n--- replicant log tail ---\n{}",
        replicant::tail(&log, 40)
    );
    // Shown with `--nocapture`.
    println!("{report:?}\n{stopped}");
}

/// Whether `line` names db `db`: a word `5` or `db5` (as in "db 5", "db=5", "dbs [5]").
fn names_db(line: &str, db: u8) -> bool {
    let wanted = [db.to_string(), format!("db{db}")];
    line.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| wanted.iter().any(|w| w == word))
}

#[test]
fn a_source_with_other_dbs_is_refused_unless_mapped() {
    let source = RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .start();
    let mut con = source.client();
    let _: () = query(&mut con, &["SELECT", "5"]);
    let _: () = query(&mut con, &["SET", "db5:before", "in db five"]);
    let cluster = RedisCluster::start();

    // Refused: non-zero, in time, naming the target, the db and the options that map it.
    let target = cluster.url();
    let args: Vec<std::ffi::OsString> = ["sync", "--source", &source.url(), "--target", &target]
        .into_iter()
        .map(Into::into)
        .collect();
    let output = replicant::run(&args, &[], REFUSAL_DEADLINE);
    let described = output.describe();
    assert!(!output.timed_out, "not refused in time; {described}");
    assert!(
        output.status.code().is_some_and(|code| code != 0),
        "expected a non-zero exit; {described}"
    );
    assert!(!output.stderr.contains("panicked"), "{described}");
    let addr = cluster.masters()[0].addr();
    let names_all = |line: &&str| {
        let lower = line.to_lowercase();
        (lower.contains("target") || line.contains(&addr))
            && names_db(line, 5)
            && line.contains("--db-map")
            && line.contains("--all-dbs-to")
    };
    assert!(
        output.stderr.lines().any(|line| names_all(&line)),
        "no stderr line names the target, db 5, --db-map and --all-dbs-to; {described}"
    );
    for master in cluster.masters() {
        let keys: u64 = query(&mut master.client(), &["DBSIZE"]);
        assert_eq!(keys, 0, "a refused sync wrote to {}", master.addr());
    }

    // Mapped: the db 5 keys, of the snapshot and of the stream, arrive in db 0.
    for (run, mapping) in [["--db-map", "5:0"], ["--all-dbs-to", "0"]]
        .into_iter()
        .enumerate()
    {
        for master in cluster.masters() {
            let _: () = query(&mut master.client(), &["FLUSHALL"]);
        }
        let mut sync = SyncProcess::builder(&source.url(), &cluster.url())
            .arg(mapping[0])
            .arg(mapping[1])
            .start();
        if let Err(err) =
            barrier::wait_for_replica_online(&source, SNAPSHOT_TIMEOUT, || sync.check_running())
        {
            sync.fail(&format!("{mapping:?}: {err}"));
        }
        let after = format!("db5:after:{run}");
        let _: () = query(&mut con, &["SET", &after, "written live"]);
        if let Err(err) = barrier::wait_for_sync(&source, BARRIER_TIMEOUT, || sync.check_running())
        {
            sync.fail(&format!("{mapping:?}: {err}"));
        }
        let mut expected = vec![("db5:before".to_string(), "in db five")];
        expected.extend((0..=run).map(|r| (format!("db5:after:{r}"), "written live")));
        for (key, value) in &expected {
            let found: Option<String> =
                query(&mut cluster.client_for_key(key.as_bytes()), &["GET", key]);
            if found.as_deref() != Some(*value) {
                sync.fail(&format!(
                    "{mapping:?}: {key} is {found:?} in the cluster, expected {value:?}"
                ));
            }
        }
        // replicant's state keys (exactly-once delivery) are not the data.
        let total: u64 = cluster
            .masters()
            .iter()
            .map(|master| {
                let mut con = master.client();
                query::<u64>(&mut con, &["DBSIZE"])
                    - replicant_tests::compare::replicant_key_count(&mut con)
            })
            .sum();
        if total != expected.len() as u64 {
            sync.fail(&format!(
                "{mapping:?}: the cluster holds {total} keys, expected {}",
                expected.len()
            ));
        }
        sync.stop();
    }
}
