//! What a run tells: the summary table and the first differing keys on stdout, and the JSON
//! report (`--report FILE`) listing every difference.
//!
//! In the JSON report a key is a string: printable characters (UTF-8 included) as they are, a
//! backslash as `\\`, and every other byte (control characters, bytes that are not UTF-8) as
//! `\xNN` — so the key's bytes can be recovered exactly.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use replay::display::printable;
use serde::Serialize;

use super::check::Counts;
use super::diff::{DiffKind, DiffSet};
use crate::fatal::Fatal;

/// What the run did, for the summary.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Keys `SCAN` found on the source and on the target (heartbeat keys left out).
    pub scanned: [u64; 2],
    /// Keys checked from each side's scan (all of them, except in sample mode).
    pub checked: [u64; 2],
    pub counts: Counts,
    /// Differing keys after the first pass, before any re-check.
    pub first_pass: usize,
    /// Re-check rounds run.
    pub rounds: u32,
    pub elapsed: Duration,
}

/// Everything the summary and the report show.
pub struct Outcome<'a> {
    pub mode: &'a str,
    pub source: &'a str,
    pub target: &'a str,
    pub stats: &'a Stats,
    pub diffs: &'a DiffSet,
}

/// The summary table, then the first `show` differences (one line each).
pub fn summary(o: &Outcome<'_>, show: usize) -> String {
    let s = o.stats;
    let mut t = String::new();
    let _ = writeln!(t, "replicant verify ({})", o.mode);
    let _ = writeln!(t, "  source  {}", o.source);
    let _ = writeln!(t, "  target  {}", o.target);
    let _ = writeln!(t);
    let _ = writeln!(t, "  {:<26}{:>12}{:>12}", "", "source", "target");
    let _ = writeln!(
        t,
        "  {:<26}{:>12}{:>12}",
        "keys scanned", s.scanned[0], s.scanned[1]
    );
    if s.checked != s.scanned {
        let _ = writeln!(
            t,
            "  {:<26}{:>12}{:>12}",
            "keys sampled", s.checked[0], s.checked[1]
        );
    }
    let _ = writeln!(t, "  {:<26}{:>12}", "keys compared", s.counts.compared);
    let _ = writeln!(
        t,
        "  {:<26}{:>12}",
        "  of which in chunks", s.counts.chunked
    );
    let _ = writeln!(t, "  {:<26}{:>12}", "differing keys", o.diffs.len());
    for (kind, n) in o.diffs.counts() {
        let _ = writeln!(t, "  {:<26}{:>12}", format!("  {}", kind.name()), n);
    }
    let _ = writeln!(
        t,
        "  {:<26}{:>12}",
        "first pass",
        format!("{} keys", s.first_pass)
    );
    let _ = writeln!(t, "  {:<26}{:>12}", "re-check rounds", s.rounds);
    let _ = writeln!(
        t,
        "  {:<26}{:>12}",
        "duration",
        format!("{:.1} s", s.elapsed.as_secs_f64())
    );
    let verdict = if o.diffs.is_empty() {
        "EQUAL".to_string()
    } else {
        format!("DIFFERENT ({} keys)", o.diffs.len())
    };
    let _ = writeln!(t, "  {:<26}{:>12}", "result", verdict);
    if !o.diffs.is_empty() && show > 0 {
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "differences{}:",
            if o.diffs.len() > show {
                format!(" (the first {show} keys of {})", o.diffs.len())
            } else {
                String::new()
            }
        );
        for k in o.diffs.iter().take(show) {
            for d in &k.diffs {
                let _ = writeln!(
                    t,
                    "  db{} {} {}: {}",
                    k.db,
                    printable(&k.key),
                    d.kind.name(),
                    d.detail
                );
            }
        }
    }
    t
}

#[derive(Serialize)]
struct Report<'a> {
    equal: bool,
    mode: &'a str,
    source: &'a str,
    target: &'a str,
    keys_scanned: PerSide,
    keys_checked: PerSide,
    keys_compared: u64,
    keys_compared_in_chunks: u64,
    differing_keys: usize,
    first_pass_differing_keys: usize,
    rounds: u32,
    differences_by_kind: BTreeMap<&'static str, u64>,
    duration_ms: u128,
    differences: Vec<Entry>,
}

