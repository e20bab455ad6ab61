//! A dataset with every type and encoding Redis 7.0 has, for the snapshot phase of a sync.
//!
//! Strings (int-encoded, embstr, raw, one of 1.5 MiB, binary, a binary key name), lists (one
//! small node and many nodes; Redis 7.0 calls both `quicklist`, 7.2+ calls a small one
//! `listpack`), sets (intset, hashtable), sorted sets (listpack, skiplist), hashes (listpack,
//! hashtable), streams with consumer groups, consumers with and without pending entries,
//! deleted and trimmed entries, keys with TTLs, and a list, set, sorted set and hash of
//! [`HUGE`] elements each; in db 0 and db 5 ([`fill`]), or in db 0 only ([`fill_db0`], for a
//! cluster destination). Keys start with `ds:` so that they never meet the workload's `wl:`
//! keys. Everything is written with pipelines, so a fill takes seconds.
//!
//! TTLs are absolute and far in the future: nothing expires during a test, and two servers
//! filled at different times hold the same expiry times.

use redis::Connection;

use crate::rng::Rng;

/// Elements in each of the huge list, set, sorted set and hash.
pub const HUGE: usize = 200_000;
/// The size of the big string (≥ 1 MiB).
pub const BIG_STRING: usize = 1_536 * 1024;
/// Elements per command when filling big keys.
const CHUNK: usize = 1_000;
/// The expiry of the dataset's keys with a TTL: 2100-01-01, absolute, so that every server
/// filled with the dataset has the same expiry times, whenever it was filled.
const EXPIRE_AT_MS: u64 = 4_102_444_800_000;

/// The binary key name in db 0.
pub const BINARY_KEY: &[u8] = b"ds:bin:\x00\xff\r\n key";

/// Keys whose encoding the dataset promises, with the encodings accepted for each (the first
/// is Redis 7.0's; later versions encode some small values differently).
pub const EXPECTED_ENCODINGS: &[(u8, &str, &[&str])] = &[
    (0, "ds:str:int", &["int"]),
    (0, "ds:str:int:neg", &["int"]),
    (0, "ds:str:embstr", &["embstr"]),
    (0, "ds:str:raw", &["raw"]),
    (0, "ds:str:big", &["raw"]),
    (0, "ds:str:binary", &["raw"]),
    (0, "ds:list:small", &["quicklist", "listpack"]),
    (0, "ds:list:quicklist", &["quicklist"]),
    (0, "ds:list:huge", &["quicklist"]),
    (0, "ds:set:intset", &["intset"]),
    (0, "ds:set:intset64", &["intset"]),
    (0, "ds:set:small", &["hashtable", "listpack"]),
    (0, "ds:set:hashtable", &["hashtable"]),
    (0, "ds:set:huge", &["hashtable"]),
    (0, "ds:zset:listpack", &["listpack"]),
    (0, "ds:zset:skiplist", &["skiplist"]),
    (0, "ds:zset:longmember", &["skiplist"]),
    (0, "ds:zset:huge", &["skiplist"]),
    (0, "ds:hash:listpack", &["listpack"]),
    (0, "ds:hash:hashtable", &["hashtable"]),
    (0, "ds:hash:longvalue", &["hashtable"]),
    (0, "ds:hash:huge", &["hashtable"]),
    (0, "ds:stream:groups", &["stream"]),
    (0, "ds:stream:big", &["stream"]),
    (0, "ds:stream:empty", &["stream"]),
    (5, "ds5:list", &["quicklist", "listpack"]),
    (5, "ds5:set", &["intset"]),
    (5, "ds5:zset", &["listpack"]),
    (5, "ds5:hash", &["listpack"]),
    (5, "ds5:stream", &["stream"]),
];

/// Fills the server behind `con` (which is left on db 0). Deterministic: two servers filled
/// this way hold the same dataset.
pub fn fill(con: &mut Connection) {
    fill_db0(con);
    select(con, 5);
    db5(con);
    select(con, 0);
}

/// Fills db 0 only, with everything [`fill`] writes there: for a source whose destination has
/// db 0 only (a cluster). Every key is a single-key write, so any slot may own it.
pub fn fill_db0(con: &mut Connection) {
    let mut rng = Rng::new(0x5eed_da7a);
    select(con, 0);
    strings(con, &mut rng);
    lists(con);
    sets(con);
    sorted_sets(con);
    hashes(con);
    streams(con);
    with_ttls(con);
}

