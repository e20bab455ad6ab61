//! Writes whose keys span slots of a cluster destination, which no split keeps faithful
//! (RENAME, COPY, SMOVE, LMOVE, the *STORE commands, PFMERGE, BITOP, SORT … STORE with BY/GET
//! patterns, and such writes inside a MULTI/EXEC), reach the destination from their effect:
//! after the run the cluster holds what the source holds, key by key with TTLs, and nothing
//! was counted as unsplittable.

use std::time::Duration;

use replicant_tests::barrier;
use replicant_tests::cluster::{key_slot, RedisCluster};
use replicant_tests::compare::{self, CompareOptions};
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::{self, SyncProcess};
use replicant_tests::server::RedisServer;

const TIMEOUT: Duration = Duration::from_secs(120);

fn q(con: &mut redis::Connection, line: &str) -> redis::Value {
    let args: Vec<&str> = line.split(' ').collect();
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn writes_across_slots_reach_a_cluster_as_on_the_source() {
    let _guard = heavy_test_guard();
    let source = RedisServer::start();
    let cluster = RedisCluster::start();
    let mut con = source.client();
    // In the snapshot: inputs of the writes below.
    for line in [
        "SET r1 renamed EX 1000",
        "RPUSH l1 a b c d e",
        "SADD s1 a b c",
        "SADD s2 c d",
        "ZADD z1 1 a 2 b",
        "ZADD z2 3 b 4 c",
        "SET c1 copied PX 900000",
        "SET c3 old",
    ] {
        q(&mut con, line);
    }
    let mut sync = SyncProcess::start(&source.url(), &cluster.url());
    if let Err(err) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    // A BLMOVE waiting on another client, served by a push below.
    let blocked_url = source.url();
    let blocked = std::thread::spawn(move || {
        let mut c = redis::Client::open(blocked_url)
            .and_then(|c| c.get_connection())
            .expect("connect");
        let v: Option<String> = redis::cmd("BLMOVE")
            .arg("bl1")
            .arg("bl2")
            .arg("LEFT")
            .arg("RIGHT")
            .arg(30)
            .query(&mut c)
            .expect("BLMOVE");
        v
    });
    let lines = [
        "RENAME r1 r2",
        "SET n1 v",
        "RENAMENX n1 n3",
        "LMOVE l1 l2 LEFT RIGHT",
        "RPOPLPUSH l1 l3",
        "COPY c1 c2",
        "COPY c1 c3 REPLACE",
        "SMOVE s1 s2 a",
        "SUNIONSTORE su s1 s2",
        "SINTERSTORE si s1 s2",
        "SDIFFSTORE sd s1 s2",
        "ZUNIONSTORE zu 2 z1 z2 WEIGHTS 1 2",
        "ZINTERSTORE zi 2 z1 z2",
        "ZDIFFSTORE zd 2 z1 z2",
        "ZRANGESTORE zr z1 0 -1",
        "PFADD h1 a b",
        "PFADD h2 c",
        "PFMERGE hm h1 h2",
        "SET b1 abc",
        "SET b2 xyz",
        "BITOP OR bo b1 b2",
        "GEOADD g1 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
        "GEOSEARCHSTORE gs g1 FROMLONLAT 15 37 BYRADIUS 200 km",
        "GEORADIUS g1 15 37 200 km STORE gr",
        "RPUSH sl 3 1 2",
        "MSET w_1 30 w_2 10 w_3 20 o_1 one o_2 two o_3 three",
        "HSET hw_1 f 3",
        "HSET hw_2 f 1",
        "HSET hw_3 f 2",
        "SORT sl BY w_* GET # GET o_* STORE so",
        "SORT sl BY hw_*->f GET o_* STORE so2",
        "RPUSH bl1 served",
    ];
    for line in lines {
        q(&mut con, line);
    }
    let served = blocked.join().expect("BLMOVE thread");
    assert_eq!(served.as_deref(), Some("served"));
    // A transaction across slots, with such a write inside.
    let _: redis::Value = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("m1")
        .cmd("RENAME")
        .arg("r2")
        .arg("m2")
        .cmd("SMOVE")
        .arg("s2")
        .arg("m3")
        .arg("d")
        .cmd("SET")
        .arg("m4")
        .arg("x")
        .query(&mut con)
        .expect("MULTI/EXEC");
    q(&mut con, "SET last 1");
    for (a, b) in [
        ("r1", "r2"),
        ("c1", "c2"),
        ("s1", "su"),
        ("z1", "zu"),
        ("sl", "so"),
        ("r2", "m2"),
    ] {
        assert_ne!(
            key_slot(a.as_bytes()),
            key_slot(b.as_bytes()),
            "{a} and {b} share a slot"
        );
    }
    if let Err(err) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    let differences =
        compare::dataset_differences_with(&source, &cluster, CompareOptions::live_replication());
    if !differences.is_empty() {
        sync.fail(&compare::format_differences(&differences));
    }
    // The scratch keys are gone.
    for master in cluster.masters() {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("replicant:fx:*")
            .query(&mut master.client())
            .expect("KEYS");
        assert!(keys.is_empty(), "scratch keys left: {keys:?}");
    }
    let log = sync.stop();
    let stopped = replicant::log_line(&log, "sync stopped")
        .unwrap_or_else(|| panic!("no `sync stopped` line\n{}", replicant::tail(&log, 40)));
    let count = |name: &str| {
        replicant::log_count(stopped, name)
            .unwrap_or_else(|| panic!("no number {name}=… in {stopped:?}"))
    };
    assert_eq!(count("unsplittable"), 0, "{stopped}");
    assert!(count("cross_slot") >= 20, "{stopped}");
    assert_eq!(count("key_errors"), 0, "{stopped}");
}
