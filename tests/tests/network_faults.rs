//! Real network faults. replicant runs in a network namespace of the test's own; the source and
//! the destination run outside it, each reached over its own veth pair (the test's clients use
//! loopback, so only replicant's traffic crosses the pairs, and none of it leaves the machine):
//! - 50 ms of round-trip latency and about 1 % loss (`tc … netem`) on both links during a full
//!   sync and the stream that follows;
//! - the source link cut for 30 s (both ends down: packets dropped, nothing closed) while
//!   writes go on: the link is given up (`--source-timeout`), and once the link is back the
//!   stream continues by PSYNC, with no copy;
//! - the destination link cut for 30 s under a non-idempotent load: nothing lost, nothing
//!   applied twice.
//!
//! Each test reports itself skipped, with the reason, where namespaces or netem are not
//! allowed (not root, a kernel without the netem qdisc).

use std::time::{Duration, Instant};

use replicant_tests::barrier;
use replicant_tests::dataset;
use replicant_tests::heavy_test_guard;
use replicant_tests::netns::Netns;
use replicant_tests::replicant::SyncProcess;
use replicant_tests::server::{self, RedisServer};
use replicant_tests::workload::{Workload, WorkloadConfig};

const TIMEOUT: Duration = Duration::from_secs(240);
/// How long a link stays cut.
const PARTITION: Duration = Duration::from_secs(30);
const SOURCE: usize = 0;
const TARGET: usize = 1;

/// The namespace with one pair for the source link and one for the destination link, or
/// `None` (the test is reported skipped) where the machine does not allow it.
fn namespace(test: &str) -> Option<Netns> {
    match Netns::create(2) {
        Ok(ns) => Some(ns),
        Err(why) => {
            server::skipped(
                test,
                &format!("cannot make a network namespace here: {why}"),
            );
            None
        }
    }
}

/// A server reachable on loopback (the test) and on the outer end of `pair` (replicant).
fn server_on(ns: &Netns, pair: usize) -> RedisServer {
    RedisServer::builder()
        .config("bind", &ns.listen_on(pair))
        .config("protected-mode", "no")
        .config("repl-diskless-sync-delay", "0")
        .config("repl-backlog-size", "256mb")
        .start()
}

/// `redis://<outer end of pair>:<port>`: the server as replicant sees it.
fn url_through(ns: &Netns, pair: usize, server: &RedisServer) -> String {
    format!("redis://{}:{}", ns.outer_ip(pair), server.port())
}

fn start(ns: &Netns, source: &RedisServer, target: &RedisServer, extra: &[&str]) -> SyncProcess {
    let mut b = SyncProcess::builder(
        &url_through(ns, SOURCE, source),
        &url_through(ns, TARGET, target),
    )
    .in_netns(ns);
    for a in extra {
        b = b.arg(a);
    }
    b.start()
}

/// Keeps pair `pair` cut for [`PARTITION`] (replicant must stay up meanwhile), then joins it.
fn partition(ns: &Netns, pair: usize, sync: &mut SyncProcess) {
    ns.set_link(pair, false).unwrap_or_else(|e| sync.fail(&e));
    let cut = Instant::now();
    while cut.elapsed() < PARTITION {
        if let Err(err) = sync.check_running() {
            let _ = ns.set_link(pair, true);
            sync.fail(&err);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    ns.set_link(pair, true).unwrap_or_else(|e| sync.fail(&e));
}

fn stat(server: &RedisServer, name: &str) -> u64 {
    barrier::info_number(server, "stats", name)
}

#[test]
fn latency_and_loss_during_a_full_sync_and_the_stream() {
    const NAME: &str = "network_faults::latency_and_loss_during_a_full_sync_and_the_stream";
    let _guard = heavy_test_guard();
    let Some(ns) = namespace(NAME) else { return };
    // 25 ms each way on each link: 50 ms round trips; 0.5 % loss each way.
    for pair in [SOURCE, TARGET] {
        if let Err(why) = ns.netem(pair, "delay 25ms loss 0.5%") {
            server::skipped(NAME, &format!("the kernel refuses netem: {why}"));
            return;
        }
    }
    let source = server_on(&ns, SOURCE);
    let target = server_on(&ns, TARGET);
    dataset::fill(&mut source.client());
    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    workload
        .wait_for_ops(500, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sync = start(&ns, &source, &target, &[]);
    if let Err(e) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    let until = workload.ops() + 3_000;
    workload
        .wait_for_ops(until, TIMEOUT)
        .unwrap_or_else(|e| sync.fail(&e));
    workload.stop().wait_for_short_ttls();
    sync.synced_and_equal(&source, &target, TIMEOUT);
    assert_eq!(stat(&source, "sync_full"), 1, "one copy");
    sync.stop();
}

#[test]
fn a_30_s_partition_of_the_source_link_continues_by_psync() {
    const NAME: &str = "network_faults::a_30_s_partition_of_the_source_link_continues_by_psync";
    let _guard = heavy_test_guard();
    let Some(ns) = namespace(NAME) else { return };
    let source = server_on(&ns, SOURCE);
    let target = server_on(&ns, TARGET);
    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    workload
        .wait_for_ops(500, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    // The link is given up after 10 s of silence, well inside the partition.
    let mut sync = start(&ns, &source, &target, &["--source-timeout", "10"]);
    if let Err(e) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    let partial = stat(&source, "sync_partial_ok");
    partition(&ns, SOURCE, &mut sync);
    let deadline = Instant::now() + TIMEOUT;
    while stat(&source, "sync_partial_ok") <= partial {
        if let Err(e) = sync.check_running() {
            sync.fail(&e);
        }
        if Instant::now() > deadline {
            sync.fail("no PSYNC after the partition ended");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let until = workload.ops() + 1_000;
    workload
        .wait_for_ops(until, TIMEOUT)
        .unwrap_or_else(|e| sync.fail(&e));
    workload.stop().wait_for_short_ttls();
    sync.synced_and_equal(&source, &target, TIMEOUT);
    assert_eq!(stat(&source, "sync_full"), 1, "no copy after the partition");
    let log = sync.stop();
    assert!(
        log.contains("lost the source link"),
        "the partition ended the link:\n{}",
        replicant_tests::replicant::tail(&log, 30)
    );
}

#[test]
fn a_30_s_partition_of_the_destination_link_loses_and_doubles_nothing() {
    const NAME: &str =
        "network_faults::a_30_s_partition_of_the_destination_link_loses_and_doubles_nothing";
    let _guard = heavy_test_guard();
    let Some(ns) = namespace(NAME) else { return };
    let source = server_on(&ns, SOURCE);
    let target = server_on(&ns, TARGET);
    // INCR, APPEND, RPUSH, MULTI/EXEC, …: a write applied twice or lost shows.
    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    workload
        .wait_for_ops(500, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sync = start(&ns, &source, &target, &["--target-timeout", "10"]);
    if let Err(e) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    let until = workload.ops() + 1_000;
    workload
        .wait_for_ops(until, TIMEOUT)
        .unwrap_or_else(|e| sync.fail(&e));
    partition(&ns, TARGET, &mut sync);
    let until = workload.ops() + 1_000;
    workload
        .wait_for_ops(until, TIMEOUT)
        .unwrap_or_else(|e| sync.fail(&e));
    workload.stop().wait_for_short_ttls();
    sync.synced_and_equal(&source, &target, TIMEOUT);
    let log = sync.stop();
    assert!(
        log.contains("the destination does not answer") || log.contains("lost the connection"),
        "the partition was seen:\n{}",
        replicant_tests::replicant::tail(&log, 30)
    );
}
