//! A workload that issues every write command of a server's own command table at least once:
//! the set to cover is read from the server (`COMMAND INFO` flags, `write`), and each command
//! has a scenario below with the options that change what the master propagates (`~`/`=`/
//! `LIMIT`, `KEEPTTL`, `GET`, `NX|XX|GT|LT`, `ASYNC`, counts), multi-key ones with keys in
//! different slots, and blocking variants both served at once and served by another client
//! while blocked. A command of the table without a scenario, or whose scenario the server
//! refused, is reported as not covered: the test that runs it fails and names it, so a new
//! server version's new write commands cannot pass unnoticed.
//!
//! Keys are `ec:<command>:<n>`; the three keys of a scenario (`{a}`, `{b}`, `{c}`) are in
//! three different slots. `{t}` is a Unix time an hour ahead, `{tms}` the same in ms.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::{Connection, Value};

use crate::cluster::key_slot;

mod scenarios;
use scenarios::SCENARIOS;

/// What a run issued.
#[derive(Debug, Default)]
pub struct Report {
    /// Commands issued without an error.
    pub covered: BTreeSet<String>,
    /// Lines the server refused, with its reply.
    pub refused: Vec<(String, String)>,
}

/// The write commands of the server behind `con`, by lower-case name (`container|sub`).
pub fn write_commands(con: &mut Connection) -> BTreeSet<String> {
    let reply: Value = redis::cmd("COMMAND").query(con).expect("COMMAND");
    let mut out = BTreeSet::new();
    let Value::Array(entries) = reply else {
        return out;
    };
    let visit = |e: &Value, out: &mut BTreeSet<String>| -> Option<Value> {
        let Value::Array(parts) = e else { return None };
        let name = match parts.first()? {
            Value::BulkString(b) => String::from_utf8_lossy(b).to_lowercase(),
            Value::SimpleString(s) => s.to_lowercase(),
            _ => return None,
        };
        let flags = match parts.get(2)? {
            Value::Array(f) => f.clone(),
            Value::Set(f) => f.clone(),
            _ => Vec::new(),
        };
        let write = flags.iter().any(|f| match f {
            Value::SimpleString(s) => s == "write",
            Value::BulkString(b) => b == b"write",
            _ => false,
        });
        if write {
            out.insert(name);
        }
        parts.get(9).cloned()
    };
    for e in &entries {
        if let Some(Value::Array(subs)) = visit(e, &mut out) {
            for s in &subs {
                visit(s, &mut out);
            }
        }
    }
    out
}

/// `n` key names for `command`, each in its own slot.
fn keys_for(command: &str, n: usize) -> Vec<String> {
    let base = command.replace('|', "-");
    let mut keys: Vec<String> = Vec::new();
    let mut j = 0;
    while keys.len() < n {
        let k = format!("ec:{base}:{j}");
        if keys
            .iter()
            .all(|o| key_slot(o.as_bytes()) != key_slot(k.as_bytes()))
        {
            keys.push(k);
        }
        j += 1;
    }
    keys
}

fn expand(line: &str, keys: &[String]) -> Vec<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    line.split(' ')
        .map(|w| match w {
            "{a}" => keys[0].clone(),
            "{b}" => keys[1].clone(),
            "{c}" => keys[2].clone(),
            "{t}" => (now + 3600).to_string(),
            "{tms}" => ((now + 3600) * 1000).to_string(),
            w => w.to_string(),
        })
        .collect()
}

fn call(con: &mut Connection, args: &[String]) -> Result<Value, String> {
    let mut c = redis::cmd(&args[0]);
    for a in &args[1..] {
        c.arg(a.as_str());
    }
    c.query::<Value>(con).map_err(|e| e.to_string())
}

/// The name a line's command is covered under.
fn covered_name(args: &[String]) -> String {
    let name = args[0].to_lowercase();
    match (name.as_str(), args.get(1)) {
        ("xgroup" | "function", Some(sub)) => format!("{name}|{}", sub.to_lowercase()),
        _ => name,
    }
}

/// Options of a run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The destination has db 0 only (a cluster): no MOVE, SWAPDB or other dbs.
    pub db0_only: bool,
    /// Where MIGRATE sends a key (a server that is neither source nor destination).
    pub migrate_to: Option<(String, u16)>,
}

/// Commands issued although not flagged as writes: they carry writes (a script's effects) or
/// reach replicas (PUBLISH).
pub const CARRIERS: &[&str] = &["eval", "publish"];

