//! replicant stops and starts again without copying again: the checkpoint in `--state-dir`
//! (the source's replication id and the offset the destination applied) makes the next run
//! continue the stream with PSYNC. Killed with SIGKILL five times under a load of idempotent
//! writes, stopped with SIGTERM, restarted after the source lost its backlog (a re-copy, with
//! `--on-full-resync flush` and `keep`), and given a state directory of another pair.

use std::path::Path;
use std::time::{Duration, Instant};

use replicant_tests::barrier;
use replicant_tests::compare::{self, CompareOptions};
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::{self, SyncProcess};
use replicant_tests::server::RedisServer;
use replicant_tests::workload::{Workload, WorkloadConfig};

const TIMEOUT: Duration = Duration::from_secs(120);

fn stat(source: &RedisServer, name: &str) -> u64 {
    barrier::info_number(source, "stats", name)
}

/// The offset of a `stand streaming` checkpoint in `dir`, if there is one.
fn checkpoint_offset(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("checkpoint")).ok()?;
    if !text.lines().any(|l| l == "stand streaming") {
        return None;
    }
    text.lines()
        .find_map(|l| l.strip_prefix("offset ")?.parse().ok())
}

fn master_offset(source: &RedisServer) -> u64 {
    barrier::replication_info(source)
        .unwrap_or_else(|e| panic!("{e}"))
        .master_repl_offset
}

