//! Commands that a master propagates in a form only a replica may run reach the destination
//! rewritten, and the run goes on: the stream's XADD/XTRIM with an approximate trim and LIMIT
//! arrive as an exact trim that still carries LIMIT, which a normal client is refused
//! ("LIMIT cannot be used without the special ~ option"). See `replay/PROPAGATION.md`.

use std::time::Duration;

use replicant_tests::barrier;
use replicant_tests::compare::{self, CompareOptions};
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::SyncProcess;
use replicant_tests::server::{self, RedisServer};

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
    synced_and_equal(&source, &target, &mut sync);
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

/// A source newer than the destination (Redis 7.4, RDB 12, into the OS's 7.0, RDB 10) carries
/// RESTOREs whose payload the destination refuses ("DUMP payload version or checksum are
/// wrong"): they reach it stamped with its version when it knows the type (strings, lists,
/// hashes and sorted sets in listpacks), or decoded and rewritten when it does not (a set or a
/// stream in 7.2's listpack forms), with their TTLs.
#[test]
fn restores_of_a_newer_rdb_version_in_the_stream_are_planned_again() {
    const NAME: &str = "restores_of_a_newer_rdb_version_in_the_stream_are_planned_again";
    let Some(bin) = server::other_server("REDIS_7_4_SERVER", "redis-7.4.1", "redis-server") else {
        server::skipped(
            NAME,
            "no Redis 7.4 server (set REDIS_7_4_SERVER, or ../shared/servers/redis-7.4.1/)",
        );
        return;
    };
    let _guard = heavy_test_guard();
    let source = RedisServer::builder().binary(&bin).start();
    let target = RedisServer::start();
    let mut con = source.client();
    let mut sync = SyncProcess::start(&source.url(), &target.url());
    if let Err(err) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    let q = |con: &mut redis::Connection, args: &[&str]| -> redis::Value {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    q(&mut con, &["SET", "s", "a string value"]);
    q(&mut con, &["RPUSH", "l", "a", "b", "c"]);
    q(&mut con, &["HSET", "h", "f1", "v1", "f2", "v2"]);
    q(&mut con, &["ZADD", "z", "1", "m1", "2.5", "m2"]);
    q(&mut con, &["SADD", "set", "x", "y", "z"]);
    q(&mut con, &["XADD", "x", "1-1", "f", "v"]);
    q(&mut con, &["XGROUP", "CREATE", "x", "g", "0"]);
    for key in ["s", "l", "h", "z", "set", "x"] {
        let payload: Vec<u8> = redis::cmd("DUMP").arg(key).query(&mut con).expect("DUMP");
        let _: () = redis::cmd("RESTORE")
            .arg(format!("{key}:copy"))
            .arg(0)
            .arg(&payload)
            .query(&mut con)
            .expect("RESTORE");
        let _: () = redis::cmd("RESTORE")
            .arg(format!("{key}:ttl"))
            .arg(3_600_000)
            .arg(&payload)
            .query(&mut con)
            .expect("RESTORE with a TTL");
        // Over an existing key.
        let _: () = redis::cmd("RESTORE")
            .arg("s")
            .arg(0)
            .arg(&payload)
            .arg("REPLACE")
            .query(&mut con)
            .expect("RESTORE REPLACE");
    }
    synced_and_equal(&source, &target, &mut sync);
    sync.stop();
}

/// The sync barrier, then the destination must equal the source (else the run's log says why).
fn synced_and_equal(source: &RedisServer, target: &RedisServer, sync: &mut SyncProcess) {
    if let Err(err) = barrier::wait_for_sync(source, TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    let differences =
        compare::dataset_differences_with(source, target, CompareOptions::live_replication());
    if !differences.is_empty() {
        sync.fail(&compare::format_differences(&differences));
    }
}
