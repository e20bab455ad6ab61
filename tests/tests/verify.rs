//! `replicant verify` against real servers: after a real `replicant sync` of the dataset it
//! finds nothing (exit 0); after five changes on the destination (a value inside a big key, a
//! TTL, a type, a deleted key, an extra key) it reports exactly those five (exit 1), in the
//! summary and in the JSON report; `outline` and `sample` modes; a changed element inside
//! every type, small and big; a live source under a write workload converging within the
//! re-check rounds; a cluster on either side; `--max-ops`; bad flags and unreachable or
//! refusing servers (exit 2, one line naming the side); the README's least-permission user;
//! mutual TLS on both sides.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

use redis::Connection;
use replicant_tests::barrier;
use replicant_tests::cluster::RedisCluster;
use replicant_tests::dataset;
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::{self, RunOutput, SyncProcess};
use replicant_tests::server::{RedisServer, ServerTls};
use replicant_tests::tls::TestCerts;
use replicant_tests::workload::{Workload, WorkloadConfig};
use serde_json::Value;
use tempfile::TempDir;

/// Time for replicant to receive the snapshot (the source's replica line turns `online`).
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(180);
/// Time for replicant to apply everything once the writes have stopped.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(180);
/// The dataset's expiry (2100-01-01) plus an hour: a TTL far outside any tolerance.
const OTHER_EXPIRY_MS: &str = "4102448400000";

/// (db, key) → the kinds of difference reported for it.
type Kinds = BTreeMap<(u64, String), Vec<String>>;

fn query<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command
        .query(con)
        .unwrap_or_else(|err| panic!("{args:?} failed: {err}"))
}

/// What one `replicant verify` run said.
struct Verdict {
    output: RunOutput,
    report: Value,
}

impl Verdict {
    fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// The differences of the JSON report.
    fn kinds(&self) -> Kinds {
        let mut kinds = Kinds::new();
        for d in self.report["differences"].as_array().into_iter().flatten() {
            let db = d["db"]
                .as_u64()
                .unwrap_or_else(|| self.fail("a difference without db"));
            let key = d["key"]
                .as_str()
                .unwrap_or_else(|| self.fail("a difference without key"));
            let kind = d["kind"]
                .as_str()
                .unwrap_or_else(|| self.fail("a difference without kind"));
            kinds
                .entry((db, key.to_string()))
                .or_default()
                .push(kind.to_string());
        }
        kinds
    }

    /// A number of the JSON report (`keys_scanned.source` is `&["keys_scanned", "source"]`).
    fn number(&self, path: &[&str]) -> u64 {
        let value = path.iter().fold(&self.report, |v, name| &v[*name]);
        value
            .as_u64()
            .unwrap_or_else(|| self.fail(&format!("no number {path:?} in the report")))
    }

    fn describe(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}\n--- report (differences) ---\n{}",
            self.output.describe(),
            self.output.stdout,
            serde_json::to_string_pretty(&self.report["differences"]).unwrap_or_default()
        )
    }

    fn fail(&self, message: &str) -> ! {
        panic!("{message}\n{}", self.describe())
    }

    /// Exactly `expected` reported, and the exit status `code`.
    fn expect(&self, code: i32, expected: &Kinds) {
        if self.kinds() != *expected {
            self.fail(&format!(
                "reported {:?}, expected {expected:?}",
                self.kinds()
            ));
        }
        if self.code() != Some(code) {
            self.fail(&format!("exit status {:?}, expected {code}", self.code()));
        }
        let differing = self.number(&["differing_keys"]);
        if differing != expected.len() as u64 {
            self.fail(&format!(
                "differing_keys {differing}, expected {}",
                expected.len()
            ));
        }
    }
}

