//! Bad input must end replicant cleanly: a non-zero exit, within a deadline, with one clear
//! line naming the cause (and, for `sync`, the side: "source" or "target"), and never a panic
//! or a multi-line error chain.
//!
//! `replicant load` gets truncated fixtures, a wrong checksum, a corrupt ziplist, random
//! bytes, an empty file, a missing file and a future RDB version; `replicant sync` gets wrong
//! passwords and a fake master that sends garbage where the RDB should be.

use std::ffi::OsString;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use replicant_tests::fixtures;
use replicant_tests::replicant::{self, RunOutput};
use replicant_tests::rng::Rng;
use replicant_tests::server::RedisServer;

/// How long replicant may take to give up on bad input (scaled).
const DEADLINE: Duration = Duration::from_secs(30);

/// Words that name a truncated input.
const TRUNCATED: &[&str] = &[
    "truncat",
    "ended early",
    "unexpected end",
    "end of file",
    "eof",
    "incomplete",
    "short read",
];
/// Words that name input that is not an RDB file at all.
const NOT_RDB: &[&str] = &["not an rdb file"];

/// Fixtures that are bad on purpose, or that replicant need not load (module data, which
/// Redis 7.0 cannot load either, in files older than RDB 11): not truncated further.
const NOT_TRUNCATED: &[&str] = &[
    "librdb/future_v19.rdb",
    "librdb/invalid_chksum_v8.rdb",
    "librdb/misc_with_stream.rdb",
    "rdbtools/redis_40_with_module.rdb",
    "rdbtools/redis_60_with_module_aux.rdb",
    "redis-assets/corrupt_empty_keys.rdb",
    "redis-assets/corrupt_ziplist.rdb",
];

/// `replicant load` of `file` must fail cleanly, naming one of `causes` (lowercase).
fn expect_rejected(target: &RedisServer, file: &Path, causes: &[&str]) -> Result<(), String> {
    // A partial load of an earlier case must not turn this one into a BUSYKEY failure.
    redis::cmd("FLUSHALL")
        .query::<()>(&mut target.client())
        .map_err(|err| format!("FLUSHALL failed: {err}"))?;
    let output = replicant::load_with_timeout(file, &target.url(), DEADLINE);
    judge_rejection(&output, causes, None)
}

/// A failed run: a non-zero exit (not a signal), in time, no panic and no multi-line error
/// chain, and one clear line naming one of the `causes` (lowercase) and, for `sync`, the
/// `side`. For `load` that line must be the last one on stderr; log lines (which go to stderr
/// too) may come before it. For `sync`, which logs while it shuts down, it may be any line.
fn judge_rejection(output: &RunOutput, causes: &[&str], side: Option<&str>) -> Result<(), String> {
    let lines: Vec<&str> = output
        .stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let names_cause = |line: &&str| {
        let line = line.to_lowercase();
        causes.iter().any(|cause| line.contains(cause))
            && side.map_or(true, |side| line.contains(side))
    };
    let problem = if output.timed_out {
        Some("did not exit before the deadline".to_string())
    } else if output.status.success() {
        Some("exited 0".to_string())
    } else if output.status.code().is_none() {
        Some("was killed by a signal".to_string())
    } else if output.stderr.contains("panicked") {
        Some("panicked".to_string())
    } else if output.stderr.contains("Caused by:") || output.stderr.contains("backtrace") {
        Some("printed a multi-line error instead of one clear line".to_string())
    } else {
        let named = match side {
            None => lines.last().is_some_and(names_cause),
            Some(_) => lines.iter().any(names_cause),
        };
        (!named).then(|| {
            let wanted = side.map_or(String::new(), |side| format!("the {side} and "));
            match side {
                None => format!("the last stderr line does not name {wanted}a cause {causes:?}"),
                Some(_) => format!("no stderr line names {wanted}a cause {causes:?}"),
            }
        })
    };
    match problem {
        None => {
            // Shown with `--nocapture`: what an operator would read.
            println!("rejected as expected: {}", lines.last().unwrap_or(&""));
            Ok(())
        }
        Some(problem) => Err(format!("{problem}; {}", output.describe())),
    }
}