/// Waits until the checkpoint in `dir` has reached the source's current offset.
fn wait_checkpointed(sync: &mut SyncProcess, source: &RedisServer, dir: &Path) {
    let want = master_offset(source);
    let deadline = Instant::now() + TIMEOUT;
    while !matches!(checkpoint_offset(dir), Some(o) if o >= want) {
        if let Err(e) = sync.check_running() {
            sync.fail(&e);
        }
        if Instant::now() > deadline {
            sync.fail(&format!(
                "the checkpoint did not reach offset {want} within {TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(source: &RedisServer, target: &RedisServer, dir: &Path, extra: &[&str]) -> SyncProcess {
    let mut b = SyncProcess::builder(&source.url(), &target.url())
        .arg("--state-dir")
        .arg(dir.to_str().expect("utf-8 temp path"));
    for a in extra {
        b = b.arg(a);
    }
    b.start()
}

fn source() -> RedisServer {
    RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .config("repl-backlog-size", "64mb")
        .start()
}

fn assert_equal(sync: &SyncProcess, source: &RedisServer, target: &RedisServer) {
    let differences =
        compare::dataset_differences_with(source, target, CompareOptions::live_replication());
    if !differences.is_empty() {
        sync.fail(&compare::format_differences(&differences));
    }
}

#[test]
fn five_kills_continue_from_the_checkpoint() {
    let _guard = heavy_test_guard();
    let source = source();
    let target = RedisServer::start();
    let state = tempfile::tempdir().expect("state dir");
    let config = WorkloadConfig {
        idempotent: true,
        ..WorkloadConfig::default()
    };
    let workload = Workload::start(&source.url(), config);
    workload
        .wait_for_ops(300, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sync = start(&source, &target, state.path(), &[]);
    if let Err(e) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    assert_eq!(stat(&source, "sync_full"), 1);
    let partial_before = stat(&source, "sync_partial_ok");
    for n in 1..=5u64 {
        let until = workload.ops() + 300;
        if let Err(e) = workload.wait_for_ops(until, TIMEOUT) {
            sync.fail(&e);
        }
        wait_checkpointed(&mut sync, &source, state.path());
        // Writes go on while replicant is down.
        let _ = sync.kill();
        let until = workload.ops() + 100;
        workload
            .wait_for_ops(until, TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        sync = start(&source, &target, state.path(), &[]);
        let deadline = Instant::now() + TIMEOUT;
        while stat(&source, "sync_partial_ok") < partial_before + n {
            if let Err(e) = sync.check_running() {
                sync.fail(&e);
            }
            if Instant::now() > deadline {
                sync.fail(&format!(
                    "restart {n}: no partial resync within {TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            sync.log().contains("continuing from the checkpoint"),
            "restart {n} did not read the checkpoint:\n{}",
            sync.log_tail(20)
        );
    }
    let until = workload.ops() + 300;
    if let Err(e) = workload.wait_for_ops(until, TIMEOUT) {
        sync.fail(&e);
    }
    workload.stop();
    if let Err(e) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    assert_eq!(stat(&source, "sync_partial_ok"), partial_before + 5);
    assert_eq!(stat(&source, "sync_full"), 1, "no full re-copy");
    assert_equal(&sync, &source, &target);
    sync.stop();
}

#[test]
fn sigterm_saves_a_checkpoint_and_the_next_start_continues() {
    let _guard = heavy_test_guard();
    let source = source();
    let target = RedisServer::start();
    let state = tempfile::tempdir().expect("state dir");
    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    workload
        .wait_for_ops(300, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sync = start(&source, &target, state.path(), &["--grace", "10"]);
    if let Err(e) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    wait_checkpointed(&mut sync, &source, state.path());
    let streamed = checkpoint_offset(state.path()).unwrap_or(0);
    let until = workload.ops() + 300;
    if let Err(e) = workload.wait_for_ops(until, TIMEOUT) {
        sync.fail(&e);
    }
    // Mid-stream: exits 0 (asserted by `stop`) within the grace period, with a checkpoint.
    let stopping = Instant::now();
    let log = sync.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(10) + Duration::from_secs(5),
        "took {:?} to stop",
        stopping.elapsed()
    );
    assert!(
        replicant::log_line(&log, "checkpoint saved").is_some(),
        "{log}"
    );
    let saved = checkpoint_offset(state.path()).expect("a streaming checkpoint");
    assert!(
        saved > streamed,
        "checkpoint offset {saved}, {streamed} before the last writes\n{log}"
    );
    let partial_before = stat(&source, "sync_partial_ok");
    let mut sync = start(&source, &target, state.path(), &[]);
    let deadline = Instant::now() + TIMEOUT;
    while stat(&source, "sync_partial_ok") <= partial_before {
        if let Err(e) = sync.check_running() {
            sync.fail(&e);
        }
        if Instant::now() > deadline {
            sync.fail("no partial resync after the restart");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = workload.stop();
    report.wait_for_short_ttls();
    if let Err(e) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    assert_eq!(stat(&source, "sync_full"), 1, "no full re-copy");
    assert_equal(&sync, &source, &target);
    sync.stop();
}

/// Syncs, stops, deletes keys on the source and makes it unable to continue the stream (a new
/// replication id), then starts again with `policy`; returns the second run's log.
fn recopy(policy: &str) -> (RedisServer, RedisServer, String) {
    let source = source();
    let target = RedisServer::start();
    let state = tempfile::tempdir().expect("state dir");
    let mut con = source.client();
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("k:{i}"))
            .arg(i)
            .query(&mut con)
            .expect("SET");
    }
    let mut sync = start(&source, &target, state.path(), &[]);
    if let Err(e) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    wait_checkpointed(&mut sync, &source, state.path());
    sync.stop();
    for i in 0..10 {
        let _: () = redis::cmd("DEL")
            .arg(format!("k:{i}"))
            .query(&mut con)
            .expect("DEL");
    }
    let _: () = redis::cmd("DEBUG")
        .arg("CHANGE-REPL-ID")
        .query(&mut con)
        .expect("DEBUG CHANGE-REPL-ID");
    let mut sync = start(
        &source,
        &target,
        state.path(),
        &["--on-full-resync", policy],
    );
    if let Err(e) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    assert_eq!(stat(&source, "sync_full"), 2, "the second run copied again");
    let log = sync.stop();
    (source, target, log)
}

#[test]
fn a_recopy_with_flush_leaves_the_destination_equal() {
    let _guard = heavy_test_guard();
    let (source, target, log) = recopy("flush");
    assert!(log.contains("FLUSHALL"), "{log}");
    compare::assert_same_dataset_with(&source, &target, CompareOptions::live_replication());
}

#[test]
fn a_recopy_with_keep_reports_the_keys_left_behind() {
    let _guard = heavy_test_guard();
    let (source, target, log) = recopy("keep");
    let line = replicant::log_line(&log, "keeps keys").unwrap_or_else(|| panic!("{log}"));
    assert_eq!(replicant::log_count(line, "kept"), Some(10), "{line}");
    let keys: u64 = redis::cmd("DBSIZE")
        .query(&mut target.client())
        .expect("DBSIZE");
    assert_eq!(keys, 200, "the deleted keys are kept on the destination");
    drop(source);
}

#[test]
fn a_state_dir_of_another_pair_is_refused() {
    let source = source();
    let target = RedisServer::start();
    let other = RedisServer::start();
    let state = tempfile::tempdir().expect("state dir");
    let mut sync = start(&source, &target, state.path(), &[]);
    if let Err(e) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    wait_checkpointed(&mut sync, &source, state.path());
    sync.stop();
    let mut wrong = start(&source, &other, state.path(), &[]);
    let status = wrong
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| wrong.fail("kept running with another pair's state dir"));
    assert!(!status.success());
    let log = wrong.log();
    assert!(
        log.contains("belongs to source") && log.contains(&other.addr()),
        "{log}"
    );
}
