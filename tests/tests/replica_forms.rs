//! Commands that a master propagates in a form only a replica may run reach the destination
//! rewritten, and the run goes on: the stream's XADD/XTRIM with an approximate trim and LIMIT
//! arrive as an exact trim that still carries LIMIT, which a normal client is refused
//! ("LIMIT cannot be used without the special ~ option"). See `replay/PROPAGATION.md`.

use std::time::Duration;

use replicant_tests::barrier;
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
    sync.synced_and_equal(&source, &target, TIMEOUT);
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
/// stream in 7.2's listpack forms), with their TTLs. A FUNCTION RESTORE's payload likewise.
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
    // A FUNCTION RESTORE of the source's FUNCTION DUMP (RDB 12): stamped for 7.0 too.
    q(
        &mut con,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=rflib\nredis.register_function('rf', function() return 1 end)",
        ],
    );
    let dump: Vec<u8> = redis::cmd("FUNCTION")
        .arg("DUMP")
        .query(&mut con)
        .expect("FUNCTION DUMP");
    let _: () = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&dump)
        .arg("REPLACE")
        .query(&mut con)
        .expect("FUNCTION RESTORE");
    sync.synced_and_equal(&source, &target, TIMEOUT);
    let listed: redis::Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .query(&mut target.client())
        .expect("FUNCTION LIST");
    assert!(format!("{listed:?}").contains("rflib"), "{listed:?}");
    if let Err(err) = sync.check_running() {
        sync.fail(&err);
    }
    sync.stop();
}

/// A source that replicates scripts verbatim (Redis 6.2 with `lua-replicate-commands no`)
/// sends `EVALSHA` once the body went out after the full sync; a destination that lost its
/// script cache meanwhile (a restart, a failover, here a `SCRIPT FLUSH`) would answer
/// NOSCRIPT and the write be lost. replicant sends it as `EVAL` of the body it saw (in the
/// snapshot's `lua` aux field, an `EVAL`, or a `SCRIPT LOAD`).
#[test]
fn evalsha_of_a_script_the_destination_lost_runs_from_the_body_seen() {
    const NAME: &str = "evalsha_of_a_script_the_destination_lost_runs_from_the_body_seen";
    let Some(bin) = server::other_server("REDIS_6_2_SERVER", "redis-6.2.16", "redis-server") else {
        server::skipped(
            NAME,
            "no Redis 6.2 server (set REDIS_6_2_SERVER, or ../shared/servers/redis-6.2.16/)",
        );
        return;
    };
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        .binary(&bin)
        .config("lua-replicate-commands", "no")
        .start();
    let target = RedisServer::start();
    let mut con = source.client();
    let body =
        "redis.call('INCRBY', KEYS[1], ARGV[1]); return redis.call('RPUSH', KEYS[2], ARGV[1])";
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(body)
        .query(&mut con)
        .expect("SCRIPT LOAD");
    let mut sync = SyncProcess::start(&source.url(), &target.url());
    if let Err(err) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    let evalsha = |con: &mut redis::Connection, n: u32| {
        let _: redis::Value = redis::cmd("EVALSHA")
            .arg(&sha)
            .arg(2)
            .arg("{s}:counter")
            .arg("{s}:log")
            .arg(n)
            .query(con)
            .expect("EVALSHA");
    };
    // The first goes out as EVAL (the master's script cache for replicas starts empty).
    evalsha(&mut con, 1);
    evalsha(&mut con, 2);
    // (The key-by-key comparison needs PEXPIRETIME, which 6.2 lacks: the two keys are read.)
    let same = |sync: &mut SyncProcess| {
        if let Err(err) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
            sync.fail(&err);
        }
        let read = |con: &mut redis::Connection| -> (Option<i64>, Vec<String>) {
            let counter = redis::cmd("GET")
                .arg("{s}:counter")
                .query(con)
                .expect("GET");
            let log = redis::cmd("LRANGE")
                .arg("{s}:log")
                .arg(0)
                .arg(-1)
                .query(con)
                .expect("LRANGE");
            (counter, log)
        };
        let (want, got) = (read(&mut source.client()), read(&mut target.client()));
        if want != got {
            sync.fail(&format!("source {want:?}, destination {got:?}"));
        }
        got
    };
    same(&mut sync);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut target.client())
        .expect("SCRIPT FLUSH on the destination");
    for n in 3..=5 {
        evalsha(&mut con, n);
    }
    let (counter, log) = same(&mut sync);
    assert_eq!((counter, log.len()), (Some(15), 5));
    if let Err(err) = sync.check_running() {
        sync.fail(&err);
    }
    sync.stop();
}
