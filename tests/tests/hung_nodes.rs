//! Nodes that stop answering without closing anything: a destination or a source process
//! stopped with SIGSTOP for 45 s while writes go on. The destination's silence is detected
//! within `--target-timeout` (logged, `replicant_target_stalled`), replicant waits for it
//! rather than sending again what the node still holds, and after SIGCONT the destination
//! equals the source under a non-idempotent load (INCR, APPEND, RPUSH, …: a write applied
//! twice would show). The source's silence ends the link within `--source-timeout`, and the
//! stream continues by PSYNC once it answers again. A master of a destination cluster stopped
//! and failed over by the cluster meanwhile is followed to its promoted replica.

use std::time::{Duration, Instant};

use replicant_tests::barrier;
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::SyncProcess;
use replicant_tests::server::{signal, RedisServer};
use replicant_tests::workload::{Workload, WorkloadConfig};

const TIMEOUT: Duration = Duration::from_secs(180);
/// How long the node stays stopped.
const STOPPED: Duration = Duration::from_secs(45);

/// Keeps the process `pid` stopped until the fault has lasted [`STOPPED`] (replicant must
/// stay up meanwhile), then lets it go on.
fn resume_after_the_fault(sync: &mut SyncProcess, pid: u32, stopped_at: Instant) {
    while stopped_at.elapsed() < STOPPED {
        if let Err(err) = sync.check_running() {
            signal("-CONT", pid);
            sync.fail(&err);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    signal("-CONT", pid);
}

/// Waits until replicant's log holds `marker`, or fails the run.
fn wait_for_log(sync: &mut SyncProcess, marker: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !sync.log().contains(marker) {
        if Instant::now() > deadline {
            sync.fail(&format!(
                "no {marker:?} in the log within {} s",
                within.as_secs()
            ));
        }
        if let Err(err) = sync.check_running() {
            sync.fail(&err);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stat(server: &RedisServer, name: &str) -> u64 {
    barrier::info_number(server, "stats", name)
}

#[test]
fn a_destination_stopped_for_45_s_loses_and_doubles_nothing() {
    let _guard = heavy_test_guard();
    let source = RedisServer::start();
    let target = RedisServer::start();
    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    let mut sync = SyncProcess::builder(&source.url(), &target.url())
        .arg("--target-timeout")
        .arg("3")
        .start();
    if let Err(err) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    workload
        .wait_for_ops(workload.ops() + 1_000, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    signal("-STOP", target.pid());
    let stopped_at = Instant::now();
    // Detected within --target-timeout (3 s) plus the probe's own wait.
    wait_for_log(
        &mut sync,
        "the destination does not answer",
        Duration::from_secs(20),
    );
    let detected = stopped_at.elapsed();
    // The fault lasts its full length, the writes going on meanwhile.
    resume_after_the_fault(&mut sync, target.pid(), stopped_at);
    wait_for_log(&mut sync, "the destination answers again", TIMEOUT);
    workload
        .wait_for_ops(workload.ops() + 1_000, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let report = workload.stop();
    report.wait_for_short_ttls();
    sync.synced_and_equal(&source, &target, TIMEOUT);
    if let Err(err) = sync.check_running() {
        sync.fail(&err);
    }
    let log = sync.stop();
    assert!(
        !log.contains("will be sent again"),
        "nothing may be sent again to a node that still holds it"
    );
    println!(
        "detected after {} ms; {} workload ops",
        detected.as_millis(),
        report.ops
    );
}

#[test]
fn a_source_stopped_for_45_s_is_followed_again_by_psync() {
    let _guard = heavy_test_guard();
    let source = RedisServer::start();
    let target = RedisServer::start();
    let mut sync = SyncProcess::builder(&source.url(), &target.url())
        .arg("--source-timeout")
        .arg("5")
        .start();
    if let Err(err) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    workload
        .wait_for_ops(1_000, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    // A stopped source blocks its clients: the writes stop first.
    workload.stop();
    let partial_before = stat(&source, "sync_partial_ok");
    signal("-STOP", source.pid());
    let stopped_at = Instant::now();
    wait_for_log(&mut sync, "lost the source link", Duration::from_secs(30));
    resume_after_the_fault(&mut sync, source.pid(), stopped_at);
    let deadline = Instant::now() + TIMEOUT;
    while stat(&source, "sync_partial_ok") <= partial_before {
        if Instant::now() > deadline {
            sync.fail("the link did not continue by PSYNC");
        }
        if let Err(err) = sync.check_running() {
            sync.fail(&err);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let workload = Workload::start(
        &source.url(),
        WorkloadConfig {
            seed: 7,
            ..WorkloadConfig::default()
        },
    );
    workload
        .wait_for_ops(1_000, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    workload.stop().wait_for_short_ttls();
    sync.synced_and_equal(&source, &target, TIMEOUT);
    assert_eq!(stat(&source, "sync_full"), 1, "no copy again");
    sync.stop();
}

/// A master of a destination cluster SIGSTOPped during streaming, and failed over by the
/// cluster while it is stopped: replicant does not wait for it (with exactly-once delivery,
/// the default), it follows the slot map to the promoted replica, reads back what that holds
/// and sends the rest. The stopped node is let go afterwards (it comes back as a replica and
/// discards whatever it applied late); the destination equals the source.
#[test]
fn a_cluster_master_failed_over_while_stopped_is_followed() {
    let _guard = heavy_test_guard();
    let source = RedisServer::start();
    let target = replicant_tests::cluster::RedisCluster::builder()
        .masters(3)
        .replicas_per_master(1)
        .start();
    let config = WorkloadConfig {
        db0_only: true,
        ..WorkloadConfig::default()
    };
    let workload = Workload::start(&source.url(), config);
    let mut sync = SyncProcess::builder(&source.url(), &target.url())
        .arg("--target-timeout")
        .arg("3")
        .start();
    if let Err(err) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    workload
        .wait_for_ops(workload.ops() + 1_000, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let stopped = target.masters()[0].addr();
    let promoted = target
        .replica_of(&stopped)
        .expect("a replica of the first master");
    let pid = target.node(&stopped).expect("the node").pid();
    signal("-STOP", pid);
    // The cluster promotes the replica after its node timeout (2 s).
    if let Err(err) = target.wait_for_role(&promoted, "master", TIMEOUT) {
        signal("-CONT", pid);
        sync.fail(&err);
    }
    wait_for_log(&mut sync, "following the failover", TIMEOUT);
    // The writes go on into the promoted master while the old one is still stopped.
    let until = workload.ops() + 1_000;
    if let Err(err) = workload.wait_for_ops(until, TIMEOUT) {
        signal("-CONT", pid);
        sync.fail(&err);
    }
    if let Err(err) = sync.check_running() {
        signal("-CONT", pid);
        sync.fail(&err);
    }
    signal("-CONT", pid);
    if let Err(err) = target.wait_for_role(&stopped, "slave", TIMEOUT) {
        sync.fail(&err);
    }
    let report = workload.stop();
    report.wait_for_short_ttls();
    sync.synced_and_equal(&source, &target, TIMEOUT);
    sync.stop();
}
