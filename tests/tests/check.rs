//! `replicant check` answers before a migration: a good pair passes (exit 0); a destination
//! that may evict (`maxmemory-policy allkeys-lru`), a destination that is not empty, and a
//! source user without permission to PSYNC (asked with `ACL DRYRUN`) each fail (exit 2) with the reason in the table;
//! and `sync` runs the same checks first: it refuses a non-empty destination at once, unless
//! `--skip-check`.

use std::ffi::OsString;
use std::time::Duration;

use replicant_tests::barrier;
use replicant_tests::replicant::{self, RunOutput, SyncProcess};
use replicant_tests::server::RedisServer;

const DEADLINE: Duration = Duration::from_secs(60);

fn check(source_url: &str, target_url: &str) -> RunOutput {
    let args: Vec<OsString> = ["check", "--source", source_url, "--target", target_url]
        .into_iter()
        .map(OsString::from)
        .collect();
    let out = replicant::run(&args, &[], DEADLINE);
    assert!(!out.timed_out, "{}", out.describe());
    assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    out
}

fn source() -> RedisServer {
    RedisServer::builder()
        .config("repl-backlog-size", "64mb")
        .start()
}

fn row<'a>(out: &'a RunOutput, name: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("no {name:?} row:\n{}", out.describe()))
}

#[test]
fn a_good_pair_passes() {
    let (source, target) = (source(), RedisServer::start());
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut source.client())
        .expect("SET");
    let out = check(&source.url(), &target.url());
    assert_eq!(out.status.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains("all checks pass"), "{}", out.describe());
    assert!(row(&out, "source PSYNC permission").starts_with("pass"));
    assert!(row(&out, "versions").contains("RESTORE"));
}

#[test]
fn an_evicting_destination_fails() {
    let source = source();
    let target = RedisServer::builder()
        .config("maxmemory-policy", "allkeys-lru")
        .start();
    let out = check(&source.url(), &target.url());
    assert_eq!(out.status.code(), Some(2), "{}", out.describe());
    let r = row(&out, "target maxmemory-policy");
    assert!(
        r.starts_with("FAIL") && r.contains("allkeys-lru") && r.contains("evict"),
        "{r}"
    );
}

#[test]
fn a_destination_with_keys_fails() {
    let (source, target) = (source(), RedisServer::start());
    let _: () = redis::cmd("SET")
        .arg("there")
        .arg("already")
        .query(&mut target.client())
        .expect("SET");
    let out = check(&source.url(), &target.url());
    assert_eq!(out.status.code(), Some(2), "{}", out.describe());
    let r = row(&out, "target empty");
    assert!(r.starts_with("FAIL") && r.contains("1 keys"), "{r}");
}

#[test]
fn a_source_user_without_psync_fails() {
    let (source, target) = (source(), RedisServer::start());
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "nopsync", "on", ">pw", "~*", "+@all", "-psync"])
        .query(&mut source.client())
        .expect("ACL SETUSER");
    let url = format!("redis://nopsync:pw@127.0.0.1:{}", source.port());
    let out = check(&url, &target.url());
    assert_eq!(out.status.code(), Some(2), "{}", out.describe());
    let r = row(&out, "source PSYNC permission");
    assert!(
        r.starts_with("FAIL") && r.contains("no permissions") && r.contains("psync"),
        "{r}"
    );
    assert!(
        !out.stdout.contains("pw") || !out.stdout.contains(":pw@"),
        "no password shown"
    );
    // The probe did not start a replication.
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut source.client())
        .expect("INFO");
    assert!(info.contains("sync_full:0"), "{info}");
}

#[test]
fn sync_checks_first_and_skip_check_goes_on() {
    let (source, target) = (source(), RedisServer::start());
    let _: () = redis::cmd("SET")
        .arg("there")
        .arg("already")
        .query(&mut target.client())
        .expect("SET");
    let args: Vec<OsString> = ["sync", "--source", &source.url(), "--target", &target.url()]
        .into_iter()
        .map(OsString::from)
        .collect();
    let out = replicant::run(&args, &[], DEADLINE);
    assert!(
        !out.timed_out && out.status.code() == Some(1),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr
            .contains("replicant: target: check \"target empty\" failed"),
        "{}",
        out.describe()
    );
    let mut sync = SyncProcess::builder(&source.url(), &target.url())
        .arg("--skip-check")
        .start();
    if let Err(e) = barrier::wait_for_sync(&source, DEADLINE, || sync.check_running()) {
        sync.fail(&e);
    }
    sync.stop();
}
