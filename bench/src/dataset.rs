//! Generated datasets for the benchmarks, written with large pipelines. Sizes are "realistic":
//! mostly strings of a few hundred bytes to a few KiB, hashes, lists, sets and sorted sets of
//! tens to hundreds of elements, and a few big keys. Deterministic: the same size gives the same
//! data.

use redis::Connection;

/// Commands per pipeline round trip.
const PIPE: usize = 2000;

/// A tiny deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn value(rng: &mut Rng, len: usize) -> Vec<u8> {
    let seed = rng.next();
    (0..len)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[((seed >> (i % 32)) as usize + i) % 36])
        .collect()
}

fn used_memory_dataset(c: &mut Connection) -> redis::RedisResult<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query(c)?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory_dataset:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

/// Fills until the server's `used_memory_dataset` reaches `target_bytes`; a few big keys
/// (a list, a hash and a sorted set of `big_elements` each) come first. Returns the key count.
pub fn fill_mixed(
    c: &mut Connection,
    target_bytes: u64,
    big_elements: u64,
) -> redis::RedisResult<u64> {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut keys = 0u64;
    if big_elements > 0 {
        fill_big(c, "big", big_elements)?;
        keys += 3;
    }
    let mut n = 0u64;
    loop {
        let mut p = redis::pipe();
        p.ignore();
        for _ in 0..PIPE {
            n += 1;
            for cmd in mixed(&mut rng, n).1 {
                p.add_command(cmd);
            }
            keys += 1;
        }
        p.query::<()>(c)?;
        if used_memory_dataset(c)? >= target_bytes {
            return Ok(keys);
        }
    }
}

/// The `n`th key of the mixed dataset: its name and the commands that write it.
fn mixed(rng: &mut Rng, n: u64) -> (String, Vec<redis::Cmd>) {
    match rng.range(0, 99) {
        0..=59 => {
            let key = format!("str:{n}");
            let len = rng.range(100, 4000) as usize;
            let mut cmds = vec![redis::cmd("SET").arg(&key).arg(value(rng, len)).clone()];
            if n.is_multiple_of(5) {
                cmds.push(redis::cmd("PEXPIRE").arg(&key).arg(86_400_000).clone());
            }
            (key, cmds)
        }
        60..=74 => {
            let key = format!("hash:{n}");
            let mut cmd = redis::cmd("HSET");
            cmd.arg(&key);
            for f in 0..rng.range(10, 100) {
                let len = rng.range(20, 200) as usize;
                cmd.arg(format!("field:{f}")).arg(value(rng, len));
            }
            (key, vec![cmd])
        }
        75..=84 => {
            let key = format!("list:{n}");
            let mut cmd = redis::cmd("RPUSH");
            cmd.arg(&key);
            for _ in 0..rng.range(10, 500) {
                let len = rng.range(10, 100) as usize;
                cmd.arg(value(rng, len));
            }
            (key, vec![cmd])
        }
        85..=94 => {
            let key = format!("set:{n}");
            let mut cmd = redis::cmd("SADD");
            cmd.arg(&key);
            for i in 0..rng.range(10, 300) {
                cmd.arg(format!("member:{i}:{}", rng.next() % 100_000));
            }
            (key, vec![cmd])
        }
        _ => {
            let key = format!("zset:{n}");
            let mut cmd = redis::cmd("ZADD");
            cmd.arg(&key);
            for i in 0..rng.range(10, 300) {
                cmd.arg(rng.next() % 1_000_000).arg(format!("member:{i}"));
            }
            (key, vec![cmd])
        }
    }
}

/// The mixed dataset (without big keys) written to a cluster, each key to the master `owner`
/// says (by its slot), until the masters' `used_memory_dataset` add up to `target_bytes`.
/// Returns the key count.
pub fn fill_mixed_sharded(
    masters: &mut [Connection],
    owner: impl Fn(&[u8]) -> usize,
    target_bytes: u64,
) -> redis::RedisResult<u64> {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut keys = 0u64;
    let mut n = 0u64;
    loop {
        let mut pipes: Vec<redis::Pipeline> = masters.iter().map(|_| redis::pipe()).collect();
        for p in pipes.iter_mut() {
            p.ignore();
        }
        for _ in 0..PIPE {
            n += 1;
            let (key, cmds) = mixed(&mut rng, n);
            let p = &mut pipes[owner(key.as_bytes())];
            for cmd in cmds {
                p.add_command(cmd);
            }
            keys += 1;
        }
        let mut used = 0;
        for (p, c) in pipes.iter().zip(masters.iter_mut()) {
            p.query::<()>(c)?;
            used += used_memory_dataset(c)?;
        }
        if used >= target_bytes {
            return Ok(keys);
        }
    }
}

/// A list, a hash and a sorted set of `elements` elements each, named `<prefix>:list` etc.
pub fn fill_big(c: &mut Connection, prefix: &str, elements: u64) -> redis::RedisResult<()> {
    let per_cmd = 1000u64;
    let mut i = 0u64;
    while i < elements {
        let mut p = redis::pipe();
        p.ignore();
        for _ in 0..(PIPE as u64 / 10) {
            if i >= elements {
                break;
            }
            let end = (i + per_cmd).min(elements);
            let mut l = redis::cmd("RPUSH");
            let mut h = redis::cmd("HSET");
            let mut z = redis::cmd("ZADD");
            l.arg(format!("{prefix}:list"));
            h.arg(format!("{prefix}:hash"));
            z.arg(format!("{prefix}:zset"));
            for e in i..end {
                l.arg(format!("element-{e}"));
                h.arg(format!("field-{e}")).arg(format!("value-{e}"));
                z.arg(e).arg(format!("member-{e}"));
            }
            p.add_command(l).add_command(h).add_command(z);
            i = end;
        }
        p.query::<()>(c)?;
    }
    Ok(())
}

/// Total keys over all dbs, from `INFO keyspace`.
pub fn key_count(c: &mut Connection) -> redis::RedisResult<u64> {
    let info: String = redis::cmd("INFO").arg("keyspace").query(c)?;
    Ok(info
        .lines()
        .filter(|l| l.starts_with("db"))
        .filter_map(|l| l.split(':').nth(1))
        .filter_map(|v| v.split(',').next())
        .filter_map(|k| k.strip_prefix("keys="))
        .filter_map(|k| k.parse::<u64>().ok())
        .sum())
}