/// Issues the scenario of each of `commands` (and of [`CARRIERS`]) against the server at
/// `url` (db 0).
pub fn run(url: &str, commands: &BTreeSet<String>, options: &Options) -> Report {
    let client = redis::Client::open(url).expect("url");
    let mut con = client.get_connection().expect("connect");
    let mut report = Report::default();
    let line = |con: &mut Connection, args: Vec<String>, report: &mut Report| match call(con, &args)
    {
        Ok(_) => {
            report.covered.insert(covered_name(&args));
        }
        Err(e) => report.refused.push((args.join(" "), e)),
    };
    // First, so that what they empty is not what the rest writes.
    for (cmd, sub) in [("flushdb", "FLUSHDB ASYNC"), ("flushall", "FLUSHALL SYNC")] {
        let k = keys_for(cmd, 3);
        line(&mut con, expand("SET {a} 1", &k), &mut report);
        line(&mut con, expand(sub, &k), &mut report);
    }
    for (cmd, lines) in SCENARIOS {
        if !commands.contains(*cmd) && !CARRIERS.contains(cmd) {
            continue;
        }
        let keys = keys_for(cmd, 3);
        for l in lines.iter() {
            match l.strip_prefix('!') {
                Some(blocked) => {
                    let (wait, serve) = blocked.split_once('|').unwrap_or((blocked, ""));
                    let (wait, serve) = (expand(wait, &keys), expand(serve, &keys));
                    match served(&client, &mut con, &wait, &serve) {
                        Ok(()) => {
                            report.covered.insert(covered_name(&wait));
                        }
                        Err(e) => report.refused.push((wait.join(" "), e)),
                    }
                }
                None => line(&mut con, expand(l, &keys), &mut report),
            }
        }
    }
    functions(&mut con, &mut report);
    restores(&mut con, &mut report);
    if let Some((host, port)) = &options.migrate_to {
        let k = keys_for("migrate", 3);
        line(&mut con, expand("SET {a} v EX 3600", &k), &mut report);
        let migrate = vec![
            "MIGRATE".to_string(),
            host.clone(),
            port.to_string(),
            k[0].clone(),
            "0".into(),
            "5000".into(),
        ];
        line(&mut con, migrate, &mut report);
    }
    if !options.db0_only {
        let k = keys_for("move", 3);
        line(&mut con, expand("SET {a} v", &k), &mut report);
        line(&mut con, expand("MOVE {a} 3", &k), &mut report);
        line(&mut con, expand("SET {b} v", &k), &mut report);
        line(&mut con, expand("COPY {b} {c} DB 4", &k), &mut report);
        line(
            &mut con,
            vec!["SWAPDB".into(), "3".into(), "4".into()],
            &mut report,
        );
    }
    report
}

/// A blocking command on a connection of its own, blocked until `serve` (on `con`) serves it.
fn served(
    client: &redis::Client,
    con: &mut Connection,
    wait: &[String],
    serve: &[String],
) -> Result<(), String> {
    let blocked_before = blocked_clients(con);
    let mut other = client.get_connection().map_err(|e| e.to_string())?;
    let args = wait.to_vec();
    let waiter = std::thread::spawn(move || call(&mut other, &args));
    let deadline = Instant::now() + Duration::from_secs(10);
    while blocked_clients(con) <= blocked_before {
        if Instant::now() > deadline {
            return Err("the blocking command never blocked".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    call(con, serve)?;
    match waiter.join() {
        Ok(Ok(Value::Nil)) => Err("timed out instead of being served".into()),
        Ok(r) => r.map(|_| ()),
        Err(_) => Err("the blocked client panicked".into()),
    }
}

fn blocked_clients(con: &mut Connection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(con)
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// FUNCTION LOAD, FCALL, DUMP, DELETE, RESTORE, FLUSH, and a library loaded again at the end.
fn functions(con: &mut Connection, report: &mut Report) {
    let k = keys_for("fcall", 3);
    let lib = "#!lua name=eclib\nredis.register_function('ecset', function(keys, args) return redis.call('SET', keys[1], args[1]) end)";
    let mut step = |args: Vec<String>, report: &mut Report| match call(con, &args) {
        Ok(v) => {
            report.covered.insert(covered_name(&args));
            Some(v)
        }
        Err(e) => {
            report.refused.push((args.join(" "), e));
            None
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    step(s(&["FUNCTION", "LOAD", lib]), report);
    step(s(&["FCALL", "ecset", "1", &k[0], "one"]), report);
    let dump = step(s(&["FUNCTION", "DUMP"]), report);
    step(s(&["FUNCTION", "DELETE", "eclib"]), report);
    if let Some(Value::BulkString(payload)) = dump {
        let mut c = redis::cmd("FUNCTION");
        c.arg("RESTORE").arg(payload);
        match c.query::<Value>(con) {
            Ok(_) => {
                report.covered.insert("function|restore".into());
            }
            Err(e) => report
                .refused
                .push(("FUNCTION RESTORE".into(), e.to_string())),
        }
    }
    let mut step = |args: Vec<String>, report: &mut Report| match call(con, &args) {
        Ok(_) => {
            report.covered.insert(covered_name(&args));
        }
        Err(e) => report.refused.push((args.join(" "), e)),
    };
    step(s(&["FCALL", "ecset", "1", &k[1], "two"]), report);
    step(s(&["FUNCTION", "FLUSH", "ASYNC"]), report);
    step(s(&["FUNCTION", "LOAD", lib]), report);
    step(s(&["FCALL", "ecset", "1", &k[2], "three"]), report);
}

/// RESTORE (with ABSTTL, IDLETIME, REPLACE) and RESTORE-ASKING of DUMP payloads.
fn restores(con: &mut Connection, report: &mut Report) {
    let k = keys_for("restore", 3);
    let _ = call(con, &expand("RPUSH {a} x y z", &k));
    let payload: Option<Vec<u8>> = redis::cmd("DUMP").arg(&k[0]).query(con).ok();
    let Some(payload) = payload else {
        report.refused.push(("DUMP".into(), "no payload".into()));
        return;
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let attempts: [(&str, Vec<String>); 3] = [
        (
            "restore",
            vec![k[1].clone(), "0".into(), "IDLETIME".into(), "100".into()],
        ),
        (
            "restore",
            vec![
                k[0].clone(),
                (now_ms + 3_600_000).to_string(),
                "ABSTTL".into(),
                "REPLACE".into(),
            ],
        ),
        ("restore-asking", vec![k[2].clone(), "3600000".into()]),
    ];
    for (name, rest) in attempts {
        let mut c = redis::cmd(name);
        c.arg(&rest[0]).arg(&rest[1]).arg(&payload[..]);
        for r in &rest[2..] {
            c.arg(r.as_str());
        }
        match c.query::<Value>(con) {
            Ok(_) => {
                report.covered.insert(name.to_string());
            }
            Err(e) => report.refused.push((name.to_uppercase(), e.to_string())),
        }
    }
}
