//! Harness for replicant's end-to-end tests.
//!
//! Every test runs real `redis-server` processes (Redis 7.0 from the OS packages) on free
//! loopback ports in temporary directories, drives the `replicant` binary as a child process,
//! and judges the result by comparing the destination with the source key by key. The harness
//! does not link replicant's crates: it tests the binary through its command-line contract
//! only, so it keeps compiling while the tool is being rewritten.
//!
//! # Layout
//!
//! - [`server`]: `RedisServer`, a builder that starts a `redis-server` (optionally loading an
//!   RDB file, optionally with TLS on a second port) and kills it on drop.
//! - [`replicant`]: finds the `replicant` binary; runs `replicant sync` as a supervised child
//!   and `replicant load` and `replicant verify` to completion, all under deadlines.
//! - [`barrier`]: reads the source's `INFO replication` and waits until the replica (replicant)
//!   has acknowledged everything the source wrote: the sync barrier.
//! - [`cluster`]: `RedisCluster`, N masters (and R replicas each) made with `redis-cli
//!   --cluster create`, killed on drop; key slots (CRC16 with hash tags) and slot maps;
//!   topology changes (reshard, rebalance, add-node, failover, a killed master).
//! - [`compare`]: `assert_same_dataset` and the list of differences behind it (value diffs in
//!   `compare/values.rs`, stream metadata in `compare/streams.rs`); either side a standalone
//!   server or a cluster (`compare/side.rs`).
//! - [`display`]: replies and binary bytes as readable text for failure messages.
//! - [`workload`]: a deterministic mixed write workload on a thread, at a bounded rate.
//! - [`dataset`]: fills a server with every type and encoding Redis 7.0 has, big keys included.
//! - [`manifest`]: reads the `*.manifest.txt` files that describe the server-written fixtures.
//! - [`fixtures`]: where the RDB fixtures live and what their headers say.
//! - [`relay`]: a TCP relay between replicant and a server that a test can cut (a network
//!   fault the server did not cause).
//! - [`netns`]: a network namespace joined by veth pairs, to run replicant across a real link
//!   that a test can cut or slow down (`ip link … down`, `tc … netem`).
//! - [`tls`]: certificates made for a test (CA, server, client, expired, wrong name).
//! - [`wait`]: polling with deadlines (no fixed sleeps anywhere) and the timeout scale.
//! - [`rng`]: a tiny seeded generator, so workloads and random inputs repeat exactly.
//!
//! The end-to-end tests themselves are in `tests/` beside this folder; see the README there.

pub mod barrier;
pub mod cluster;
pub mod compare;
pub mod dataset;
pub mod display;
pub mod fixtures;
pub mod manifest;
pub mod netns;
pub mod relay;
pub mod replicant;
pub mod rng;
pub mod server;
pub mod tls;
pub mod wait;
pub mod workload;

use std::sync::{Mutex, MutexGuard};

/// Serialises the heavy tests of one test binary (big datasets, live syncs). `cargo test` runs
/// the tests of a binary on parallel threads; on a 2-core machine two of these at once only
/// make both slower and their deadlines tighter.
pub fn heavy_test_guard() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    // A test that panicked while holding the guard poisons it; the next test may still run.
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
