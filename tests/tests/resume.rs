//! A lost source link does not start the migration over: the replica link is cut ten times
//! while the source takes writes — by the source (`CLIENT KILL TYPE replica`), and by the
//! network (a TCP relay in between drops the connection) — and each time replicant reconnects
//! and continues the stream with PSYNC. The source's own counters say so (`sync_partial_ok`
//! grows by 10, `sync_full` stays at 1) and the destination equals the source at the end.

use std::time::{Duration, Instant};

use replicant_tests::barrier;
use replicant_tests::compare::{self, CompareOptions};
use replicant_tests::heavy_test_guard;
use replicant_tests::relay::Relay;
use replicant_tests::replicant::SyncProcess;
use replicant_tests::server::RedisServer;
use replicant_tests::workload::{Workload, WorkloadConfig};

const TIMEOUT: Duration = Duration::from_secs(120);

fn stat(source: &RedisServer, name: &str) -> u64 {
    barrier::info_number(source, "stats", name)
}

/// Syncs from `source` (reached at `source_url`) under writes, cuts the link ten times with
/// `cut`, and checks the partial resyncs and the result.
fn ten_cuts(source: &RedisServer, source_url: &str, mut cut: impl FnMut(u64)) {
    let target = RedisServer::start();
    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    workload
        .wait_for_ops(300, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sync = SyncProcess::start(source_url, &target.url());
    if let Err(e) = barrier::wait_for_replica_online(source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    assert_eq!(stat(source, "sync_full"), 1);
    let partial_before = stat(source, "sync_partial_ok");
    for n in 1..=10u64 {
        let until = workload.ops() + 200;
        if let Err(e) = workload.wait_for_ops(until, TIMEOUT) {
            sync.fail(&e);
        }
        cut(n);
        // Wait until the source has accepted the continuation.
        let deadline = Instant::now() + TIMEOUT;
        while stat(source, "sync_partial_ok") < partial_before + n {
            if let Err(e) = sync.check_running() {
                sync.fail(&e);
            }
            if Instant::now() > deadline {
                sync.fail(&format!("cut {n}: no partial resync within {TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let until = workload.ops() + 500;
    if let Err(e) = workload.wait_for_ops(until, TIMEOUT) {
        sync.fail(&e);
    }
    let report = workload.stop();
    report.wait_for_short_ttls();
    if let Err(e) = barrier::wait_for_sync(source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    assert_eq!(stat(source, "sync_partial_ok"), partial_before + 10);
    assert_eq!(stat(source, "sync_full"), 1, "no full re-copy");
    let differences =
        compare::dataset_differences_with(source, &target, CompareOptions::live_replication());
    if !differences.is_empty() {
        sync.fail(&compare::format_differences(&differences));
    }
    sync.stop();
}

fn source() -> RedisServer {
    RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .config("repl-backlog-size", "64mb")
        .start()
}

#[test]
fn ten_link_kills_by_the_source_continue_with_partial_resyncs() {
    let _guard = heavy_test_guard();
    let source = source();
    ten_cuts(&source, &source.url(), |n| {
        let killed: u64 = redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "replica"])
            .query(&mut source.client())
            .expect("CLIENT KILL");
        assert_eq!(killed, 1, "cut {n}: one replica link to kill");
    });
}

#[test]
fn ten_network_cuts_continue_with_partial_resyncs() {
    let _guard = heavy_test_guard();
    let source = source();
    let relay = Relay::start(&source.addr());
    ten_cuts(&source, &relay.url(), |n| {
        assert!(
            relay.cut() >= 1,
            "cut {n}: a connection through the relay to cut"
        );
    });
}

/// The source turns, for 10 s, into a replica of a master nobody can reach, with
/// `replica-serve-stale-data no` (as a failover gone wrong leaves it), then back into a master.
/// Its replica links are dropped; while it is a replica it answers MASTERDOWN (to PING) or
/// NOMASTERLINK (to PSYNC); replicant waits, then continues the stream with PSYNC.
#[test]
fn a_source_that_is_for_a_while_a_replica_of_a_lost_master_is_waited_for() {
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .config("repl-backlog-size", "64mb")
        .config("replica-serve-stale-data", "no")
        .start();
    let target = RedisServer::start();
    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    workload
        .wait_for_ops(300, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sync = SyncProcess::start(&source.url(), &target.url());
    if let Err(e) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    let until = workload.ops() + 500;
    if let Err(e) = workload.wait_for_ops(until, TIMEOUT) {
        sync.fail(&e);
    }
    workload.stop();
    if let Err(e) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    let partial_before = stat(&source, "sync_partial_ok");
    // A port nothing listens on: the source cannot reach its new master.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut admin = source.client();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(nobody)
        .query(&mut admin)
        .expect("REPLICAOF");
    // Whether or not REPLICAOF dropped the link, replicant must now link again to a source
    // that is not ready.
    let _: redis::RedisResult<u64> = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "replica"])
        .query(&mut admin);
    let back = Instant::now() + Duration::from_secs(10);
    while Instant::now() < back {
        if let Err(e) = sync.check_running() {
            sync.fail(&format!(
                "while the source was a replica of a lost master: {e}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = sync.log();
    assert!(
        log.contains("cannot link to the source yet") && log.contains("MASTERDOWN")
            || log.contains("NOMASTERLINK"),
        "replicant should have been told the source is not ready:\n{}",
        sync.log_tail(20)
    );
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut admin)
        .expect("REPLICAOF NO ONE");
    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    let until = workload.ops() + 500;
    if let Err(e) = workload.wait_for_ops(until, TIMEOUT) {
        sync.fail(&e);
    }
    let report = workload.stop();
    report.wait_for_short_ttls();
    if let Err(e) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    assert!(
        stat(&source, "sync_partial_ok") > partial_before,
        "the stream continued with PSYNC"
    );
    assert_eq!(stat(&source, "sync_full"), 1, "no full re-copy");
    let differences =
        compare::dataset_differences_with(&source, &target, CompareOptions::live_replication());
    if !differences.is_empty() {
        sync.fail(&compare::format_differences(&differences));
    }
    sync.stop();
}
