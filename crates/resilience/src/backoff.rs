//! Exponential backoff with FULL jitter.
//!
//! Retry `n` (0-based) waits a uniformly random time in `[0, ceiling]` where
//! `ceiling = min(max, base × 2^n)`. Full jitter (rather than "equal" or no jitter) spreads the
//! retries of many clients that failed together over the whole window, which is what keeps a
//! recovering dependency from being hit by synchronised waves (AWS architecture blog,
//! "Exponential Backoff And Jitter").

use std::time::Duration;

/// Backoff policy: the first retry's ceiling and the largest ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max }
    }

    /// The longest wait before retry `retry` (0 = the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.min(20);
        self.base
            .saturating_mul(factor)
            .min(self.max.max(self.base))
    }

    /// The wait before retry `retry` for a jitter draw in `[0, 1]` (clamped).
    pub fn delay(&self, retry: u32, draw: f64) -> Duration {
        self.ceiling(retry).mul_f64(draw.clamp(0.0, 1.0))
    }

    /// [`Backoff::delay`] with a fresh random draw.
    pub fn jittered(&self, retry: u32) -> Duration {
        self.delay(retry, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1_000));

    /// Ceilings double per retry and stop at the maximum, also for absurd retry numbers.
    #[test]
    fn ceilings_grow_exponentially_up_to_the_cap() {
        let ms: Vec<u128> = (0..6).map(|n| POLICY.ceiling(n).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(POLICY.ceiling(u32::MAX), Duration::from_millis(1_000));
    }

    /// Full jitter spans `[0, ceiling]`: the draw scales the whole ceiling.
    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        assert_eq!(POLICY.delay(2, 0.0), Duration::ZERO);
        assert_eq!(POLICY.delay(2, 1.0), Duration::from_millis(400));
        assert_eq!(POLICY.delay(2, 0.25), Duration::from_millis(100));
        assert_eq!(POLICY.delay(0, -3.0), Duration::ZERO);
        assert_eq!(POLICY.delay(0, 7.0), Duration::from_millis(100));
        let mut below_half = 0;
        for _ in 0..1000 {
            let d = POLICY.jittered(3);
            assert!(d <= POLICY.ceiling(3), "{d:?}");
            if d < POLICY.ceiling(3) / 2 {
                below_half += 1;
            }
        }
        // Uniform over [0, 800 ms]: about half the draws fall below 400 ms (equal jitter: none).
        assert!((350..=650).contains(&below_half), "{below_half}");
    }
}