/// Checks [`EXPECTED_ENCODINGS`]; returns one line per key that is not encoded as promised.
pub fn encoding_mismatches(con: &mut Connection) -> Vec<String> {
    let mut mismatches = Vec::new();
    for (db, key, accepted) in EXPECTED_ENCODINGS {
        select(con, *db);
        let encoding: redis::RedisResult<String> =
            redis::cmd("OBJECT").arg("ENCODING").arg(*key).query(con);
        match encoding {
            Ok(encoding) if accepted.contains(&encoding.as_str()) => {}
            Ok(encoding) => mismatches.push(format!(
                "db{db} {key}: encoding {encoding}, expected one of {accepted:?}"
            )),
            Err(err) => mismatches.push(format!("db{db} {key}: {err}")),
        }
    }
    select(con, 0);
    mismatches
}

fn strings(con: &mut Connection, rng: &mut Rng) {
    let mut big = Vec::with_capacity(BIG_STRING);
    // Half compressible, half not: LZF in the RDB gets both kinds of runs.
    while big.len() < BIG_STRING {
        big.extend_from_slice(b"compressible-run-0123456789-");
        big.extend_from_slice(&rng.bytes(28));
    }
    big.truncate(BIG_STRING);
    let binary: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg("ds:str:int").arg("123456789").ignore();
    pipe.cmd("SET")
        .arg("ds:str:int:neg")
        .arg(i64::MIN.to_string())
        .ignore();
    pipe.cmd("SET")
        .arg("ds:str:embstr")
        .arg("hello world")
        .ignore();
    pipe.cmd("SET")
        .arg("ds:str:raw")
        .arg(rng.letters(200))
        .ignore();
    pipe.cmd("SET").arg("ds:str:big").arg(big).ignore();
    pipe.cmd("SET").arg("ds:str:binary").arg(binary).ignore();
    pipe.cmd("SET").arg("ds:str:empty").arg("").ignore();
    pipe.cmd("SET").arg("ds:str:float").arg("3.14159").ignore();
    pipe.cmd("SET")
        .arg(BINARY_KEY)
        .arg("binary key name")
        .ignore();
    pipe.cmd("SET").arg("ds:shared").arg("db0 value").ignore();
    run(con, &pipe, "strings");
}

fn lists(con: &mut Connection) {
    let mut pipe = redis::pipe();
    pipe.cmd("RPUSH")
        .arg("ds:list:small")
        .arg(&["a", "b", "c", "1", "2", "-3", "", "hello world"])
        .ignore();
    let medium: Vec<String> = (0..5_000)
        .map(|i| format!("element-{i}-{}", "x".repeat(i % 30)))
        .collect();
    pipe.cmd("RPUSH")
        .arg("ds:list:quicklist")
        .arg(&medium)
        .ignore();
    pipe.cmd("RPUSH")
        .arg("ds:list:bigelem")
        .arg("head")
        .arg("L".repeat(20_000))
        .arg("tail")
        .ignore();
    run(con, &pipe, "lists");
    fill_huge(con, "ds:list:huge", "RPUSH", |i| {
        if i % 3 == 0 {
            vec![i.to_string()]
        } else {
            vec![format!("item-{i}")]
        }
    });
}

fn sets(con: &mut Connection) {
    let mut pipe = redis::pipe();
    let small_ints: Vec<i64> = (-20..100).collect();
    pipe.cmd("SADD")
        .arg("ds:set:intset")
        .arg(&small_ints)
        .ignore();
    pipe.cmd("SADD")
        .arg("ds:set:intset64")
        .arg(&[i64::MIN, -1, 0, 1 << 40, i64::MAX])
        .ignore();
    pipe.cmd("SADD")
        .arg("ds:set:small")
        .arg(&["apple", "banana", "cherry", "42", "with space"])
        .ignore();
    let members: Vec<String> = (0..300).map(|i| format!("member-{i}")).collect();
    pipe.cmd("SADD")
        .arg("ds:set:hashtable")
        .arg(&members)
        .ignore();
    run(con, &pipe, "sets");
    fill_huge(con, "ds:set:huge", "SADD", |i| vec![format!("m{i}")]);
}

