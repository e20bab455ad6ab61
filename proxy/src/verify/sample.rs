//! `--mode sample`: which keys are checked. The choice is a hash of the key and the seed, not a
//! coin toss per scan, so both sides pick the same keys, a key found twice by `SCAN` is picked
//! both times or neither, and a run with the same seed checks the same keys again.

/// Picks about `ratio` of all keys, the same ones for the same seed.
#[derive(Debug, Clone, Copy)]
pub struct Sampler {
    /// Keys whose hash is below this are picked (`u64::MAX`: every key).
    threshold: u64,
    seed: u64,
}

impl Sampler {
    /// `ratio` in (0, 1].
    pub fn new(ratio: f64, seed: u64) -> Self {
        let threshold = if ratio >= 1.0 {
            u64::MAX
        } else {
            // Exact enough: the ratio is a share, not a count.
            (ratio.max(0.0) * u64::MAX as f64) as u64
        };
        Sampler { threshold, seed }
    }

    /// Every key.
    pub fn all() -> Self {
        Sampler::new(1.0, 0)
    }

    pub fn picks(&self, key: &[u8]) -> bool {
        self.threshold == u64::MAX || hash(self.seed, key) < self.threshold
    }
}

/// FNV-1a over the key, seeded, then a 64-bit finaliser so that similar keys spread evenly.
fn hash(seed: u64, key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_about_the_ratio_the_same_way_each_time() {
        let s = Sampler::new(0.1, 7);
        let keys: Vec<String> = (0..100_000).map(|i| format!("key:{i}")).collect();
        let picked = keys.iter().filter(|k| s.picks(k.as_bytes())).count();
        assert!((9_000..=11_000).contains(&picked), "{picked}");
        let again = keys
            .iter()
            .filter(|k| Sampler::new(0.1, 7).picks(k.as_bytes()))
            .count();
        assert_eq!(picked, again);
        let other_seed: Vec<bool> = keys[..200]
            .iter()
            .map(|k| Sampler::new(0.1, 8).picks(k.as_bytes()))
            .collect();
        let this_seed: Vec<bool> = keys[..200].iter().map(|k| s.picks(k.as_bytes())).collect();
        assert_ne!(other_seed, this_seed);
        assert!(keys.iter().all(|k| Sampler::all().picks(k.as_bytes())));
    }
}
