//! `replicant cutover` against a running sync under a live write load of at least 5,000
//! operations per second: it pauses writes on the source, waits until the destination has
//! applied everything, and prints "ready" with the offset and the measured pause; while the
//! source is still paused the destination equals it at that offset, and the sync's INFO says
//! `cutover_state:ready`. With `--resume-source` the source takes writes again at once.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use replicant_tests::barrier;
use replicant_tests::compare::{self, CompareOptions};
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::{self, SyncProcess};
use replicant_tests::server::RedisServer;
use replicant_tests::workload::{Workload, WorkloadConfig};

const TIMEOUT: Duration = Duration::from_secs(120);

fn cutover(admin: &str, extra: &[&str]) -> replicant::RunOutput {
    let mut args: Vec<OsString> = ["cutover", "--admin", admin, "--pause-timeout", "20"]
        .into_iter()
        .map(OsString::from)
        .collect();
    args.extend(extra.iter().map(OsString::from));
    replicant::run(&args, &[], Duration::from_secs(90))
}

fn field(line: &str, name: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

#[test]
fn cutover_under_load_is_ready_and_equal_then_resumes() {
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .start();
    let target = RedisServer::start();
    // Three writers: about 6,000 operations per second together.
    let workloads: Vec<Workload> = (0..3)
        .map(|i| {
            Workload::start(
                &source.url(),
                WorkloadConfig {
                    seed: 42 + i,
                    max_ops_per_sec: 2_000,
                    // A paused source stops expiring keys and the destination does not: keys
                    // of a second's TTL would differ for that reason only.
                    short_ttls: false,
                    ..WorkloadConfig::default()
                },
            )
        })
        .collect();
    let ops = |w: &[Workload]| w.iter().map(Workload::ops).sum::<u64>();
    let mut sync = SyncProcess::start(&source.url(), &target.url());
    if let Err(e) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    let admin = sync.admin_addr(TIMEOUT);
    // The write rate reached, over two seconds.
    let (t0, o0) = (Instant::now(), ops(&workloads));
    while t0.elapsed() < Duration::from_secs(2) {
        if let Err(e) = sync.check_running() {
            sync.fail(&e);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let rate = (ops(&workloads) - o0) as f64 / t0.elapsed().as_secs_f64();
    println!("write rate before the cutover: {rate:.0} ops/s");
    assert!(rate >= 5_000.0, "the load reached only {rate:.0} ops/s");

    let out = cutover(&admin, &[]);
    assert!(out.status.success(), "{}", out.describe());
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("ready"))
        .unwrap_or_else(|| panic!("{}", out.describe()));
    println!("cutover: {line}");
    let offset = field(line, "offset").expect("offset") as u64;
    let paused_ms = field(line, "paused_ms").expect("paused_ms");
    assert!(paused_ms < 16_000.0, "{line}");
    // Still paused: the source has not moved, and the destination holds everything.
    let info = barrier::replication_info(&source).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        info.master_repl_offset, offset,
        "the source moved while paused"
    );
    let differences =
        compare::dataset_differences_with(&source, &target, CompareOptions::live_replication());
    if !differences.is_empty() {
        sync.fail(&compare::format_differences(&differences));
    }
    let mut admin_con = redis::Client::open(format!("redis://{admin}"))
        .expect("admin URL")
        .get_connection()
        .expect("admin port");
    let cut: String = redis::cmd("INFO")
        .arg("cutover")
        .query(&mut admin_con)
        .expect("INFO");
    assert!(cut.contains("cutover_state:ready"), "{cut}");
    assert!(cut.contains(&format!("cutover_offset:{offset}")), "{cut}");
    // Applications would now move to the destination; here the source simply goes on.
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query(&mut source.client())
        .expect("UNPAUSE");

    // A rehearsal that gives the writes back at once.
    let out = cutover(&admin, &["--resume-source"]);
    assert!(out.status.success(), "{}", out.describe());
    assert!(out.stdout.contains("source=resumed"), "{}", out.describe());
    let before = ops(&workloads);
    let deadline = Instant::now() + TIMEOUT;
    while ops(&workloads) < before + 1_000 {
        assert!(
            Instant::now() < deadline,
            "writes did not resume after --resume-source"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cut: String = redis::cmd("INFO")
        .arg("cutover")
        .query(&mut admin_con)
        .expect("INFO");
    assert!(cut.contains("cutover_state:resumed"), "{cut}");
    for w in workloads {
        w.stop().wait_for_short_ttls();
    }
    if let Err(e) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    sync.stop();
}

/// One command on the admin port `admin` (after `AUTH password` when given): the reply, or
/// the error's text.
fn admin_reply(admin: &str, password: Option<&str>, args: &[&str]) -> Result<String, String> {
    let mut con = redis::Client::open(format!("redis://{admin}"))
        .and_then(|c| c.get_connection())
        .expect("admin port");
    if let Some(p) = password {
        let _: String = redis::cmd("AUTH")
            .arg(p)
            .query(&mut con)
            .map_err(|e| e.to_string())?;
    }
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query::<String>(&mut con).map_err(|e| e.to_string())
}

/// CUTOVER pauses the source: the admin port asks for `--admin-password` first, refuses it
/// without a password unless the operator opted in on a loopback address, and logs who asked.
#[test]
fn cutover_on_the_admin_port_needs_its_password() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    let mut sync = SyncProcess::start(&source.url(), &target.url());
    let admin = sync.admin_addr(TIMEOUT);
    let no_auth = admin_reply(&admin, None, &["CUTOVER", "RESUME"]).expect_err("refused");
    assert!(no_auth.contains("NOAUTH"), "{no_auth}");
    let wrong = admin_reply(&admin, Some("not it"), &["CUTOVER", "RESUME"]).expect_err("refused");
    assert!(wrong.contains("WRONGPASS"), "{wrong}");
    // INFO stays open (read only).
    assert!(admin_reply(&admin, None, &["INFO", "cutover"]).is_ok());
    let ok = admin_reply(
        &admin,
        Some(replicant::ADMIN_PASSWORD),
        &["CUTOVER", "RESUME"],
    );
    assert_eq!(ok.as_deref(), Ok("source=resumed"));
    let log = sync.stop();
    assert!(
        log.contains("CUTOVER asked on the admin port"),
        "who asked is logged"
    );
    assert!(log.contains("peer=127.0.0.1:"), "with the peer's address");

    // No password at all: refused, whoever asks.
    let mut sync = SyncProcess::builder(&source.url(), &target.url())
        .env("REPLICANT_ADMIN_PASSWORD", "")
        .start();
    let admin = sync.admin_addr(TIMEOUT);
    let open = admin_reply(&admin, None, &["CUTOVER", "RESUME"]).expect_err("refused");
    assert!(open.contains("--admin-password"), "{open}");
    sync.stop();
    // The opt-in on a loopback address allows it.
    let mut sync = SyncProcess::builder(&source.url(), &target.url())
        .env("REPLICANT_ADMIN_PASSWORD", "")
        .arg("--admin-cutover-without-password")
        .start();
    let admin = sync.admin_addr(TIMEOUT);
    let ok = admin_reply(&admin, None, &["CUTOVER", "RESUME"]);
    assert_eq!(ok.as_deref(), Ok("source=resumed"));
    sync.stop();
    // The opt-in on an address others may reach: the run does not start.
    let out = replicant::run(
        &[
            "sync",
            "--source",
            &source.url(),
            "--target",
            &target.url(),
            "--admin-addr",
            "0.0.0.0:0",
            "--admin-cutover-without-password",
        ]
        .map(OsString::from),
        &[("REPLICANT_ADMIN_PASSWORD", "")],
        TIMEOUT,
    );
    assert!(!out.status.success(), "{}", out.describe());
    assert!(out.stderr.contains("loopback"), "{}", out.describe());
}
