//! The rate limit of `--max-ops`: a token bucket per side, counting every command sent there
//! (a pipelined batch takes as many tokens as it holds commands). The bucket holds at most one
//! second of commands; a batch larger than what is left goes into debt, which the next batch
//! waits out, so the average rate stays at the limit whatever the batch sizes.

use std::time::{Duration, Instant};

/// A token bucket; a rate of 0 means no limit.
#[derive(Debug)]
pub struct RateLimit {
    per_sec: u64,
    /// Tokens available now (negative: debt to wait out before the next batch).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Instant,
}

impl RateLimit {
    pub fn new(per_sec: u64) -> Self {
        RateLimit {
            per_sec,
            tokens: per_sec as f64,
            last: Instant::now(),
        }
    }

    /// Waits until `n` more commands may be sent.
    pub async fn take(&mut self, n: usize) {
        let wait = self.reserve(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes `n` tokens at `now`; how long to wait before sending them.
    fn reserve(&mut self, n: usize, now: Instant) -> Duration {
        if self.per_sec == 0 {
            return Duration::ZERO;
        }
        let rate = self.per_sec as f64;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        let wait = if self.tokens < 0.0 {
            Duration::from_secs_f64(-self.tokens / rate)
        } else {
            Duration::ZERO
        };
        self.tokens -= n as f64;
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_waits() {
        let mut l = RateLimit::new(0);
        assert_eq!(l.reserve(1_000_000, Instant::now()), Duration::ZERO);
    }

    #[test]
    fn keeps_the_average_rate() {
        let start = Instant::now();
        let mut l = RateLimit::new(100);
        let mut now = start;
        // A full bucket first: 100 commands at once.
        assert_eq!(l.reserve(100, now), Duration::ZERO);
        // Then 1,000 commands in batches of 50 take about 10 s of waiting.
        let mut waited = Duration::ZERO;
        for _ in 0..20 {
            let w = l.reserve(50, now);
            waited += w;
            now += w;
        }
        let secs = waited.as_secs_f64();
        assert!((9.0..=10.5).contains(&secs), "{secs}");
    }

    #[test]
    fn a_big_batch_is_paid_for_by_the_next() {
        let now = Instant::now();
        let mut l = RateLimit::new(10);
        assert_eq!(l.reserve(40, now), Duration::ZERO);
        let w = l.reserve(1, now);
        assert!((2.9..=3.1).contains(&w.as_secs_f64()), "{w:?}");
    }
}