/// `replicant verify --source SOURCE --target TARGET --report FILE EXTRA…`, with its report.
fn verify(source: &str, target: &str, extra: &[&str]) -> Verdict {
    let dir = TempDir::new().expect("a temp dir for the report");
    let path = dir.path().join("report.json");
    let path_text = path.to_string_lossy().into_owned();
    let mut args = vec!["--report", path_text.as_str()];
    args.extend_from_slice(extra);
    let output = replicant::verify(source, target, &args);
    assert!(
        !output.timed_out && !output.stderr.contains("panicked"),
        "{}",
        output.describe()
    );
    let report = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .unwrap_or_else(|err| panic!("the report is not JSON: {err}\n{}", output.describe())),
        Err(err) => panic!(
            "no report at {}: {err}\n{}",
            path.display(),
            output.describe()
        ),
    };
    Verdict { output, report }
}

fn kinds(list: &[(u64, &str, &str)]) -> Kinds {
    let mut out = Kinds::new();
    for (db, key, kind) in list {
        out.entry((*db, key.to_string()))
            .or_default()
            .push(kind.to_string());
    }
    out
}

/// The five changes of the acceptance test, made on the target (`client_for` gives a
/// connection to the server holding a key): a value inside a 200,000-field hash, a TTL, a
/// type, a deleted key and an extra key (in db `extra_db`). What verify must report.
fn change_five(client_for: &dyn Fn(&str) -> Connection, extra_db: u64) -> Kinds {
    let key = "ds:hash:huge";
    let _: () = query(&mut client_for(key), &["HSET", key, "f123456", "changed"]);
    let key = "ds:ttl:str";
    let _: () = query(&mut client_for(key), &["PEXPIREAT", key, OTHER_EXPIRY_MS]);
    let key = "ds:str:embstr";
    let mut con = client_for(key);
    let _: () = query(&mut con, &["DEL", key]);
    let _: () = query(&mut con, &["RPUSH", key, "now a list"]);
    let key = "ds:list:small";
    let _: () = query(&mut client_for(key), &["DEL", key]);
    let key = "verify:extra";
    let mut con = client_for(key);
    let _: () = query(&mut con, &["SELECT", &extra_db.to_string()]);
    let _: () = query(&mut con, &["SET", key, "only on the target"]);
    kinds(&[
        (0, "ds:hash:huge", "value"),
        (0, "ds:ttl:str", "ttl"),
        (0, "ds:str:embstr", "type"),
        (0, "ds:list:small", "only_on_source"),
        (extra_db, "verify:extra", "only_on_target"),
    ])
}

/// The same differences seen from the other side.
fn swapped(kinds: &Kinds) -> Kinds {
    kinds
        .iter()
        .map(|(key, list)| {
            let list = list
                .iter()
                .map(|k| match k.as_str() {
                    "only_on_source" => "only_on_target".to_string(),
                    "only_on_target" => "only_on_source".to_string(),
                    other => other.to_string(),
                })
                .collect();
            (key.clone(), list)
        })
        .collect()
}

