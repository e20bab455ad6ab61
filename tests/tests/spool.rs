//! A slow destination does not make the source drop replicant: with the source's output buffer
//! limit for replicas at `4mb 2mb 10`, the destination is paused for 60 s (`CLIENT PAUSE …
//! WRITE`) while the source takes more than 50 MB of writes. replicant keeps reading the source
//! at line rate into its spool (memory, then files in the state directory), the source never
//! drops the link (`sync_full` stays 1, no output-buffer disconnect in its log), the spool
//! drains once the destination is back, and the destination equals the source.

use std::time::{Duration, Instant};

use replicant_tests::barrier;
use replicant_tests::compare;
use replicant_tests::heavy_test_guard;
use replicant_tests::replicant::SyncProcess;
use replicant_tests::server::RedisServer;

const TIMEOUT: Duration = Duration::from_secs(180);
const PAUSE: Duration = Duration::from_secs(60);

fn info_field(server: &RedisServer, section: &str, name: &str) -> u64 {
    barrier::info_number(server, section, name)
}

#[test]
fn a_paused_destination_fills_the_spool_not_the_sources_buffer() {
    let _guard = heavy_test_guard();
    let source = RedisServer::builder()
        .config("repl-diskless-sync-delay", "0")
        .config("client-output-buffer-limit", "replica 4mb 2mb 10")
        .start();
    let target = RedisServer::start();
    let state = tempfile::tempdir().expect("state dir");
    let mut con = source.client();
    let _: () = redis::cmd("SET")
        .arg("before")
        .arg("1")
        .query(&mut con)
        .expect("SET");
    let mut sync = SyncProcess::builder(&source.url(), &target.url())
        .arg("--state-dir")
        .arg(state.path().to_str().expect("utf-8 temp path"))
        .start();
    if let Err(e) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    let pause_ms = PAUSE.as_millis().to_string();
    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", pause_ms.as_str(), "WRITE"])
        .query(&mut target.client())
        .expect("CLIENT PAUSE");
    let paused = Instant::now();
    // 60 MB of writes over the first 15 s of the pause (4 MB/s, past what the output buffer
    // limit lets the source hold for a replica that stops reading), in pipelined batches of
    // 100 SETs of 10 KB; the source must keep its replica all along.
    let value = "v".repeat(10 * 1024);
    let mut spilled = false;
    let mut batch = 0u32;
    while paused.elapsed() < PAUSE {
        if batch < 60 && paused.elapsed() >= Duration::from_millis(250) * batch {
            let mut pipe = redis::pipe();
            for i in 0..100 {
                pipe.cmd("SET")
                    .arg(format!("big:{batch}:{i}"))
                    .arg(&value)
                    .ignore();
            }
            let _: () = pipe.query(&mut con).expect("pipelined SETs");
            batch += 1;
        }
        if let Err(e) = sync.check_running() {
            sync.fail(&e);
        }
        if info_field(&source, "replication", "connected_slaves") != 1 {
            sync.fail(&format!(
                "the source dropped replicant {:?} into the pause\n--- source log ---\n{}",
                paused.elapsed(),
                source.log_tail(20)
            ));
        }
        spilled |= sync.log().contains("spooling the stream to disk");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(batch, 60, "all 60 MB written during the pause");
    assert!(
        spilled,
        "the spool never went to disk:\n{}",
        sync.log_tail(20)
    );
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query(&mut target.client())
        .expect("CLIENT UNPAUSE");
    if let Err(e) = barrier::wait_for_sync(&source, TIMEOUT, || sync.check_running()) {
        sync.fail(&e);
    }
    assert!(
        sync.log().contains("spool drained"),
        "{}",
        sync.log_tail(20)
    );
    if info_field(&source, "stats", "sync_full") != 1 {
        sync.fail(&format!(
            "the source copied again\n--- source log ---\n{}",
            source.log_tail(30)
        ));
    }
    let source_log = std::fs::read_to_string(source.dir().join("redis.log")).unwrap_or_default();
    assert!(
        !source_log.contains("output buffer limits"),
        "the source closed a client for its output buffer:\n{}",
        source.log_tail(20)
    );
    compare::assert_same_dataset(&source, &target);
    let spool_files = std::fs::read_dir(state.path().join("spool"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(spool_files, 0, "the spool's files are gone once drained");
    sync.stop();
}
