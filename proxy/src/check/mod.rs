//! `replicant check`: before a migration, the questions an operator would ask of the pair of
//! servers, each answered pass, warn or fail with the reason — connectivity and auth, PSYNC
//! permission, versions and how values will travel, an empty destination, memory headroom,
//! the eviction policy, the source's replication buffers, a cluster destination's slots and
//! dbs. [`probes`] asks the servers; this module runs them, prints the table and gives the
//! exit code (0 all pass, 1 warnings, 2 a failure). `sync` runs the same checks first.

pub mod probes;

use std::fmt;

use crate::cli::SyncArgs;
use crate::config::Side;
use crate::fatal::Fatal;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        })
    }
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Finding {
    pub name: &'static str,
    pub verdict: Verdict,
    pub reason: String,
    /// The side the finding concerns, if one.
    pub side: Option<Side>,
}

impl Finding {
    pub fn new(name: &'static str, verdict: Verdict, reason: impl Into<String>) -> Self {
        Finding {
            name,
            verdict,
            reason: reason.into(),
            side: None,
        }
    }
}

/// The table, aligned, one finding per line.
pub fn table(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{:<4}  {:<width$}  {}\n",
            f.verdict.to_string(),
            f.name,
            f.reason.replace('\n', " ")
        ));
    }
    out
}

/// The worst verdict.
pub fn worst(findings: &[Finding]) -> Verdict {
    findings
        .iter()
        .map(|f| f.verdict)
        .max()
        .unwrap_or(Verdict::Pass)
}

/// `replicant check`: prints the table; the exit code says the worst verdict.
pub async fn run(args: &SyncArgs) -> Result<u8, Fatal> {
    let findings = probes::all(args, false).await?;
    print!("{}", table(&findings));
    let w = worst(&findings);
    println!(
        "{}",
        match w {
            Verdict::Pass => "all checks pass",
            Verdict::Warn => "checks pass with warnings",
            Verdict::Fail => "a check failed: fix it before migrating",
        }
    );
    Ok(match w {
        Verdict::Pass => 0,
        Verdict::Warn => 1,
        Verdict::Fail => 2,
    })
}

/// Before `sync`: warnings are logged; the first failure stops the run, naming its side.
/// `resuming`: the destination holds an earlier run's copy (its keys are expected).
pub async fn before_sync(args: &SyncArgs, resuming: bool) -> Result<(), Fatal> {
    let findings = probes::all(args, resuming).await?;
    for f in &findings {
        match f.verdict {
            Verdict::Pass => tracing::debug!(check = f.name, reason = %f.reason, "check passed"),
            Verdict::Warn => tracing::warn!(check = f.name, reason = %f.reason, "check"),
            Verdict::Fail => {}
        }
    }
    match findings.into_iter().find(|f| f.verdict == Verdict::Fail) {
        // A side that cannot be reached: the connection's own error says it all.
        Some(f) if f.name.ends_with("connection") => Err(Fatal {
            side: f.side,
            what: f.reason,
        }),
        Some(f) => Err(Fatal {
            side: f.side,
            what: format!(
                "check {:?} failed: {} (see `replicant check`; --skip-check skips the checks)",
                f.name, f.reason
            ),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_and_table() {
        let f = vec![
            Finding::new("a", Verdict::Pass, "fine"),
            Finding::new("longer name", Verdict::Warn, "hm"),
        ];
        assert_eq!(worst(&f), Verdict::Warn);
        let t = table(&f);
        assert!(t.contains("pass  a            fine"), "{t}");
        assert!(t.contains("warn  longer name  hm"), "{t}");
        assert_eq!(worst(&[]), Verdict::Pass);
    }
}
