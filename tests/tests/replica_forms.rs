//! Commands that a master propagates in a form only a replica may run reach the destination
//! rewritten, and the run goes on: the stream's XADD/XTRIM with an approximate trim and LIMIT
//! arrive as an exact trim that still carries LIMIT, which a normal client is refused
//! ("LIMIT cannot be used without the special ~ option"). See `replay/PROPAGATION.md`.

use std::time::Duration;

use replicant_tests::barrier;
use replicant_tests::compare::{self, CompareOptions};
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::SyncProcess;
use replicant_tests::server::RedisServer;

const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn approximate_trims_with_limit_are_replayed_and_the_run_goes_on() {
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        // Small nodes, so that the approximate trims below really remove entries.
        .config("stream-node-max-entries", "10")
        .start();
    let target = RedisServer::start();
    let mut con = source.client();
    let _: () = redis::cmd("SET")
        .arg("before")
        .arg("1")
        .query(&mut con)
        .expect("SET");
    let mut sync = SyncProcess::start(&source.url(), &target.url());
    if let Err(err) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    for i in 0..300u32 {
        // As an application writes them: each reaches the stream as `MAXLEN = <n> LIMIT 20`.
        let _: String = redis::cmd("XADD")
            .arg("events")
            .arg("MAXLEN")
            .arg("~")
            .arg(50)
            .arg("LIMIT")
            .arg(20)
            .arg("*")
            .arg("n")
            .arg(i)
            .arg("LIMIT")
            .arg("a field named LIMIT")
            .query(&mut con)
            .expect("XADD ~ LIMIT");
        let _: String = redis::cmd("XADD")
            .arg("{events}:min")
            .arg("NOMKSTREAM")
            .arg("MINID")
            .arg("~")
            .arg(format!("{}", i.saturating_sub(40)))
            .arg("LIMIT")
            .arg(10)
            .arg(format!("{}-1", i + 1))
            .arg("n")
            .arg(i)
            .query(&mut con)
            .or_else(|_| -> redis::RedisResult<String> {
                // NOMKSTREAM on a stream not made yet: make it.
                redis::cmd("XADD")
                    .arg("{events}:min")
                    .arg(format!("{}-1", i + 1))
                    .arg("n")
                    .arg(i)
                    .query(&mut con)
            })
            .expect("XADD MINID ~ LIMIT");
    }
    let trimmed: u64 = redis::cmd("XTRIM")
        .arg("events")
        .arg("MAXLEN")
        .arg("~")
        .arg(5)
        .arg("LIMIT")
        .arg(30)
        .query(&mut con)
        .expect("XTRIM ~ LIMIT");
    assert!(
        trimmed > 0,
        "the XTRIM must trim something to be propagated"
    );
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query(&mut con)
        .expect("SET");
    if let Err(err) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    let differences =
        compare::dataset_differences_with(&source, &target, CompareOptions::live_replication());
    if !differences.is_empty() {
        sync.fail(&compare::format_differences(&differences));
    }
    let len: u64 = redis::cmd("XLEN")
        .arg("events")
        .query(&mut target.client())
        .expect("XLEN");
    let source_len: u64 = redis::cmd("XLEN")
        .arg("events")
        .query(&mut con)
        .expect("XLEN");
    assert_eq!(len, source_len);
    assert!(
        len < 300,
        "the source's trims were replayed ({len} entries)"
    );
    if let Err(err) = sync.check_running() {
        sync.fail(&err);
    }
    sync.stop();
}