/// Starts `replicant sync` and waits until the destination has everything the source wrote.
fn synced(source: &RedisServer, target_url: &str) -> SyncProcess {
    let mut sync = SyncProcess::start(&source.url(), target_url);
    if let Err(err) =
        barrier::wait_for_replica_online(source, SNAPSHOT_TIMEOUT, || sync.check_running())
    {
        sync.fail(&err);
    }
    if let Err(err) = barrier::wait_for_sync(source, BARRIER_TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    sync
}

#[test]
fn after_a_sync_nothing_differs_then_exactly_the_five_changes() {
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .start();
    let target = RedisServer::start();
    dataset::fill(&mut source.client());
    let sync = synced(&source, &target.url());

    // While replicant runs: its heartbeat keys on the source are not data.
    let v = verify(&source.url(), &target.url(), &[]);
    if v.code() != Some(0) || !v.kinds().is_empty() {
        sync.fail(&format!("verify after the sync:\n{}", v.describe()));
    }
    assert_eq!(v.report["equal"], Value::Bool(true), "{}", v.describe());
    assert!(v.output.stdout.contains("EQUAL"), "{}", v.describe());
    let scanned = v.number(&["keys_scanned", "source"]);
    assert_eq!(
        scanned,
        v.number(&["keys_scanned", "target"]),
        "{}",
        v.describe()
    );
    assert!(scanned >= 40, "{}", v.describe());
    assert_eq!(v.number(&["keys_compared"]), scanned, "{}", v.describe());
    // The big keys (200,000 elements, the 1.5 MiB string, streams with groups) went in chunks.
    assert!(
        v.number(&["keys_compared_in_chunks"]) >= 8,
        "{}",
        v.describe()
    );
    sync.stop();

    let expected = change_five(&|_| target.client(), 5);
    let v = verify(&source.url(), &target.url(), &[]);
    v.expect(1, &expected);
    for (_, key) in expected.keys() {
        assert!(
            v.output.stdout.contains(key.as_str()),
            "{key} not listed\n{}",
            v.describe()
        );
    }
    assert!(
        v.output.stdout.contains("DIFFERENT (5 keys)"),
        "{}",
        v.describe()
    );

    // Outline: types, lengths and TTLs; the changed field keeps the hash's length.
    let mut outlined = expected.clone();
    outlined.remove(&(0, "ds:hash:huge".to_string()));
    verify(&source.url(), &target.url(), &["--mode", "outline"]).expect(1, &outlined);

    // Sample: every key, then about half of them, the same half for the same seed.
    verify(
        &source.url(),
        &target.url(),
        &["--mode", "sample", "--ratio", "1"],
    )
    .expect(1, &expected);
    let half = ["--mode", "sample", "--ratio", "0.5", "--seed", "3"];
    let v = verify(&source.url(), &target.url(), &half);
    let found = v.kinds();
    assert!(
        found
            .iter()
            .all(|(key, list)| expected.get(key) == Some(list)),
        "{}",
        v.describe()
    );
    assert_eq!(
        v.code(),
        Some(if found.is_empty() { 0 } else { 1 }),
        "{}",
        v.describe()
    );
    let (sampled, all) = (
        v.number(&["keys_checked", "source"]),
        v.number(&["keys_scanned", "source"]),
    );
    assert!(
        sampled > 0 && sampled < all,
        "sampled {sampled} of {all}\n{}",
        v.describe()
    );
    assert_eq!(verify(&source.url(), &target.url(), &half).kinds(), found);
}

/// Flips the byte at `offset` of a string.
fn flip_byte(con: &mut Connection, key: &str, offset: usize) {
    let at = offset.to_string();
    let byte: Vec<u8> = query(con, &["GETRANGE", key, &at, &at]);
    assert_eq!(byte.len(), 1, "{key} has no byte {offset}");
    redis::cmd("SETRANGE")
        .arg(key)
        .arg(offset)
        .arg(vec![!byte[0]])
        .query::<()>(con)
        .unwrap_or_else(|err| panic!("SETRANGE {key} failed: {err}"));
}

#[test]
fn a_changed_element_is_found_in_every_type_small_and_big() {
    let _guard = heavy_test_guard();
    let (source, target) = (RedisServer::start(), RedisServer::start());
    dataset::fill(&mut source.client());
    dataset::fill(&mut target.client());
    verify(&source.url(), &target.url(), &[]).expect(0, &Kinds::new());

    // One element each, the length unchanged.
    let mut con = target.client();
    flip_byte(&mut con, "ds:str:big", 1_000_000);
    flip_byte(&mut con, "ds:str:raw", 100);
    for command in [
        &["LSET", "ds:list:huge", "150000", "changed"][..],
        &["LSET", "ds:list:small", "0", "changed"],
        &["SREM", "ds:set:huge", "m12345"],
        &["SADD", "ds:set:huge", "m-changed"],
        &["SREM", "ds:set:small", "apple"],
        &["SADD", "ds:set:small", "apricot"],
        &["SREM", "ds:set:intset", "5"],
        &["SADD", "ds:set:intset", "1000"],
        &["ZADD", "ds:zset:huge", "XX", "0.5", "z150000"],
        &["ZADD", "ds:zset:listpack", "XX", "7", "a"],
        &["HSET", "ds:hash:huge", "f199999", "changed"],
        &["HSET", "ds:hash:listpack", "f3", "changed"],
        // Stream groups: a pending entry acknowledged, a group moved back.
        &["XACK", "ds:stream:big", "readers", "1700000001000-250"],
        &["XGROUP", "SETID", "ds:stream:groups", "g3", "0"],
    ] {
        let _: redis::Value = query(&mut con, command);
    }
    let _: () = query(&mut con, &["SELECT", "5"]);
    let _: i64 = query(&mut con, &["XACK", "ds5:stream", "g", "1700000005000-1"]);
    let mut expected = kinds(&[(5, "ds5:stream", "value")]);
    for key in [
        "ds:str:big",
        "ds:str:raw",
        "ds:list:huge",
        "ds:list:small",
        "ds:set:huge",
        "ds:set:small",
        "ds:set:intset",
        "ds:zset:huge",
        "ds:zset:listpack",
        "ds:hash:huge",
        "ds:hash:listpack",
        "ds:stream:big",
        "ds:stream:groups",
    ] {
        expected.insert((0, key.to_string()), vec!["value".to_string()]);
    }
    let v = verify(&source.url(), &target.url(), &[]);
    v.expect(1, &expected);
    assert!(
        v.output
            .stdout
            .contains("\"f199999\": \"1399993\" vs \"changed\""),
        "the detail should name the field and both values\n{}",
        v.describe()
    );
    // Same lengths and TTLs: outline sees nothing.
    verify(&source.url(), &target.url(), &["--mode", "outline"]).expect(0, &Kinds::new());
}

#[test]
fn a_live_source_converges_within_the_rounds() {
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .start();
    let target = RedisServer::start();
    dataset::fill(&mut source.client());
    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    workload
        .wait_for_ops(300, Duration::from_secs(60))
        .unwrap_or_else(|err| panic!("{err}"));
    let mut sync = SyncProcess::start(&source.url(), &target.url());
    if let Err(err) =
        barrier::wait_for_replica_online(&source, SNAPSHOT_TIMEOUT, || sync.check_running())
    {
        sync.fail(&err);
    }
    let until = workload.ops() + 1_500;
    if let Err(err) = workload.wait_for_ops(until, Duration::from_secs(60)) {
        sync.fail(&err);
    }

    // The workload goes on during the whole comparison, and the target takes no writes for
    // its first 1.5 s (replicant waits): the first pass must find differences that the
    // re-checks, once replicant has caught up, find gone.
    let before = workload.ops();
    let _: () = query(&mut target.client(), &["CLIENT", "PAUSE", "1500", "WRITE"]);
    let v = verify(
        &source.url(),
        &target.url(),
        &["--rounds", "6", "--round-wait", "500ms"],
    );
    let during = workload.ops() - before;
    if v.code() != Some(0) || !v.kinds().is_empty() {
        sync.fail(&format!(
            "verify on a live source ({during} writes meanwhile):\n{}",
            v.describe()
        ));
    }
    assert!(
        during > 100,
        "the workload did not run during verify ({during} writes)"
    );
    let first_pass = v.number(&["first_pass_differing_keys"]);
    assert!(
        first_pass > 0,
        "nothing differed in the first pass\n{}",
        v.describe()
    );
    // Shown with `--nocapture`.
    println!(
        "{during} writes during verify; {first_pass} keys differed in the first pass, {} re-check rounds",
        v.number(&["rounds"])
    );
    workload.stop();
    sync.stop();
}

#[test]
fn a_cluster_on_either_side() {
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .start();
    let cluster = RedisCluster::start();
    dataset::fill_db0(&mut source.client());
    let sync = synced(&source, &cluster.url());
    let v = verify(&source.url(), &cluster.url(), &[]);
    if v.code() != Some(0) || !v.kinds().is_empty() {
        sync.fail(&format!(
            "verify after the sync into a cluster:\n{}",
            v.describe()
        ));
    }
    assert!(
        v.output.stdout.contains("cluster of 3 masters"),
        "{}",
        v.describe()
    );
    sync.stop();

    let expected = change_five(&|key| cluster.client_for_key(key.as_bytes()), 0);
    verify(&source.url(), &cluster.url(), &[]).expect(1, &expected);
    // The cluster as the source.
    verify(&cluster.url(), &source.url(), &[]).expect(1, &swapped(&expected));

    // A standalone side with keys outside db 0 against a cluster: refused, unless --db picks.
    let mut con = source.client();
    let _: () = query(&mut con, &["SELECT", "5"]);
    let _: () = query(&mut con, &["SET", "db5:key", "v"]);
    let output = replicant::verify(&source.url(), &cluster.url(), &[]);
    assert_eq!(output.status.code(), Some(2), "{}", output.describe());
    assert!(
        output
            .stderr
            .lines()
            .any(|line| line.starts_with("replicant: source:")
                && line.contains("db 5")
                && line.contains("--db")),
        "{}",
        output.describe()
    );
    verify(&source.url(), &cluster.url(), &["--db", "0"]).expect(1, &expected);
}

#[test]
fn max_ops_limits_the_rate() {
    let (source, target) = (RedisServer::start(), RedisServer::start());
    for server in [&source, &target] {
        let mut pipe = redis::pipe();
        for i in 0..2_000 {
            pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
        }
        pipe.query::<()>(&mut server.client())
            .unwrap_or_else(|err| panic!("filling failed: {err}"));
    }
    // About 8,000 commands to the source (SCAN, TYPE, PTTL, STRLEN, then EXISTS for the
    // target's keys): at 2,000 a second, after a first second's worth, at least 2 s.
    let v = verify(
        &source.url(),
        &target.url(),
        &["--mode", "outline", "--max-ops", "2000"],
    );
    v.expect(0, &Kinds::new());
    let ms = v.number(&["duration_ms"]);
    assert!(ms >= 2_000, "took {ms} ms\n{}", v.describe());
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Exit status 2, one line on stderr starting with `prefix` and naming `words`, no panic.
fn expect_error(output: &RunOutput, prefix: &str, words: &[&str]) {
    let described = output.describe();
    assert!(!output.timed_out, "{described}");
    assert_eq!(output.status.code(), Some(2), "{described}");
    assert!(!output.stderr.contains("panicked"), "{described}");
    assert!(
        output
            .stderr
            .lines()
            .any(|line| line.starts_with(prefix) && words.iter().all(|w| line.contains(w))),
        "no line starting with {prefix:?} names {words:?}\n{described}"
    );
}

#[test]
fn bad_flags_and_unreachable_or_refusing_sides_exit_2() {
    let server = RedisServer::builder().password("secret").start();
    let url = server.url();
    let closed = format!("redis://127.0.0.1:{}", closed_port());

    expect_error(
        &replicant::verify(&url, &url, &["--mode", "sample", "--ratio", "0"]),
        "replicant:",
        &["--ratio"],
    );
    expect_error(
        &replicant::verify(&url, &url, &["--ratio", "0.5"]),
        "replicant:",
        &["--ratio", "sample"],
    );
    expect_error(
        &replicant::verify(&url, &url, &["--ttl-tolerance", "soon"]),
        "error:",
        &["--ttl-tolerance"],
    );
    expect_error(
        &replicant::verify(&url, &closed, &[]),
        "replicant: target:",
        &["cannot connect"],
    );
    let wrong = server.url_with_password(Some("not-the-secret-4711"));
    let output = replicant::verify(&wrong, &url, &[]);
    expect_error(&output, "replicant: source:", &["authentication failed"]);
    assert!(
        !output.stderr.contains("4711") && !output.stdout.contains("4711"),
        "a password in the output\n{}",
        output.describe()
    );
    // And the same server on both sides is equal.
    let v = verify(&url, &url, &[]);
    v.expect(0, &Kinds::new());
}

const VERIFY_USER: &str = "replicant-verify";
const VERIFY_PASSWORD: &str = "verify-secret";

/// The rules of the README's `ACL SETUSER replicant-verify …` line (the password placeholder
/// replaced), without those in `leave_out`.
fn documented_rules(leave_out: &[&str]) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme =
        std::fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {path}: {err}"));
    let prefix = format!("ACL SETUSER {VERIFY_USER} ");
    let line = readme
        .lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("the README has no `{prefix}…` line"));
    line.split_whitespace()
        .filter(|rule| !leave_out.contains(rule))
        .map(|rule| match rule.strip_prefix('>') {
            Some(_) => format!(">{VERIFY_PASSWORD}"),
            None => rule.to_string(),
        })
        .collect()
}