fn sorted_sets(con: &mut Connection) {
    let mut pipe = redis::pipe();
    pipe.cmd("ZADD")
        .arg("ds:zset:listpack")
        .arg(&[
            "1", "a", "2.5", "b", "-1.25", "c", "+inf", "pinf", "-inf", "minf", "0", "zero",
            "1e300", "huge", "3", "3",
        ])
        .ignore();
    let mut scored = Vec::new();
    for i in 0..500 {
        scored.push(format!("{}", f64::from(i) * 1.5));
        scored.push(format!("m{i}"));
    }
    pipe.cmd("ZADD")
        .arg("ds:zset:skiplist")
        .arg(&scored)
        .ignore();
    pipe.cmd("ZADD")
        .arg("ds:zset:longmember")
        .arg(1)
        .arg("short")
        .arg(2)
        .arg("z".repeat(100))
        .ignore();
    run(con, &pipe, "sorted sets");
    fill_huge(con, "ds:zset:huge", "ZADD", |i| {
        vec![format!("{}.{}", i / 7, i % 7), format!("z{i}")]
    });
}

fn hashes(con: &mut Connection) {
    let mut pipe = redis::pipe();
    let small: Vec<String> = (0..10)
        .flat_map(|i| [format!("f{i}"), format!("v{i}")])
        .collect();
    pipe.cmd("HSET")
        .arg("ds:hash:listpack")
        .arg(&small)
        .ignore();
    let big: Vec<String> = (0..1_000)
        .flat_map(|i| [format!("field:{i}"), format!("value:{i}")])
        .collect();
    pipe.cmd("HSET").arg("ds:hash:hashtable").arg(&big).ignore();
    pipe.cmd("HSET")
        .arg("ds:hash:longvalue")
        .arg("a")
        .arg("1")
        .arg("long")
        .arg("v".repeat(100))
        .ignore();
    run(con, &pipe, "hashes");
    fill_huge(con, "ds:hash:huge", "HSET", |i| {
        vec![format!("f{i}"), format!("{}", i * 7)]
    });
}

fn streams(con: &mut Connection) {
    let key = "ds:stream:groups";
    let mut pipe = redis::pipe();
    for i in 1..=10 {
        pipe.cmd("XADD")
            .arg(key)
            .arg(format!("1700000000000-{i}"))
            .arg("n")
            .arg(i)
            .arg("name")
            .arg(format!("user{i}"))
            .ignore();
    }
    pipe.cmd("XDEL").arg(key).arg("1700000000000-2").ignore();
    pipe.cmd("XGROUP").arg(&["CREATE", key, "g1", "0"]).ignore();
    pipe.cmd("XGROUP").arg(&["CREATE", key, "g2", "$"]).ignore();
    pipe.cmd("XGROUP").arg(&["CREATE", key, "g3", "0"]).ignore();
    pipe.cmd("XREADGROUP")
        .arg(&["GROUP", "g1", "alice", "COUNT", "3", "STREAMS", key, ">"])
        .ignore();
    pipe.cmd("XREADGROUP")
        .arg(&["GROUP", "g1", "bob", "COUNT", "2", "STREAMS", key, ">"])
        .ignore();
    pipe.cmd("XACK")
        .arg(&[key, "g1", "1700000000000-1"])
        .ignore();
    pipe.cmd("XCLAIM")
        .arg(&[key, "g1", "carol", "0", "1700000000000-3"])
        .ignore();
    pipe.cmd("XGROUP")
        .arg(&["CREATECONSUMER", key, "g2", "dave"])
        .ignore();
    pipe.cmd("XREADGROUP")
        .arg(&["GROUP", "g3", "erin", "STREAMS", key, ">"])
        .ignore();

    // Many listpack nodes (100 entries each by default), a group with 500 pending entries.
    for i in 1..=3_000 {
        pipe.cmd("XADD")
            .arg("ds:stream:big")
            .arg(format!("1700000001000-{i}"))
            .arg("i")
            .arg(i)
            .arg("payload")
            .arg("p".repeat(i % 40))
            .ignore();
    }
    pipe.cmd("XGROUP")
        .arg(&["CREATE", "ds:stream:big", "readers", "0"])
        .ignore();
    pipe.cmd("XREADGROUP")
        .arg(&[
            "GROUP",
            "readers",
            "r1",
            "COUNT",
            "500",
            "STREAMS",
            "ds:stream:big",
            ">",
        ])
        .ignore();

    pipe.cmd("XGROUP")
        .arg(&["CREATE", "ds:stream:empty", "g0", "$", "MKSTREAM"])
        .ignore();
    for i in 1..=8 {
        pipe.cmd("XADD")
            .arg(&["ds:stream:trimmed", "MAXLEN", "3"])
            .arg(format!("1700000002000-{i}"))
            .arg("k")
            .arg(i)
            .ignore();
    }
    for i in 1..=3 {
        pipe.cmd("XADD")
            .arg("ds:stream:alldeleted")
            .arg(format!("1700000003000-{i}"))
            .arg("k")
            .arg(i)
            .ignore();
    }
    pipe.cmd("XDEL")
        .arg(&[
            "ds:stream:alldeleted",
            "1700000003000-1",
            "1700000003000-2",
            "1700000003000-3",
        ])
        .ignore();
    run(con, &pipe, "streams");
}

