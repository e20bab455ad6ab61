//! What replicant tells operators while it runs, read the way they read it: `/metrics` scraped
//! during a sync shows the phase go from snapshot to streaming, counters rise under writes, the
//! byte lag fall to 0 once they stop and the heartbeat lag stay under a second on an idle
//! pair; `/healthz` and `/readyz` answer; `redis-cli`-style `PING` and `INFO` on the admin port
//! show the status; and the test passwords of both sides appear nowhere — not in INFO, the
//! metrics or the log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use replicant_tests::barrier;
use replicant_tests::compare::{self, CompareOptions};
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::SyncProcess;
use replicant_tests::server::RedisServer;
use replicant_tests::workload::{Workload, WorkloadConfig};

const TIMEOUT: Duration = Duration::from_secs(120);
const SOURCE_PASSWORD: &str = "src-Secret-4711";
const TARGET_PASSWORD: &str = "dst-Secret-0815";

/// `IP:PORT` from the log line that announces a listener (`marker` then `http://` or `-p`).
fn announced(sync: &mut SyncProcess, marker: &str) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(line) = sync.log().lines().find(|l| l.contains(marker)) {
            if let Some(rest) = line.split("http://").nth(1) {
                return rest.split('/').next().unwrap_or_default().to_string();
            }
            if let Some(port) = line.split(" -p ").nth(1) {
                let port = port.split_whitespace().next().unwrap_or_default();
                return format!("127.0.0.1:{port}");
            }
        }
        if let Err(e) = sync.check_running() {
            sync.fail(&e);
        }
        assert!(Instant::now() < deadline, "no {marker:?} line in the log");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET path`: (status code, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (code, body)
}

/// The value of the sample `name` (with its labels, e.g. `replicant_phase{phase="snapshot"}`).
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn poll(sync: &mut SyncProcess, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        if let Err(e) = sync.check_running() {
            sync.fail(&e);
        }
        if Instant::now() > deadline {
            sync.fail(&format!("{what}: not seen within {TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn metrics_health_and_info_tell_the_truth_and_no_secrets() {
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .password(SOURCE_PASSWORD)
        .start();
    let target = RedisServer::builder().password(TARGET_PASSWORD).start();
    replicant_tests::dataset::fill(&mut source.client());
    // The destination takes no writes for 3 s: the snapshot phase lasts long enough to see.
    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "3000", "WRITE"])
        .query(&mut target.client())
        .expect("CLIENT PAUSE");
    let mut sync = SyncProcess::builder(
        &source.url_with_password(None),
        &target.url_with_password(None),
    )
    .env("REPLICANT_SOURCE_PASSWORD", SOURCE_PASSWORD)
    .env("REPLICANT_TARGET_PASSWORD", TARGET_PASSWORD)
    .arg("--status-interval")
    .arg("1")
    .start();
    let http = announced(&mut sync, "metrics on");
    let admin = announced(&mut sync, "admin port");
    assert_eq!(get(&http, "/healthz").0, 200);

    let mut seen_snapshot = false;
    poll(&mut sync, "phase snapshot then streaming", || {
        let (_, m) = get(&http, "/metrics");
        seen_snapshot |= sample(&m, "replicant_phase{phase=\"snapshot\"}") == Some(1.0);
        seen_snapshot && sample(&m, "replicant_phase{phase=\"streaming\"}") == Some(1.0)
    });

    // Counters rise under writes.
    let (_, before) = get(&http, "/metrics");
    let workload = Workload::start(&source.url(), WorkloadConfig::default());
    let until = workload.ops() + 500;
    workload
        .wait_for_ops(until, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let bytes_before = sample(&before, "replicant_source_bytes_total").unwrap_or(0.0);
    let cmds_before = sample(&before, "replicant_source_commands_total").unwrap_or(0.0);
    poll(&mut sync, "counters rising", || {
        let (_, m) = get(&http, "/metrics");
        sample(&m, "replicant_source_bytes_total").is_some_and(|v| v > bytes_before)
            && sample(&m, "replicant_source_commands_total").is_some_and(|v| v > cmds_before)
            && m.contains("replicant_applied_commands_total{node=")
    });
    let report = workload.stop();
    report.wait_for_short_ttls();
    if let Err(e) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }

    // Writes stopped: the byte lag reaches 0, the heartbeat lag is under a second, ready.
    poll(&mut sync, "replicant_lag_bytes 0", || {
        sample(&get(&http, "/metrics").1, "replicant_lag_bytes") == Some(0.0)
    });
    poll(&mut sync, "replicant_lag_seconds under 1", || {
        sample(&get(&http, "/metrics").1, "replicant_lag_seconds").is_some_and(|l| l < 1.0)
    });
    poll(&mut sync, "/readyz 200", || get(&http, "/readyz").0 == 200);

    // The admin port speaks RESP: PING and INFO.
    let mut admin_con = redis::Client::open(format!("redis://{admin}"))
        .expect("admin URL")
        .get_connection()
        .expect("connect to the admin port");
    let pong: String = redis::cmd("PING").query(&mut admin_con).expect("PING");
    assert_eq!(pong, "PONG");
    let info: String = redis::cmd("INFO").query(&mut admin_con).expect("INFO");
    for want in [
        "# Replication",
        "phase:streaming",
        "ready:1",
        "lag_bytes:",
        "# Config",
        "source_password:(set)",
    ] {
        assert!(info.contains(want), "INFO lacks {want:?}:\n{info}");
    }
    let section: String = redis::cmd("INFO")
        .arg("spool")
        .query(&mut admin_con)
        .expect("INFO spool");
    assert!(
        section.starts_with("# Spool") && !section.contains("# Replication"),
        "{section}"
    );

    compare::assert_same_dataset_with(&source, &target, CompareOptions::live_replication());
    let (_, metrics) = get(&http, "/metrics");
    let log = sync.stop();
    for secret in [SOURCE_PASSWORD, TARGET_PASSWORD] {
        assert!(!info.contains(secret), "INFO shows a password");
        assert!(!metrics.contains(secret), "the metrics show a password");
        assert!(!log.contains(secret), "the log shows a password");
    }
    assert!(
        log.contains("snapshot progress") || log.contains("streaming"),
        "no summary line:\n{log}"
    );
}
