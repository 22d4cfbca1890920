//! Exponential backoff with jitter for in-call retries of gateway requests.
//!
//! Retry `n` (0-based) waits a random time in `[ceiling/2, ceiling]` where
//! `ceiling = min(max, base × 2^n)` ("equal jitter"): the exponential growth spaces retries out,
//! the random half keeps many clients that failed together from retrying together, and the
//! guaranteed half keeps a retry from firing immediately.

use std::time::Duration;

/// Backoff policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The longest wait before retry `retry` (0 = the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.min(20);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait before retry `retry` for a jitter draw in `[0, 1]` (clamped).
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let ceiling = self.ceiling(retry);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// [`Backoff::delay`] with a fresh random draw.
    pub fn jittered(&self, retry: u32) -> Duration {
        self.delay(retry, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_millis(1_000),
    };

    /// Ceilings double per retry and stop at the maximum, also for absurd retry numbers.
    #[test]
    fn ceilings_grow_exponentially_up_to_the_cap() {
        let ms: Vec<u128> = (0..6).map(|n| POLICY.ceiling(n).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(POLICY.ceiling(u32::MAX), Duration::from_millis(1_000));
    }

    /// The jitter spans the upper half of the ceiling, never more, never less.
    #[test]
    fn jitter_stays_within_half_and_full_ceiling() {
        assert_eq!(POLICY.delay(2, 0.0), Duration::from_millis(200));
        assert_eq!(POLICY.delay(2, 1.0), Duration::from_millis(400));
        assert_eq!(POLICY.delay(2, 0.5), Duration::from_millis(300));
        // Out-of-range draws are clamped.
        assert_eq!(POLICY.delay(0, -3.0), Duration::from_millis(50));
        assert_eq!(POLICY.delay(0, 7.0), Duration::from_millis(100));
        for n in 0..8 {
            for _ in 0..200 {
                let d = POLICY.jittered(n);
                let c = POLICY.ceiling(n);
                assert!(
                    d >= c / 2 && d <= c,
                    "retry {n}: {d:?} outside [{:?}, {c:?}]",
                    c / 2
                );
            }
        }
    }
}
