//! A destination that drops the connection or refuses writes for a while does not stop the
//! run: its connection is killed five times under a load of idempotent writes (replicant
//! reconnects and sends again what was not answered, in order), and a script keeps it BUSY for
//! three seconds under the mixed workload (the refused writes, transactions whole, are sent
//! again in order once it takes writes, `--retry-errors`). Either way
//! the destination equals the source at the end and the source never copies again.

use std::time::{Duration, Instant};

use replicant_tests::barrier;
use replicant_tests::compare::{self, CompareOptions};
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::SyncProcess;
use replicant_tests::server::RedisServer;
use replicant_tests::workload::{Workload, WorkloadConfig};

const TIMEOUT: Duration = Duration::from_secs(120);

fn sync_full(source: &RedisServer) -> u64 {
    barrier::info_number(source, "stats", "sync_full")
}

fn idempotent() -> WorkloadConfig {
    WorkloadConfig {
        idempotent: true,
        ..WorkloadConfig::default()
    }
}

fn finish(sync: SyncProcess, workload: Workload, source: &RedisServer, target: &RedisServer) {
    let mut sync = sync;
    let until = workload.ops() + 300;
    if let Err(e) = workload.wait_for_ops(until, TIMEOUT) {
        sync.fail(&e);
    }
    workload.stop();
    if let Err(e) = barrier::wait_for_sync(source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    assert_eq!(sync_full(source), 1, "no re-copy");
    let differences =
        compare::dataset_differences_with(source, target, CompareOptions::live_replication());
    if !differences.is_empty() {
        sync.fail(&compare::format_differences(&differences));
    }
    sync.stop();
}

#[test]
fn five_destination_connection_kills_are_survived() {
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .start();
    let target = RedisServer::start();
    let workload = Workload::start(&source.url(), idempotent());
    workload
        .wait_for_ops(300, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sync = SyncProcess::start(&source.url(), &target.url());
    if let Err(e) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    for n in 1..=5usize {
        let until = workload.ops() + 200;
        if let Err(e) = workload.wait_for_ops(until, TIMEOUT) {
            sync.fail(&e);
        }
        let killed: u64 = redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal"])
            .query(&mut target.client())
            .expect("CLIENT KILL");
        assert!(killed >= 1, "kill {n}: replicant's connection to kill");
        let deadline = Instant::now() + TIMEOUT;
        while sync.log().matches("reconnected to the destination").count() < n {
            if let Err(e) = sync.check_running() {
                sync.fail(&e);
            }
            if Instant::now() > deadline {
                sync.fail(&format!("kill {n}: no reconnection within {TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    finish(sync, workload, &source, &target);
}

#[test]
fn a_busy_destination_is_retried() {
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .start();
    let target = RedisServer::builder()
        .config("busy-reply-threshold", "100")
        .start();
    // Refused commands are not applied, so any workload must come out equal: the mixed one,
    // with transactions, INCRs and list pushes, checks order and whole transactions.
    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    workload
        .wait_for_ops(300, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sync = SyncProcess::start(&source.url(), &target.url());
    if let Err(e) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    // A script that keeps the destination busy for three seconds, then ends by itself.
    let mut busy_con = target.client();
    let busy = std::thread::spawn(move || {
        let _: redis::RedisResult<()> = redis::cmd("EVAL")
            .arg(
                "local s = tonumber(redis.call('TIME')[1]) \
                 while tonumber(redis.call('TIME')[1]) - s < 3 do end",
            )
            .arg(0)
            .query(&mut busy_con);
    });
    let deadline = Instant::now() + TIMEOUT;
    while !sync.log().contains("refuses writes for now") {
        if let Err(e) = sync.check_running() {
            sync.fail(&e);
        }
        if Instant::now() > deadline {
            sync.fail("replicant never met the BUSY destination");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    busy.join().expect("the script thread");
    finish(sync, workload, &source, &target);
}