fn with_ttls(con: &mut Connection) {
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg("ds:ttl:str")
        .arg("v")
        .arg("PXAT")
        .arg(EXPIRE_AT_MS)
        .ignore();
    pipe.cmd("SET").arg("ds:ttl:int").arg(42).ignore();
    pipe.cmd("PEXPIREAT")
        .arg("ds:ttl:int")
        .arg(EXPIRE_AT_MS + 1234)
        .ignore();
    pipe.cmd("RPUSH")
        .arg("ds:ttl:list")
        .arg(&["a", "b"])
        .ignore();
    pipe.cmd("SADD").arg("ds:ttl:set").arg(&["x", "y"]).ignore();
    pipe.cmd("ZADD")
        .arg("ds:ttl:zset")
        .arg(&["1", "a"])
        .ignore();
    pipe.cmd("HSET")
        .arg("ds:ttl:hash")
        .arg(&["f", "v"])
        .ignore();
    pipe.cmd("XADD")
        .arg(&["ds:ttl:stream", "1700000004000-1", "f", "v"])
        .ignore();
    for (i, key) in [
        "ds:ttl:list",
        "ds:ttl:set",
        "ds:ttl:zset",
        "ds:ttl:hash",
        "ds:ttl:stream",
    ]
    .into_iter()
    .enumerate()
    {
        pipe.cmd("EXPIREAT")
            .arg(key)
            .arg(EXPIRE_AT_MS / 1000 + 60 * i as u64)
            .ignore();
    }
    run(con, &pipe, "keys with TTLs");
}

fn db5(con: &mut Connection) {
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg("ds:shared").arg("db5 value").ignore();
    pipe.cmd("SET").arg("ds5:str").arg("in db five").ignore();
    pipe.cmd("SET").arg("ds5:int").arg(5).ignore();
    pipe.cmd("RPUSH")
        .arg("ds5:list")
        .arg(&["p", "q", "r"])
        .ignore();
    pipe.cmd("SADD").arg("ds5:set").arg(&[5, 50, 500]).ignore();
    pipe.cmd("ZADD")
        .arg("ds5:zset")
        .arg(&["1", "one", "2", "two"])
        .ignore();
    pipe.cmd("HSET")
        .arg("ds5:hash")
        .arg(&["a", "1", "b", "2"])
        .ignore();
    pipe.cmd("XADD")
        .arg(&["ds5:stream", "1700000005000-1", "f", "v"])
        .ignore();
    pipe.cmd("XGROUP")
        .arg(&["CREATE", "ds5:stream", "g", "0"])
        .ignore();
    pipe.cmd("XREADGROUP")
        .arg(&["GROUP", "g", "c", "STREAMS", "ds5:stream", ">"])
        .ignore();
    pipe.cmd("SET").arg("ds5:ttl").arg("v").ignore();
    pipe.cmd("PEXPIREAT")
        .arg("ds5:ttl")
        .arg(EXPIRE_AT_MS + 5)
        .ignore();
    run(con, &pipe, "db 5");
}

/// `HUGE` elements in commands of `CHUNK` elements each, one pipeline; `element(i)` gives the
/// arguments for element `i` (a score and a member for ZADD, a field and a value for HSET).
fn fill_huge(
    con: &mut Connection,
    key: &str,
    command: &str,
    element: impl Fn(usize) -> Vec<String>,
) {
    let mut pipe = redis::pipe();
    for start in (0..HUGE).step_by(CHUNK) {
        let args: Vec<String> = (start..(start + CHUNK).min(HUGE))
            .flat_map(&element)
            .collect();
        pipe.cmd(command).arg(key).arg(args).ignore();
    }
    run(con, &pipe, key);
}

fn run(con: &mut Connection, pipe: &redis::Pipeline, what: &str) {
    pipe.query::<()>(con)
        .unwrap_or_else(|err| panic!("filling the dataset ({what}) failed: {err}"));
}

fn select(con: &mut Connection, db: u8) {
    redis::cmd("SELECT")
        .arg(db)
        .query::<()>(con)
        .unwrap_or_else(|err| panic!("SELECT {db} failed: {err}"));
}
