//! Every write command of the server's own command table, issued on the source while `sync`
//! follows it (`replicant_tests::workload::every_command`), into a standalone destination and
//! into a three-master cluster: afterwards the destination equals the source key by key, the
//! run is alive, nothing was counted unsplittable and no key was refused. With the OS's Redis
//! 7.0, and with Redis 7.4 and Valkey 8.0 (`../shared/servers/`) where present, each into a
//! destination of its own version.

use std::path::PathBuf;
use std::time::Duration;

use replicant_tests::barrier;
use replicant_tests::cluster::RedisCluster;
use replicant_tests::compare::{self, CompareOptions, Compared};
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::{self, SyncProcess};
use replicant_tests::server::{self, RedisServer, RedisServerBuilder};
use replicant_tests::workload::every_command::{self, Options};

const TIMEOUT: Duration = Duration::from_secs(180);

fn builder(bin: &Option<PathBuf>) -> RedisServerBuilder {
    match bin {
        Some(b) => RedisServer::builder().binary(b),
        None => RedisServer::builder(),
    }
}

/// Whether the library the workload loads last is on the server behind `con`.
fn has_library(con: &mut redis::Connection) -> bool {
    let list: redis::Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .query(con)
        .expect("FUNCTION LIST");
    format!("{list:?}").contains("eclib")
}

/// Runs the workload from a source of `bin` into `target` (whose masters are `masters`), and
/// checks the outcome.
fn every_write_command(
    bin: &Option<PathBuf>,
    target: &impl Compared,
    target_url: &str,
    db0_only: bool,
    masters: Vec<redis::Connection>,
) {
    let source = builder(bin).start();
    let aside = builder(bin).start();
    let mut sync = SyncProcess::start(&source.url(), target_url);
    if let Err(err) = barrier::wait_for_replica_online(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    let commands = every_command::write_commands(&mut source.client());
    assert!(
        commands.len() > 90,
        "{} write commands: {commands:?}",
        commands.len()
    );
    let options = Options {
        db0_only,
        migrate_to: Some(("127.0.0.1".to_string(), aside.port())),
    };
    let report = every_command::run(&source.url(), &commands, &options);
    let mut expected = commands.clone();
    if db0_only {
        // They exchange or fill other dbs, which a cluster does not have.
        expected.remove("move");
        expected.remove("swapdb");
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|c| !report.covered.contains(*c))
        .collect();
    assert!(
        missing.is_empty() && report.refused.is_empty(),
        "write commands not covered: {missing:?}; refused by the source: {:?}",
        report.refused
    );
    if let Err(err) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&err);
    }
    let differences =
        compare::dataset_differences_with(&source, target, CompareOptions::live_replication());
    if !differences.is_empty() {
        sync.fail(&compare::format_differences(&differences));
    }
    assert!(has_library(&mut source.client()));
    for mut m in masters {
        if !has_library(&mut m) {
            sync.fail("the function library is not on every destination master");
        }
    }
    if let Err(err) = sync.check_running() {
        sync.fail(&err);
    }
    let log = sync.stop();
    let stopped = replicant::log_line(&log, "sync stopped")
        .unwrap_or_else(|| panic!("no `sync stopped` line\n{}", replicant::tail(&log, 40)));
    for (name, want) in [("unsplittable", 0), ("key_errors", 0)] {
        assert_eq!(
            replicant::log_count(stopped, name),
            Some(want),
            "{name}: {stopped}\n{}",
            replicant::tail(&log, 40)
        );
    }
    println!("{} write commands covered; {stopped}", report.covered.len());
}

fn standalone(bin: Option<PathBuf>) {
    let _guard = heavy_test_guard();
    let target = builder(&bin).start();
    every_write_command(&bin, &target, &target.url(), false, vec![target.client()]);
}

fn cluster(bin: Option<PathBuf>) {
    let _guard = heavy_test_guard();
    let b = RedisCluster::builder();
    let target = match &bin {
        Some(p) => b.binary(p).start(),
        None => b.start(),
    };
    let masters = target.masters().iter().map(|m| m.client()).collect();
    every_write_command(&bin, &target, &target.url(), true, masters);
}

/// The other server of `var`/`dir`/`file`, or the test reports itself skipped.
fn other(name: &str, var: &str, dir: &str, file: &str) -> Option<PathBuf> {
    let bin = server::other_server(var, dir, file);
    if bin.is_none() {
        server::skipped(
            name,
            &format!("no {dir} server (set {var}, or ../shared/servers/{dir}/)"),
        );
    }
    bin
}

#[test]
fn every_write_command_of_redis_7_0_into_a_standalone_server() {
    standalone(None);
}

#[test]
fn every_write_command_of_redis_7_0_into_a_cluster() {
    cluster(None);
}

#[test]
fn every_write_command_of_redis_7_4_into_a_standalone_server() {
    const NAME: &str = "every_write_command_of_redis_7_4_into_a_standalone_server";
    if let Some(b) = other(NAME, "REDIS_7_4_SERVER", "redis-7.4.1", "redis-server") {
        standalone(Some(b));
    }
}

#[test]
fn every_write_command_of_redis_7_4_into_a_cluster() {
    const NAME: &str = "every_write_command_of_redis_7_4_into_a_cluster";
    if let Some(b) = other(NAME, "REDIS_7_4_SERVER", "redis-7.4.1", "redis-server") {
        cluster(Some(b));
    }
}

#[test]
fn every_write_command_of_valkey_8_0_into_a_standalone_server() {
    const NAME: &str = "every_write_command_of_valkey_8_0_into_a_standalone_server";
    if let Some(b) = other(NAME, "VALKEY_8_0_SERVER", "valkey-8.0.1", "valkey-server") {
        standalone(Some(b));
    }
}

#[test]
fn every_write_command_of_valkey_8_0_into_a_cluster() {
    const NAME: &str = "every_write_command_of_valkey_8_0_into_a_cluster";
    if let Some(b) = other(NAME, "VALKEY_8_0_SERVER", "valkey-8.0.1", "valkey-server") {
        cluster(Some(b));
    }
}