fn set_verify_user(server: &RedisServer, rules: &[String]) {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER").arg(VERIFY_USER).arg("reset").arg(rules);
    cmd.query::<()>(&mut server.client())
        .unwrap_or_else(|err| panic!("ACL SETUSER {VERIFY_USER} {rules:?} failed: {err}"));
}

#[test]
fn the_documented_user_may_verify() {
    let source = RedisServer::builder().password("admin-secret").start();
    let target = RedisServer::builder().password("admin-secret").start();
    let url = |server: &RedisServer| server.url_with_user(Some(VERIFY_USER), Some(VERIFY_PASSWORD));
    for server in [&source, &target] {
        dataset::fill(&mut server.client());
        set_verify_user(server, &documented_rules(&[]));
    }
    verify(&url(&source), &url(&target), &[]).expect(0, &Kinds::new());
    // Without its reads, the target refuses: one line naming the side and the permission.
    set_verify_user(&target, &documented_rules(&["+@read"]));
    let output = replicant::verify(&url(&source), &url(&target), &[]);
    expect_error(&output, "replicant: target:", &["NOPERM"]);
}

#[test]
fn over_mutual_tls_as_sync_connects() {
    let certs = TestCerts::generate();
    let tls = || ServerTls {
        cert: certs.server.cert.clone(),
        key: certs.server.key.clone(),
        ca: certs.ca.clone(),
        auth_clients: true,
    };
    let source = RedisServer::builder().tls(tls()).start();
    let target = RedisServer::builder().tls(tls()).start();
    for server in [&source, &target] {
        let _: () = query(&mut server.client(), &["SET", "k", "v"]);
    }
    let (cert, key) = (
        certs.client.cert.display().to_string(),
        certs.client.key.display().to_string(),
    );
    let flags = |other_ca: bool| -> Vec<String> {
        let ca = if other_ca { &certs.other_ca } else { &certs.ca };
        let mut flags = Vec::new();
        for side in ["source", "target"] {
            flags.extend([
                format!("--{side}-tls-ca"),
                ca.display().to_string(),
                format!("--{side}-tls-cert"),
                cert.clone(),
                format!("--{side}-tls-key"),
                key.clone(),
            ]);
        }
        flags
    };
    let good = flags(false);
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    verify(&source.tls_url(), &target.tls_url(), &good).expect(0, &Kinds::new());
    let _: () = query(&mut target.client(), &["SET", "k", "changed"]);
    verify(&source.tls_url(), &target.tls_url(), &good).expect(1, &kinds(&[(0, "k", "value")]));
    // A CA that signed neither server: refused at connect, naming the side.
    let bad = flags(true);
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    let output = replicant::verify(&source.tls_url(), &target.tls_url(), &bad);
    expect_error(
        &output,
        "replicant: source:",
        &["TLS handshake", "UnknownIssuer"],
    );
}
