//! The harness on its own, without replicant: servers start, the dataset has the encodings it
//! promises, the comparison finds exactly what differs, and the workload plus the sync
//! barrier give equal datasets with Redis's own replication.

use std::collections::BTreeMap;
use std::time::Duration;

use replicant_tests::barrier;
use replicant_tests::compare::{self, CompareOptions, DiffKind};
use replicant_tests::dataset;
use replicant_tests::heavy_test_guard;
use replicant_tests::server::RedisServer;
use replicant_tests::workload::{Workload, WorkloadConfig};

/// The differences found, as (db, key) → kinds, for exact assertions.
fn kinds_by_key(differences: &[compare::Difference]) -> BTreeMap<(u8, Vec<u8>), Vec<DiffKind>> {
    let mut map: BTreeMap<(u8, Vec<u8>), Vec<DiffKind>> = BTreeMap::new();
    for difference in differences {
        map.entry((difference.db, difference.key.clone()))
            .or_default()
            .push(difference.kind);
    }
    map
}

fn query<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command
        .query(con)
        .unwrap_or_else(|err| panic!("{args:?} failed: {err}"))
}

#[test]
fn same_fill_compares_equal_and_five_changes_are_reported() {
    let _guard = heavy_test_guard();
    let source = RedisServer::start();
    let target = RedisServer::start();
    dataset::fill(&mut source.client());
    dataset::fill(&mut target.client());

    let mismatches = dataset::encoding_mismatches(&mut source.client());
    assert!(mismatches.is_empty(), "dataset encodings: {mismatches:#?}");
    compare::assert_same_dataset(&source, &target);

    let mut con = target.client();
    let _: () = query(&mut con, &["HSET", "ds:hash:huge", "f5", "changed"]);
    let _: () = query(&mut con, &["PEXPIREAT", "ds:list:small", "4102444800000"]);
    let _: () = query(&mut con, &["DEL", "ds:str:embstr"]);
    let _: () = query(&mut con, &["SADD", "ds:str:embstr", "now a set"]);
    let _: () = query(&mut con, &["SET", "extra:key", "only on the target"]);
    let _: () = query(&mut con, &["SELECT", "5"]);
    let _: () = query(&mut con, &["DEL", "ds5:zset"]);

    let differences = compare::dataset_differences(&source, &target);
    let report = compare::format_differences(&differences);
    let expected: BTreeMap<(u8, Vec<u8>), Vec<DiffKind>> = [
        (0, "ds:hash:huge", DiffKind::Value),
        (0, "ds:list:small", DiffKind::Ttl),
        (0, "ds:str:embstr", DiffKind::Type),
        (0, "extra:key", DiffKind::ExtraOnTarget),
        (5, "ds5:zset", DiffKind::MissingOnTarget),
    ]
    .into_iter()
    .map(|(db, key, kind)| ((db, key.as_bytes().to_vec()), vec![kind]))
    .collect();
    assert_eq!(kinds_by_key(&differences), expected, "{report}");
    // The value diff says what changed, not just that something did.
    assert!(
        report.contains("\"f5\": \"35\" vs \"changed\""),
        "the value diff should name the field: {report}"
    );
}

#[test]
fn stream_metadata_is_compared_and_ttls_have_a_tolerance() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    for (server, pttl) in [(&source, "100000"), (&target, "100400")] {
        let mut con = server.client();
        let _: () = query(&mut con, &["XADD", "s", "1-1", "f", "v"]);
        let _: () = query(&mut con, &["XADD", "s", "1-2", "f", "w"]);
        let _: () = query(&mut con, &["XGROUP", "CREATE", "s", "g", "0"]);
        let _: redis::Value = query(
            &mut con,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "COUNT",
                "1",
                "STREAMS",
                "s",
                ">",
            ],
        );
        // Within the tolerance: equal.
        let _: () = query(&mut con, &["SET", "t", "v", "PX", pttl]);
    }
    compare::assert_same_dataset(&source, &target);

    // Invisible to DEBUG DIGEST-VALUE: only the stream metadata comparison sees these.
    let mut con = target.client();
    let _: () = query(&mut con, &["XGROUP", "SETID", "s", "g", "1-2"]);
    let _: () = query(&mut con, &["PEXPIRE", "t", "103000"]);
    let differences = compare::dataset_differences(&source, &target);
    let expected: BTreeMap<(u8, Vec<u8>), Vec<DiffKind>> = [
        ((0, b"s".to_vec()), vec![DiffKind::Stream]),
        ((0, b"t".to_vec()), vec![DiffKind::Ttl]),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        kinds_by_key(&differences),
        expected,
        "{}",
        compare::format_differences(&differences)
    );
}

/// The workload, the sync barrier and the comparison, with Redis's own replication standing
/// in for replicant: if this fails, the harness is wrong, not replicant.
#[test]
fn workload_and_barrier_with_a_native_replica() {
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        .config("repl-diskless-sync", "yes")
        .config("repl-diskless-sync-delay", "0")
        .start();
    dataset::fill(&mut source.client());
    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    workload
        .wait_for_ops(300, Duration::from_secs(60))
        .unwrap_or_else(|err| panic!("{err}"));

    let replica = RedisServer::start();
    let port = source.port().to_string();
    let _: () = query(&mut replica.client(), &["REPLICAOF", "127.0.0.1", &port]);
    barrier::wait_for_replica_online(&source, Duration::from_secs(120), || Ok(()))
        .unwrap_or_else(|err| panic!("{err}"));
    let after_snapshot = workload.ops() + 3_000;
    workload
        .wait_for_ops(after_snapshot, Duration::from_secs(120))
        .unwrap_or_else(|err| panic!("{err}"));
    let report = workload.stop();
    assert!(
        report.last_short_expiry_ms > 0,
        "no short TTLs written: {report:?}"
    );
    assert!(report.flushdbs > 0, "no FLUSHDB: {report:?}");
    report.wait_for_short_ttls();

    barrier::wait_for_sync(&source, Duration::from_secs(120), || Ok(()))
        .unwrap_or_else(|err| panic!("{err}"));
    // Redis's own replication loses entries-read (see `CompareOptions::live_replication`):
    // strictly, the datasets differ.
    let strict = compare::dataset_differences(&source, &replica);
    assert!(
        strict
            .iter()
            .all(|d| d.kind == DiffKind::Stream && d.detail.contains("entries-read")),
        "{}",
        compare::format_differences(&strict)
    );
    compare::assert_same_dataset_with(&source, &replica, CompareOptions::live_replication());
}

#[test]
fn a_server_that_cannot_load_its_rdb_is_a_start_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.rdb");
    std::fs::write(&bad, b"REDIS0099 not a real file").expect("write a bad RDB");
    let err = match RedisServer::builder().rdb_file(&bad).try_start() {
        Ok(_) => panic!("redis-server loaded a bad RDB file"),
        Err(err) => err,
    };
    assert!(err.message.contains("exited early"), "{err}");
    assert!(
        err.log_tail.contains("Can't handle RDB format version"),
        "{err}"
    );
}

#[test]
fn password_protected_server() {
    let server = RedisServer::builder().password("s3cret").start();
    let pong: String = query(&mut server.client(), &["PING"]);
    assert_eq!(pong, "PONG");
    assert!(server.url().contains(":s3cret@"));
    let refused = replicant_tests::server::connect(&server.url_with_password(Some("wrong")));
    assert!(refused.is_err(), "a wrong password must be refused");
}
