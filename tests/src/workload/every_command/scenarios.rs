//! The lines that issue each write command (see the parent module).

/// Each write command and the lines that issue it (the last line naming it is the one that
/// counts; a line starting with `!` blocks on another connection until the line after `|`
/// serves it).
pub const SCENARIOS: &[(&str, &[&str])] = &[
    ("append", &["SET {a} x", "APPEND {a} yz"]),
    (
        "bitfield",
        &["BITFIELD {a} SET u8 0 200 INCRBY u8 0 100 OVERFLOW SAT INCRBY u4 8 20"],
    ),
    (
        "bitop",
        &["SET {a} abc", "SET {b} xyz", "BITOP XOR {c} {a} {b}"],
    ),
    (
        "blmove",
        &[
            "RPUSH {a} x y",
            "BLMOVE {a} {b} LEFT RIGHT 1",
            "!BLMOVE {c} {b} RIGHT LEFT 10|RPUSH {c} z",
        ],
    ),
    (
        "blmpop",
        &[
            "RPUSH {a} 1 2 3",
            "BLMPOP 1 2 {b} {a} LEFT COUNT 2",
            "!BLMPOP 10 1 {c} RIGHT|RPUSH {c} q",
        ],
    ),
    (
        "blpop",
        &[
            "RPUSH {a} 1 2",
            "BLPOP {b} {a} 1",
            "!BLPOP {c} 10|RPUSH {c} v",
        ],
    ),
    (
        "brpop",
        &[
            "RPUSH {a} 1 2",
            "BRPOP {b} {a} 1",
            "!BRPOP {c} 10|RPUSH {c} v",
        ],
    ),
    (
        "brpoplpush",
        &[
            "RPUSH {a} 1 2",
            "BRPOPLPUSH {a} {b} 1",
            "!BRPOPLPUSH {c} {b} 10|LPUSH {c} v",
        ],
    ),
    (
        "bzmpop",
        &[
            "ZADD {a} 1 x 2 y",
            "BZMPOP 1 1 {a} MIN COUNT 1",
            "!BZMPOP 10 1 {c} MAX|ZADD {c} 3 z",
        ],
    ),
    (
        "bzpopmax",
        &[
            "ZADD {a} 1 x 2 y",
            "BZPOPMAX {b} {a} 1",
            "!BZPOPMAX {c} 10|ZADD {c} 3 z",
        ],
    ),
    (
        "bzpopmin",
        &[
            "ZADD {a} 1 x 2 y",
            "BZPOPMIN {b} {a} 1",
            "!BZPOPMIN {c} 10|ZADD {c} 3 z",
        ],
    ),
    (
        "copy",
        &[
            "SET {a} v EX 3600",
            "COPY {a} {b}",
            "SET {c} old",
            "COPY {a} {c} REPLACE",
        ],
    ),
    ("decr", &["SET {a} 10", "DECR {a}"]),
    ("decrby", &["SET {a} 10", "DECRBY {a} 3"]),
    ("del", &["SET {a} 1", "SET {b} 2", "DEL {a} {b} {c}"]),
    (
        "expire",
        &[
            "SET {a} v",
            "EXPIRE {a} 3000",
            "EXPIRE {a} 3600 GT",
            "EXPIRE {a} 3500 LT",
            "SET {b} v",
            "EXPIRE {b} 3000 NX",
            "EXPIRE {b} 3600 XX",
        ],
    ),
    (
        "expireat",
        &[
            "SET {a} v",
            "EXPIREAT {a} {t}",
            "SET {b} v",
            "EXPIREAT {b} 1",
        ],
    ),
    ("flushall", &[]),
    ("flushdb", &[]),
    ("function|delete", &[]),
    ("function|flush", &[]),
    ("function|load", &[]),
    ("function|restore", &[]),
    (
        "geoadd",
        &[
            "GEOADD {a} 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
            "GEOADD {a} XX CH 13.4 38.1 Palermo",
        ],
    ),
    (
        "georadius",
        &[
            "GEOADD {a} 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
            "GEORADIUS {a} 15 37 200 km STORE {b}",
            "GEORADIUS {a} 15 37 200 km STOREDIST {c}",
        ],
    ),
    (
        "georadiusbymember",
        &[
            "GEOADD {a} 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
            "GEORADIUSBYMEMBER {a} Palermo 200 km STORE {b}",
        ],
    ),
    (
        "geosearchstore",
        &[
            "GEOADD {a} 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
            "GEOSEARCHSTORE {b} {a} FROMLONLAT 15 37 BYRADIUS 200 km",
            "GEOSEARCHSTORE {c} {a} FROMMEMBER Palermo BYBOX 400 400 km ASC COUNT 1 STOREDIST",
        ],
    ),
    ("getdel", &["SET {a} v", "GETDEL {a}"]),
    (
        "getex",
        &[
            "SET {a} v",
            "GETEX {a} EX 3600",
            "SET {b} v EX 100",
            "GETEX {b} PERSIST",
            "SET {c} v",
            "GETEX {c} PXAT {tms}",
        ],
    ),
    ("getset", &["SET {a} v EX 100", "GETSET {a} w"]),
    ("hdel", &["HSET {a} f 1 g 2", "HDEL {a} f"]),
    ("hincrby", &["HINCRBY {a} f 5"]),
    ("hincrbyfloat", &["HINCRBYFLOAT {a} f 1.25"]),
    ("hmset", &["HMSET {a} f 1 g 2"]),
    ("hset", &["HSET {a} f 1 g 2"]),
    ("hsetnx", &["HSETNX {a} f 1", "HSETNX {a} f 2"]),
    ("incr", &["INCR {a}"]),
    ("incrby", &["INCRBY {a} 7"]),
    (
        "incrbyfloat",
        &[
            "INCRBYFLOAT {a} 2.5",
            "SET {b} 3.0e3",
            "INCRBYFLOAT {b} 0.1",
        ],
    ),
    ("linsert", &["RPUSH {a} a c", "LINSERT {a} BEFORE c b"]),
    (
        "lmove",
        &[
            "RPUSH {a} 1 2 3",
            "LMOVE {a} {b} LEFT RIGHT",
            "LMOVE {a} {a} LEFT RIGHT",
        ],
    ),
    (
        "lmpop",
        &["RPUSH {a} 1 2 3", "LMPOP 2 {b} {a} RIGHT COUNT 2"],
    ),
    ("lpop", &["RPUSH {a} 1 2 3 4", "LPOP {a}", "LPOP {a} 2"]),
    ("lpush", &["LPUSH {a} 1 2"]),
    ("lpushx", &["LPUSH {a} 1", "LPUSHX {a} 2"]),
    ("lrem", &["RPUSH {a} x y x", "LREM {a} 0 x"]),
    ("lset", &["RPUSH {a} x y", "LSET {a} 0 z"]),
    ("ltrim", &["RPUSH {a} 1 2 3 4", "LTRIM {a} 1 2"]),
    ("migrate", &[]),
    ("move", &[]),
    ("mset", &["MSET {a} 1 {b} 2 {c} 3"]),
    ("msetnx", &["MSETNX {a} 1 {b} 2"]),
    ("persist", &["SET {a} v EX 100", "PERSIST {a}"]),
    ("pexpire", &["SET {a} v", "PEXPIRE {a} 3600000"]),
    ("pexpireat", &["SET {a} v", "PEXPIREAT {a} {tms}"]),
    ("pfadd", &["PFADD {a} x y z"]),
    ("pfdebug", &["PFADD {a} x y z", "PFDEBUG TODENSE {a}"]),
    (
        "pfmerge",
        &["PFADD {a} x y", "PFADD {b} z", "PFMERGE {c} {a} {b}"],
    ),
    ("psetex", &["PSETEX {a} 3600000 v"]),
    ("rename", &["SET {a} v EX 3600", "RENAME {a} {b}"]),
    ("renamenx", &["SET {a} v", "RENAMENX {a} {b}"]),
    ("restore", &[]),
    ("restore-asking", &[]),
    ("rpop", &["RPUSH {a} 1 2 3", "RPOP {a}", "RPOP {a} 5"]),
    ("rpoplpush", &["RPUSH {a} 1 2", "RPOPLPUSH {a} {b}"]),
    ("rpush", &["RPUSH {a} 1 2"]),
    ("rpushx", &["RPUSH {a} 1", "RPUSHX {a} 2"]),
    ("sadd", &["SADD {a} x y"]),
    (
        "sdiffstore",
        &["SADD {a} x y z", "SADD {b} y", "SDIFFSTORE {c} {a} {b}"],
    ),
    (
        "set",
        &[
            "SET {a} v EX 3600",
            "SET {a} w KEEPTTL",
            "SET {a} x XX GET",
            "SET {b} v NX PX 3600000",
            "SET {c} v EXAT {t}",
            "SET {c} w PXAT {tms} GET",
        ],
    ),
    ("setbit", &["SETBIT {a} 100 1"]),
    ("setex", &["SETEX {a} 3600 v"]),
    ("setnx", &["SETNX {a} v", "SETNX {a} w"]),
    ("setrange", &["SET {a} hello", "SETRANGE {a} 3 p!"]),
    (
        "sinterstore",
        &["SADD {a} x y", "SADD {b} y z", "SINTERSTORE {c} {a} {b}"],
    ),
    ("smove", &["SADD {a} x y", "SMOVE {a} {b} x"]),
    (
        "sort",
        &[
            "RPUSH {a} 3 1 2",
            "MSET ec:w_1 30 ec:w_2 10 ec:w_3 20 ec:o_1 one ec:o_2 two",
            "SORT {a} STORE {b}",
            "SORT {a} BY ec:w_* GET # GET ec:o_* DESC STORE {c}",
        ],
    ),
    (
        "spop",
        &[
            "SADD {a} 1 2 3 4 5",
            "SPOP {a}",
            "SPOP {a} 2",
            "SADD {b} x",
            "SPOP {b} 5",
        ],
    ),
    ("srem", &["SADD {a} x y", "SREM {a} x"]),
    (
        "sunionstore",
        &["SADD {a} x", "SADD {b} y", "SUNIONSTORE {c} {a} {b}"],
    ),
    ("swapdb", &[]),
    ("unlink", &["SET {a} 1", "SET {b} 2", "UNLINK {a} {b}"]),
    (
        "xack",
        &[
            "XADD {a} 1-1 f v",
            "XGROUP CREATE {a} g 0",
            "XREADGROUP GROUP g c COUNT 1 STREAMS {a} >",
            "XACK {a} g 1-1",
        ],
    ),
    (
        "xadd",
        &[
            "XADD {a} MAXLEN ~ 5 LIMIT 10 * f v",
            "XADD {a} MAXLEN = 3 * f v",
            "XADD {a} MINID ~ 0 * f v",
            "XADD {b} NOMKSTREAM * f v",
            "XADD {c} 5-1 f v",
        ],
    ),
    (
        "xautoclaim",
        &[
            "XADD {a} 1-1 f v",
            "XGROUP CREATE {a} g 0",
            "XREADGROUP GROUP g c1 STREAMS {a} >",
            "XAUTOCLAIM {a} g c2 0 0-0 COUNT 10",
        ],
    ),
    (
        "xclaim",
        &[
            "XADD {a} 1-1 f v",
            "XGROUP CREATE {a} g 0",
            "XREADGROUP GROUP g c1 STREAMS {a} >",
            "XCLAIM {a} g c2 0 1-1 RETRYCOUNT 3 FORCE",
        ],
    ),
    (
        "xdel",
        &["XADD {a} 1-1 f v", "XADD {a} 2-1 g w", "XDEL {a} 1-1"],
    ),
    ("xgroup|create", &["XGROUP CREATE {a} g $ MKSTREAM"]),
    (
        "xgroup|createconsumer",
        &[
            "XGROUP CREATE {a} g $ MKSTREAM",
            "XGROUP CREATECONSUMER {a} g c",
        ],
    ),
    (
        "xgroup|delconsumer",
        &[
            "XGROUP CREATE {a} g $ MKSTREAM",
            "XGROUP CREATECONSUMER {a} g c",
            "XGROUP DELCONSUMER {a} g c",
        ],
    ),
    (
        "xgroup|destroy",
        &[
            "XGROUP CREATE {a} g $ MKSTREAM",
            "XGROUP CREATE {a} h $",
            "XGROUP DESTROY {a} g",
        ],
    ),
    (
        "xgroup|setid",
        &[
            "XADD {a} 1-1 f v",
            "XGROUP CREATE {a} g 0",
            "XGROUP SETID {a} g $",
        ],
    ),
    (
        "xreadgroup",
        &[
            "XADD {a} 1-1 f v",
            "XGROUP CREATE {a} g 0",
            "XREADGROUP GROUP g c COUNT 5 STREAMS {a} >",
            "XADD {b} 1-1 f v",
            "XGROUP CREATE {b} g 0",
            "XREADGROUP GROUP g c NOACK STREAMS {b} >",
        ],
    ),
    ("xsetid", &["XADD {a} 1-1 f v", "XSETID {a} 5-0"]),
    (
        "xtrim",
        &[
            "XADD {a} 1-1 f v",
            "XADD {a} 2-1 f v",
            "XADD {a} 3-1 f v",
            "XTRIM {a} MAXLEN = 1",
            "XTRIM {a} MINID ~ 0 LIMIT 10",
        ],
    ),
    (
        "zadd",
        &[
            "ZADD {a} 1 x 2 y",
            "ZADD {a} XX GT CH 3 x",
            "ZADD {a} NX 5 z",
            "ZADD {a} LT INCR -1 y",
        ],
    ),
    (
        "zdiffstore",
        &[
            "ZADD {a} 1 x 2 y",
            "ZADD {b} 1 y",
            "ZDIFFSTORE {c} 2 {a} {b}",
        ],
    ),
    ("zincrby", &["ZINCRBY {a} 2.5 x"]),
    (
        "zinterstore",
        &[
            "ZADD {a} 1 x 2 y",
            "ZADD {b} 3 y",
            "ZINTERSTORE {c} 2 {a} {b} WEIGHTS 2 3 AGGREGATE MAX",
        ],
    ),
    (
        "zmpop",
        &["ZADD {a} 1 x 2 y 3 z", "ZMPOP 2 {b} {a} MAX COUNT 2"],
    ),
    ("zpopmax", &["ZADD {a} 1 x 2 y", "ZPOPMAX {a}"]),
    ("zpopmin", &["ZADD {a} 1 x 2 y 3 z", "ZPOPMIN {a} 2"]),
    (
        "zrangestore",
        &[
            "ZADD {a} 1 x 2 y",
            "ZRANGESTORE {b} {a} 0 -1",
            "ZRANGESTORE {c} {a} (1 +inf BYSCORE",
        ],
    ),
    ("zrem", &["ZADD {a} 1 x 2 y", "ZREM {a} x"]),
    (
        "zremrangebylex",
        &["ZADD {a} 0 a 0 b 0 c", "ZREMRANGEBYLEX {a} [a [b"],
    ),
    (
        "zremrangebyrank",
        &["ZADD {a} 1 x 2 y 3 z", "ZREMRANGEBYRANK {a} 0 1"],
    ),
    (
        "zremrangebyscore",
        &["ZADD {a} 1 x 2 y 3 z", "ZREMRANGEBYSCORE {a} 1 2"],
    ),
    (
        "zunionstore",
        &["ZADD {a} 1 x", "ZADD {b} 2 y", "ZUNIONSTORE {c} 2 {a} {b}"],
    ),
    // Redis 7.4: field TTLs.
    (
        "hexpire",
        &["HSET {a} f 1 g 2", "HEXPIRE {a} 3600 FIELDS 1 f"],
    ),
    (
        "hexpireat",
        &["HSET {a} f 1", "HEXPIREAT {a} {t} FIELDS 1 f"],
    ),
    (
        "hpexpire",
        &["HSET {a} f 1", "HPEXPIRE {a} 3600000 NX FIELDS 1 f"],
    ),
    (
        "hpexpireat",
        &["HSET {a} f 1", "HPEXPIREAT {a} {tms} FIELDS 1 f"],
    ),
    (
        "hpersist",
        &[
            "HSET {a} f 1",
            "HEXPIRE {a} 3600 FIELDS 1 f",
            "HPERSIST {a} FIELDS 1 f",
        ],
    ),
    // Not flagged as writes, but carrying them.
    (
        "eval",
        &["EVAL redis.call('SET',KEYS[1],ARGV[1]);return(redis.call('INCR',KEYS[2])) 2 {a} {b} v"],
    ),
    ("publish", &["PUBLISH ec:channel hello"]),
];