#[derive(Serialize)]
struct PerSide {
    source: u64,
    target: u64,
}

#[derive(Serialize)]
struct Entry {
    db: u64,
    key: String,
    kind: &'static str,
    detail: String,
}

/// Fails unless `path` can be written (it is created, or emptied).
pub fn check_writable(path: &Path) -> Result<(), Fatal> {
    std::fs::File::create(path)
        .map(drop)
        .map_err(|e| Fatal::other(format!("--report {}: {e}", path.display())))
}

/// Writes the JSON report to `path`.
pub fn write_json(path: &Path, o: &Outcome<'_>) -> Result<(), Fatal> {
    let s = o.stats;
    let report = Report {
        equal: o.diffs.is_empty(),
        mode: o.mode,
        source: o.source,
        target: o.target,
        keys_scanned: PerSide {
            source: s.scanned[0],
            target: s.scanned[1],
        },
        keys_checked: PerSide {
            source: s.checked[0],
            target: s.checked[1],
        },
        keys_compared: s.counts.compared,
        keys_compared_in_chunks: s.counts.chunked,
        differing_keys: o.diffs.len(),
        first_pass_differing_keys: s.first_pass,
        rounds: s.rounds,
        differences_by_kind: o
            .diffs
            .counts()
            .into_iter()
            .map(|(k, n)| (DiffKind::name(k), n))
            .collect(),
        duration_ms: s.elapsed.as_millis(),
        differences: o
            .diffs
            .iter()
            .flat_map(|k| {
                let key = key_text(&k.key);
                k.diffs.into_iter().map(move |d| Entry {
                    db: k.db,
                    key: key.clone(),
                    kind: d.kind.name(),
                    detail: d.detail,
                })
            })
            .collect(),
    };
    let fail =
        |e: &dyn std::fmt::Display| Fatal::other(format!("--report {}: {e}", path.display()));
    let file = std::fs::File::create(path).map_err(|e| fail(&e))?;
    let mut w = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut w, &report).map_err(|e| fail(&e))?;
    w.write_all(b"\n").map_err(|e| fail(&e))?;
    w.flush().map_err(|e| fail(&e))
}

/// A key as text, reversibly (see the module doc).
pub fn key_text(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    for chunk in key.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::diff::Difference;
    use bytes::Bytes;

    #[test]
    fn keys_as_text() {
        assert_eq!(key_text(b"plain:key"), "plain:key");
        assert_eq!(key_text(b"a\\b"), "a\\\\b");
        assert_eq!(key_text(b"bin:\x00\xff\r\n"), "bin:\\x00\\xff\\x0d\\x0a");
        assert_eq!(key_text("café".as_bytes()), "café");
    }

    #[test]
    fn summary_and_report() {
        let mut diffs = DiffSet::default();
        diffs.record(
            0,
            Bytes::from_static(b"k\x01"),
            vec![Difference::new(
                DiffKind::Value,
                "source 1 elements, target 2",
            )],
        );
        let stats = Stats {
            scanned: [10, 11],
            checked: [10, 11],
            first_pass: 1,
            ..Stats::default()
        };
        let o = Outcome {
            mode: "full",
            source: "a:1",
            target: "b:2",
            stats: &stats,
            diffs: &diffs,
        };
        let text = summary(&o, 20);
        assert!(text.contains("DIFFERENT (1 keys)"), "{text}");
        assert!(
            text.contains("db0 \"k\\x01\" value: source 1 elements"),
            "{text}"
        );
        let dir = std::env::temp_dir().join(format!("verify-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("r.json");
        write_json(&path, &o).expect("written");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        assert_eq!(v["equal"], false);
        assert_eq!(v["differences"][0]["key"], "k\\x01");
        assert_eq!(v["differences"][0]["kind"], "value");
        assert_eq!(v["differences_by_kind"]["value"], 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
