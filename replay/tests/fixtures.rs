//! The streaming parser over every RDB fixture, fed in small and odd-sized chunks so that every
//! "need more bytes" path is taken: files that are valid parse to the end with the same events
//! whatever the chunking; the known-bad files fail with the expected error; no buffer ever
//! holds more than the bound plus one chunk.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use replay::rdb::{Event, Limits, RdbError, RdbParser};

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/rdb");
    let mut out = Vec::new();
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("fixture dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rdb") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Parses `data` fed `chunk` bytes at a time; returns a digest of the events and the largest
/// buffer seen.
fn parse(data: &[u8], chunk: usize, limits: Limits) -> Result<(Vec<String>, usize), RdbError> {
    parse_with_end(data, chunk, limits).map(|(e, m, _)| (e, m))
}

/// Like `parse`, also returning where the RDB ended (files may carry bytes after it).
fn parse_with_end(
    data: &[u8],
    chunk: usize,
    limits: Limits,
) -> Result<(Vec<String>, usize, u64), RdbError> {
    let mut p = RdbParser::new(limits);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut max_buf = 0;
    let mut pos = 0;
    loop {
        while let Some(ev) = p.next(&mut buf)? {
            events.push(match ev {
                Event::Entry(e) => format!("entry {:?} {} {}", e.meta.key, e.meta.ty, e.raw.len()),
                Event::BigStart(m) => format!("big {:?}", m.key),
                Event::BigPieces(ps) => {
                    format!("pieces {}", ps.iter().map(|p| p.count()).sum::<usize>())
                }
                other => format!("{other:?}"),
            });
        }
        if p.is_done() {
            return Ok((events, max_buf, p.offset()));
        }
        if pos >= data.len() {
            p.finish(&buf)?;
            return Ok((events, max_buf, p.offset()));
        }
        let end = (pos + chunk).min(data.len());
        buf.extend_from_slice(&data[pos..end]);
        pos = end;
        max_buf = max_buf.max(buf.len());
    }
}

fn expected_failure(name: &str) -> Option<&'static str> {
    match name {
        "invalid_chksum_v8.rdb" => Some("checksum"),
        "corrupt_ziplist.rdb" => Some("corrupt"),
        "future_v19.rdb" => Some("unsupported RDB version"),
        _ => None,
    }
}

#[test]
fn every_fixture_parses_the_same_whatever_the_chunking() {
    let mut failures = Vec::new();
    for path in fixtures() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let data = std::fs::read(&path).expect("read fixture");
        let whole = parse(&data, data.len().max(1), Limits::default());
        match (expected_failure(&name), &whole) {
            (Some(what), Err(e)) => {
                if !e.to_string().contains(what) {
                    failures.push(format!("{name}: expected an error about {what}, got: {e}"));
                }
                continue;
            }
            (Some(what), Ok(_)) => {
                failures.push(format!(
                    "{name}: expected an error about {what}, parsed fine"
                ));
                continue;
            }
            (None, Err(e)) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
            (None, Ok(_)) => {}
        }
        let whole = whole.expect("checked").0;
        for chunk in [1, 7, 4096] {
            match parse(&data, chunk, Limits::default()) {
                Ok((events, _)) if events == whole => {}
                Ok(_) => {
                    failures.push(format!("{name}: different events with {chunk}-byte chunks"))
                }
                Err(e) => failures.push(format!("{name}: {chunk}-byte chunks: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn truncated_files_fail_cleanly() {
    for path in fixtures() {
        let data = std::fs::read(&path).expect("read fixture");
        let name = path.display().to_string();
        if expected_failure(path.file_name().and_then(|n| n.to_str()).unwrap_or("")).is_some() {
            continue;
        }
        let end = parse_with_end(&data, data.len(), Limits::default())
            .map(|r| r.2 as usize)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for cut in [1, 9, end / 2, end.saturating_sub(1)] {
            if cut == 0 || cut >= end {
                continue;
            }
            match parse(&data[..cut], 4096, Limits::default()) {
                Err(RdbError::Truncated { .. }) => {}
                // A cut inside the 8-byte checksum is still "ended early"; anything else that is
                // an error must at least not be a success.
                Err(_) => {}
                Ok(_) => panic!("{name} cut at {cut} parsed as complete"),
            }
        }
    }
}

#[test]
fn big_values_are_handed_out_in_pieces_with_a_bounded_buffer() {
    // A small bound turns every multi-element value into a big one.
    let limits = Limits {
        whole_value_max: 64,
        piece_bytes: 256,
        string_max: 512 << 20,
    };
    let mut saw_big = false;
    for path in fixtures() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if expected_failure(&name).is_some() {
            continue;
        }
        let data = std::fs::read(&path).expect("read fixture");
        let (events, max_buf) = parse(&data, 64, limits).unwrap_or_else(|e| panic!("{name}: {e}"));
        saw_big |= events.iter().any(|e| e.starts_with("big "));
        // The buffer holds at most the bound, one chunk, and one unit (the largest element).
        assert!(
            max_buf <= 64 + 64 + 70_000,
            "{name}: buffer grew to {max_buf}"
        );
    }
    assert!(saw_big, "no fixture exercised the big-value path");
}
