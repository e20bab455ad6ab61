//! Waiting for a condition with a deadline.
//!
//! The harness never sleeps for a fixed time hoping that something is ready: it re-checks the
//! condition with a short, growing pause until it holds, fails, or the deadline passes. Every
//! deadline goes through [`scaled`], so a slow machine can stretch them all at once with
//! `REPLICANT_TESTS_TIMEOUT_SCALE` (a factor, default 1).

use std::thread;
use std::time::{Duration, Instant};

/// What one check of a condition found.
#[derive(Debug)]
pub enum Check<T> {
    /// The condition holds; this is the result.
    Ready(T),
    /// Not yet; check again after a pause.
    Pending,
    /// It never will (a process died, a server refused): stop waiting, with this reason.
    Failed(String),
}

/// The longest pause between two checks.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Checks `check` until it is ready or failed, or until `timeout` (scaled) has passed.
///
/// The error names `what` was awaited and, on a timeout, how long the wait was.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Check<T>,
) -> Result<T, String> {
    let timeout = scaled(timeout);
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        match check() {
            Check::Ready(value) => return Ok(value),
            Check::Failed(reason) => return Err(format!("while waiting for {what}: {reason}")),
            Check::Pending => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "timed out after {:.1} s waiting for {what}",
                timeout.as_secs_f64()
            ));
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// `timeout` multiplied by `REPLICANT_TESTS_TIMEOUT_SCALE` when that is set to a positive
/// number.
pub fn scaled(timeout: Duration) -> Duration {
    let factor = std::env::var("REPLICANT_TESTS_TIMEOUT_SCALE")
        .ok()
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|factor| factor.is_finite() && *factor > 0.0)
        .unwrap_or(1.0);
    timeout.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_after_a_few_checks() {
        let mut calls = 0;
        let value = wait_for(Duration::from_secs(5), "three calls", || {
            calls += 1;
            if calls == 3 {
                Check::Ready(calls)
            } else {
                Check::Pending
            }
        });
        assert_eq!(value, Ok(3));
    }

    #[test]
    fn failure_and_timeout_are_reported() {
        let failed = wait_for::<()>(Duration::from_secs(5), "x", || Check::Failed("gone".into()));
        assert_eq!(failed, Err("while waiting for x: gone".to_string()));
        let timed_out = wait_for::<()>(Duration::from_millis(30), "y", || Check::Pending);
        assert!(timed_out
            .expect_err("a condition that never holds must time out")
            .contains("timed out"));
    }
}