/// Panics listing every failed case.
fn assert_all_ok(failures: &[String], cases: usize) {
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn truncated_fixtures_are_rejected() {
    let target = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    let mut cases = 0;
    for file in fixtures::all_rdb_files() {
        let name = fixtures::short_name(&file);
        if NOT_TRUNCATED.contains(&name.as_str()) {
            continue;
        }
        let bytes = fs::read(&file).unwrap_or_else(|err| panic!("cannot read {name}: {err}"));
        let mut points = vec![10, bytes.len() / 2, bytes.len().saturating_sub(1)];
        points.retain(|&point| point < bytes.len());
        points.sort_unstable();
        points.dedup();
        for point in points {
            cases += 1;
            let truncated = dir.path().join("truncated.rdb");
            fs::write(&truncated, &bytes[..point]).expect("write a truncated copy");
            // Cut inside the 9-byte header, "not an RDB file" is as true as "truncated".
            let causes: Vec<&str> = if point < 9 {
                TRUNCATED.iter().chain(NOT_RDB).copied().collect()
            } else {
                TRUNCATED.to_vec()
            };
            if let Err(err) = expect_rejected(&target, &truncated, &causes) {
                failures.push(format!(
                    "{name} cut at {point} of {} bytes: {err}",
                    bytes.len()
                ));
            }
        }
    }
    assert_all_ok(&failures, cases);
}

#[test]
fn wrong_checksum_is_rejected() {
    let target = RedisServer::start();
    let file = fixtures::rdb("librdb/invalid_chksum_v8.rdb");
    expect_rejected(&target, &file, &["checksum"]).unwrap_or_else(|err| panic!("{err}"));
}

#[test]
fn corrupt_ziplist_is_rejected() {
    let target = RedisServer::start();
    let file = fixtures::rdb("redis-assets/corrupt_ziplist.rdb");
    let causes = ["corrupt", "invalid", "malformed", "integrity"];
    expect_rejected(&target, &file, &causes).unwrap_or_else(|err| panic!("{err}"));
}

#[test]
fn future_version_is_rejected() {
    let target = RedisServer::start();
    let file = fixtures::rdb("librdb/future_v19.rdb");
    expect_rejected(&target, &file, &["unsupported rdb version"])
        .unwrap_or_else(|err| panic!("{err}"));
}

#[test]
fn random_bytes_empty_and_missing_files_are_rejected() {
    let target = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let random = dir.path().join("random.rdb");
    let mut bytes = Rng::new(19).bytes(4096);
    bytes[0] = b'X'; // never "REDIS" by chance
    fs::write(&random, bytes).expect("write random bytes");
    let empty = dir.path().join("empty.rdb");
    fs::write(&empty, b"").expect("write an empty file");
    let missing: PathBuf = dir.path().join("no-such-file.rdb");

    let empty_causes: Vec<&str> = ["empty"]
        .iter()
        .chain(NOT_RDB)
        .chain(TRUNCATED)
        .copied()
        .collect();
    let missing_causes = ["no such file", "not found", "cannot open", "cannot read"];
    let cases: [(&str, &Path, &[&str]); 3] = [
        ("random bytes", &random, NOT_RDB),
        ("an empty file", &empty, &empty_causes),
        ("a missing file", &missing, &missing_causes),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(what, file, causes)| {
            expect_rejected(&target, file, causes)
                .err()
                .map(|err| format!("{what}: {err}"))
        })
        .collect();
    assert_all_ok(&failures, cases.len());
}

/// Words that name a refused password.
const AUTH_FAILED: &[&str] = &["auth", "wrongpass", "password"];

/// Runs `replicant sync` until it exits by itself (or the deadline).
fn sync_until_exit(source_url: &str, target_url: &str) -> RunOutput {
    let args: Vec<OsString> = ["sync", "--source", source_url, "--target", target_url]
        .into_iter()
        .map(OsString::from)
        .collect();
    replicant::run(&args, &[], DEADLINE)
}

#[test]
fn wrong_source_password_is_fatal() {
    let source = RedisServer::builder().password("right-password").start();
    let target = RedisServer::start();
    let output = sync_until_exit(
        &source.url_with_password(Some("wrong-password")),
        &target.url(),
    );
    judge_rejection(&output, AUTH_FAILED, Some("source")).unwrap_or_else(|err| panic!("{err}"));
}

#[test]
fn wrong_target_password_is_fatal() {
    let source = RedisServer::start();
    let target = RedisServer::builder().password("right-password").start();
    let output = sync_until_exit(
        &source.url(),
        &target.url_with_password(Some("wrong-password")),
    );
    judge_rejection(&output, AUTH_FAILED, Some("target")).unwrap_or_else(|err| panic!("{err}"));
}

#[test]
fn garbage_rdb_payload_from_the_source_is_fatal() {
    let mut garbage = b"THIS IS NOT AN RDB FILE ".to_vec();
    garbage.extend(Rng::new(7).bytes(1000));
    let mut payload = format!("${}\r\n", garbage.len()).into_bytes();
    payload.extend(garbage);
    let master = FakeMaster::start(payload);
    let target = RedisServer::start();
    let output = sync_until_exit(&master.url(), &target.url());
    let causes = ["not an rdb file", "corrupt", "invalid", "malformed"];
    judge_rejection(&output, &causes, Some("source")).unwrap_or_else(|err| panic!("{err}"));
}

#[test]
fn garbage_instead_of_the_rdb_header_is_fatal() {
    let master = FakeMaster::start(b"GARBAGE \x00\x01\x02 where the $ line belongs\r\n".to_vec());
    let target = RedisServer::start();
    let output = sync_until_exit(&master.url(), &target.url());
    let causes = [
        "protocol",
        "unexpected",
        "invalid",
        "garbage",
        "expected",
        "malformed",
    ];
    judge_rejection(&output, &causes, Some("source")).unwrap_or_else(|err| panic!("{err}"));
}

/// A fake master on a loopback port: a real server cannot be made to send garbage, so this
/// listener plays one. It answers the replica handshake (`+PONG`, `+OK` to AUTH and REPLCONF,
/// `+FULLRESYNC <40 hex> 0` to PSYNC or SYNC), then sends `payload` and keeps the connection
/// open, reading and ignoring whatever comes, so that a replica that waits for more hangs
/// (and the test's deadline catches it) instead of seeing the connection close.
struct FakeMaster {
    port: u16,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeMaster {
    fn start(payload: Vec<u8>) -> FakeMaster {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || accept_loop(&listener, &payload, &stop))
        };
        FakeMaster {
            port,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for FakeMaster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Polls: accepts connections until `stop`, serving each on its own thread.
fn accept_loop(listener: &TcpListener, payload: &[u8], stop: &Arc<AtomicBool>) {
    let mut connections = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let payload = payload.to_vec();
                let stop = Arc::clone(stop);
                connections.push(thread::spawn(move || serve(stream, &payload, &stop)));
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(_) => break,
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

fn serve(mut stream: TcpStream, payload: &[u8], stop: &AtomicBool) {
    if stream.set_nonblocking(false).is_err()
        || stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .is_err()
    {
        return;
    }
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue
            }
            Err(_) => return,
        }
        while let Some((command, used)) = parse_command(&buffer) {
            buffer.drain(..used);
            let name = command
                .first()
                .map(|word| String::from_utf8_lossy(word).to_uppercase())
                .unwrap_or_default();
            let reply: Vec<u8> = match name.as_str() {
                "" => continue, // a bare newline: a replica's keepalive
                "PING" => b"+PONG\r\n".to_vec(),
                "PSYNC" | "SYNC" => {
                    let mut reply =
                        b"+FULLRESYNC 0123456789abcdef0123456789abcdef01234567 0\r\n".to_vec();
                    reply.extend_from_slice(payload);
                    reply
                }
                "INFO" => {
                    let info = "# Server\r\nredis_version:7.0.15\r\n";
                    format!("${}\r\n{info}\r\n", info.len()).into_bytes()
                }
                // AUTH, REPLCONF, and anything else a replica might send first.
                _ => b"+OK\r\n".to_vec(),
            };
            if stream.write_all(&reply).is_err() {
                return;
            }
        }
    }
}

/// One command from the front of `buffer`: a RESP array of bulk strings, or an inline line.
/// Returns it with the number of bytes it used, or `None` if it is not complete yet.
fn parse_command(buffer: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    let line_end = |from: usize| -> Option<usize> {
        buffer[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| from + i)
    };
    let first_end = line_end(0)?;
    let first = trim_cr(&buffer[..first_end]);
    let Some(count) = first.strip_prefix(b"*") else {
        let words = first
            .split(|&b| b == b' ')
            .filter(|word| !word.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        return Some((words, first_end + 1));
    };
    let count: usize = std::str::from_utf8(count).ok()?.parse().ok()?;
    let mut at = first_end + 1;
    let mut words = Vec::with_capacity(count);
    for _ in 0..count {
        let end = line_end(at)?;
        let len: usize = std::str::from_utf8(trim_cr(&buffer[at..end]).strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        let start = end + 1;
        if buffer.len() < start + len + 2 {
            return None;
        }
        words.push(buffer[start..start + len].to_vec());
        at = start + len + 2;
    }
    Some((words, at))
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
