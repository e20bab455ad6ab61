//! `replicant sync` end to end: a source holding every type and encoding (big keys included)
//! and taking writes the whole time, before, during and after the snapshot; then the writes
//! stop, the sync barrier (replicant's acknowledged offset reaches the source's
//! `master_repl_offset`) is met, the destination must equal the source, and SIGTERM must end
//! replicant with status 0.

use std::time::Duration;

use replicant_tests::barrier;
use replicant_tests::compare::{self, CompareOptions};
use replicant_tests::dataset;
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::SyncProcess;
use replicant_tests::server::RedisServer;
use replicant_tests::workload::{Workload, WorkloadConfig};

/// Time for replicant to receive the snapshot (the source's replica line turns `online`).
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(180);
/// Time for replicant to apply everything once the writes have stopped.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(180);
/// Operations of the workload after the snapshot: about 3 s at the default rate.
const OPS_AFTER_SNAPSHOT: u64 = 4_500;

/// What a replica of Redis 7.0 cannot keep either: see `CompareOptions::live_replication`.
fn live() -> CompareOptions {
    CompareOptions::live_replication()
}

/// `extra`: more `replicant sync` arguments.
fn sync_during_live_writes(diskless: bool, extra: &[&str]) {
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        .config("repl-diskless-sync", if diskless { "yes" } else { "no" })
        .config("repl-diskless-sync-delay", "0")
        .start();
    let target = RedisServer::start();
    dataset::fill(&mut source.client());

    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    workload
        .wait_for_ops(300, Duration::from_secs(60))
        .unwrap_or_else(|err| panic!("{err}"));

    let mut sync = extra
        .iter()
        .fold(
            SyncProcess::builder(&source.url(), &target.url()),
            |builder, arg| builder.arg(arg),
        )
        .start();
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
    report.wait_for_short_ttls();

    if let Err(err) = barrier::wait_for_sync(&source, BARRIER_TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    let differences = compare::dataset_differences_with(&source, &target, live());
    if !differences.is_empty() {
        sync.fail(&format!(
            "after {} workload operations: {}",
            report.ops,
            compare::format_differences(&differences)
        ));
    }
    // Shown with `--nocapture`.
    println!(
        "{report:?}\n--- replicant log tail ---\n{}",
        sync.log_tail(15)
    );
    sync.stop();
}

#[test]
fn full_sync_and_live_stream_with_disk_based_rdb() {
    sync_during_live_writes(false, &[]);
}

#[test]
fn full_sync_and_live_stream_with_diskless_rdb() {
    sync_during_live_writes(true, &[]);
}

/// Every value of the snapshot rewritten as ordinary commands in batches instead of RESTORE
/// (replicant's `--restore-max-bytes` option, beyond the brief's CLI contract): the path for
/// big keys and for destinations older than the source.
#[test]
fn full_sync_and_live_stream_with_every_value_rewritten_as_commands() {
    sync_during_live_writes(true, &["--restore-max-bytes", "1"]);
}

/// Passwords from `REPLICANT_SOURCE_PASSWORD` / `REPLICANT_TARGET_PASSWORD`, URLs without
/// any; a small dataset, writes after the sync started.
#[test]
fn passwords_from_the_environment() {
    let source = RedisServer::builder()
        .password("source-secret")
        .config("repl-diskless-sync-delay", "0")
        .start();
    let target = RedisServer::builder().password("target-secret").start();
    let mut con = source.client();
    let write = |con: &mut redis::Connection, key: &str, value: &str| {
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query::<()>(con)
            .unwrap_or_else(|err| panic!("SET {key} failed: {err}"));
    };
    write(&mut con, "before", "snapshot");

    let mut sync = SyncProcess::builder(
        &source.url_with_password(None),
        &target.url_with_password(None),
    )
    .env("REPLICANT_SOURCE_PASSWORD", "source-secret")
    .env("REPLICANT_TARGET_PASSWORD", "target-secret")
    .start();
    if let Err(err) =
        barrier::wait_for_replica_online(&source, SNAPSHOT_TIMEOUT, || sync.check_running())
    {
        sync.fail(&err);
    }
    write(&mut con, "after", "snapshot");
    if let Err(err) = barrier::wait_for_sync(&source, BARRIER_TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    let differences = compare::dataset_differences_with(&source, &target, live());
    if !differences.is_empty() {
        sync.fail(&compare::format_differences(&differences));
    }
    sync.stop();
}
