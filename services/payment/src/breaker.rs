//! A circuit breaker in front of the payment gateway.
//!
//! ```text
//!   Closed ──(threshold consecutive failures)──▶ Open ──(open_for elapsed)──▶ HalfOpen
//!     ▲                                           ▲                            │ one trial call
//!     └──────────────(trial succeeds)─────────────┼────────(trial fails)───────┘
//! ```
//!
//! A failure is a transient gateway failure (connect error, timeout, 5xx, 429): the gateway is
//! unhealthy. A decline or a 404 is a healthy gateway answering, so it counts as a success.
//! While open, calls fail at once with "temporarily unavailable" and the gateway is not called,
//! which stops a sick gateway from being hammered by every retry tier of every consumer and
//! returns the consumer's partition to work quickly. In half-open only one trial call goes
//! through; if it never reports back (its task was cancelled), another trial is allowed after
//! `open_for` again.
//!
//! Time is passed in (`now`), so the state machine is tested without sleeping.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Gauge: 0 closed, 1 half-open, 2 open.
pub const BREAKER_STATE_GAUGE: &str = "nivesh_payment_gateway_breaker_state";

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_started: Instant },
}

impl BreakerState {
    fn gauge_value(&self) -> f64 {
        match self {
            BreakerState::Closed { .. } => 0.0,
            BreakerState::HalfOpen { .. } => 1.0,
            BreakerState::Open { .. } => 2.0,
        }
    }
}

/// Thread-safe breaker shared by every caller of one gateway.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<BreakerState>,
}

impl CircuitBreaker {
    /// Opens after `threshold` (at least 1) consecutive failures, for `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        metrics::gauge!(BREAKER_STATE_GAUGE).set(0.0);
        CircuitBreaker {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, state: &mut BreakerState, next: BreakerState) {
        if std::mem::discriminant(state) != std::mem::discriminant(&next) {
            tracing::warn!(from = ?state, to = ?next, "payment gateway circuit breaker changed state");
        }
        *state = next;
        metrics::gauge!(BREAKER_STATE_GAUGE).set(next.gauge_value());
    }

    /// The current state (for metrics, tests and logs).
    pub fn state(&self) -> BreakerState {
        *self.lock()
    }

    /// May a call go to the gateway now? `false`: answer "temporarily unavailable" instead.
    pub fn try_acquire(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match *state {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } if now >= until => {
                self.set(&mut state, BreakerState::HalfOpen { trial_started: now });
                true
            }
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen { trial_started } => {
                if now.saturating_duration_since(trial_started) >= self.open_for {
                    // The previous trial never reported: allow a new one.
                    self.set(&mut state, BreakerState::HalfOpen { trial_started: now });
                    true
                } else {
                    false
                }
            }
        }
    }

    /// The gateway answered (including declines): close.
    pub fn on_success(&self) {
        let mut state = self.lock();
        self.set(&mut state, BreakerState::Closed { failures: 0 });
    }

    /// A transient failure: count it, open at the threshold, re-open a failed trial.
    pub fn on_failure(&self, now: Instant) {
        let mut state = self.lock();
        let next = match *state {
            BreakerState::Closed { failures } if failures + 1 >= self.threshold => {
                BreakerState::Open {
                    until: now + self.open_for,
                }
            }
            BreakerState::Closed { failures } => BreakerState::Closed {
                failures: failures + 1,
            },
            BreakerState::HalfOpen { .. } => BreakerState::Open {
                until: now + self.open_for,
            },
            // A call admitted before the breaker opened reports late: stay open as is.
            open @ BreakerState::Open { .. } => open,
        };
        self.set(&mut state, next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_FOR: Duration = Duration::from_secs(30);

    /// It opens after exactly `threshold` consecutive failures and then refuses calls.
    #[test]
    fn opens_after_consecutive_failures() {
        let b = CircuitBreaker::new(3, OPEN_FOR);
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(b.try_acquire(t0));
            b.on_failure(t0);
        }
        assert_eq!(b.state(), BreakerState::Closed { failures: 2 });
        assert!(b.try_acquire(t0));
        b.on_failure(t0);
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t0 + OPEN_FOR
            }
        );
        assert!(!b.try_acquire(t0));
        assert!(!b.try_acquire(t0 + OPEN_FOR - Duration::from_millis(1)));
    }

    /// A success resets the count: failures must be consecutive.
    #[test]
    fn success_resets_the_count() {
        let b = CircuitBreaker::new(3, OPEN_FOR);
        let t0 = Instant::now();
        b.on_failure(t0);
        b.on_failure(t0);
        b.on_success();
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(b.state(), BreakerState::Closed { failures: 2 });
        assert!(b.try_acquire(t0));
    }

    /// After `open_for`, exactly one trial goes through; its success closes the breaker.
    #[test]
    fn half_open_allows_one_trial_then_closes() {
        let b = CircuitBreaker::new(1, OPEN_FOR);
        let t0 = Instant::now();
        b.on_failure(t0);
        let later = t0 + OPEN_FOR;
        assert!(b.try_acquire(later), "the trial call");
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen {
                trial_started: later
            }
        );
        assert!(!b.try_acquire(later), "only one trial at a time");
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        assert!(b.try_acquire(later));
    }

    /// A failed trial re-opens for another full period.
    #[test]
    fn failed_trial_reopens() {
        let b = CircuitBreaker::new(2, OPEN_FOR);
        let t0 = Instant::now();
        b.on_failure(t0);
        b.on_failure(t0);
        let t1 = t0 + OPEN_FOR + Duration::from_secs(1);
        assert!(b.try_acquire(t1));
        b.on_failure(t1);
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t1 + OPEN_FOR
            }
        );
        assert!(!b.try_acquire(t1 + Duration::from_secs(29)));
    }

    /// A trial that never reports back does not wedge the breaker half-open forever.
    #[test]
    fn abandoned_trial_is_replaced() {
        let b = CircuitBreaker::new(1, OPEN_FOR);
        let t0 = Instant::now();
        b.on_failure(t0);
        assert!(b.try_acquire(t0 + OPEN_FOR));
        assert!(!b.try_acquire(t0 + OPEN_FOR + Duration::from_secs(10)));
        assert!(b.try_acquire(t0 + OPEN_FOR * 2));
    }
}
