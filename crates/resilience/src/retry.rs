//! Retries: only for failures the caller classifies as transient (and only for idempotent
//! operations: the caller decides that too, e.g. the payment gateway carries an
//! `Idempotency-Key`), with exponential backoff and full jitter ([`crate::backoff`]), bounded by
//! a retry budget and by the task's deadline ([`crate::deadline`]).
//!
//! The budget is tower's [`TpsBudget`]: every original call deposits one token, every retry
//! withdraws `1 / ratio` tokens, plus a small floor (`min_per_sec`) so a quiet client can still
//! retry at all. With `ratio = 0.1` retries add at most ~10 % load on top of the calls made in
//! the budget's window (`ttl`), however many attempts each call is configured for: when a
//! dependency is down for everyone, the budget (not `max_attempts`) bounds the load.
//!
//! Two forms: [`RetryPolicy::run`] for calls that are not tower services (a `reqwest` request
//! whose answer needs classifying), and [`BudgetedRetry`], a [`tower::retry::Policy`] for tower
//! clients.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tower::retry::budget::{Budget as _, TpsBudget};

use crate::backoff::Backoff;

/// Counter: retries made, by `dependency`.
pub const RETRIES_TOTAL: &str = "nivesh_retries_total";
/// Counter: retries NOT made because the budget was spent, by `dependency`.
pub const RETRY_BUDGET_EXHAUSTED_TOTAL: &str = "nivesh_retry_budget_exhausted_total";

/// A retry budget shared by every caller of one dependency. Cheap to clone.
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<TpsBudget>,
}

impl std::fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryBudget").finish_non_exhaustive()
    }
}

impl RetryBudget {
    /// `ratio` retries per original call over the last `ttl` (1 to 60 s), plus `min_per_sec`.
    pub fn new(ttl: Duration, min_per_sec: u32, ratio: f32) -> Self {
        let ttl = ttl.clamp(Duration::from_secs(1), Duration::from_secs(60));
        RetryBudget {
            inner: Arc::new(TpsBudget::new(ttl, min_per_sec, ratio.clamp(0.0, 1000.0))),
        }
    }

    /// An original call was made.
    pub fn deposit(&self) {
        self.inner.deposit();
    }

    /// May one retry be made now? Takes its cost from the budget when it may.
    pub fn withdraw(&self) -> bool {
        self.inner.withdraw()
    }
}

impl Default for RetryBudget {
    /// 10 s window, 1 retry per second floor, 10 % extra load.
    fn default() -> Self {
        RetryBudget::new(Duration::from_secs(10), 1, 0.1)
    }
}

/// Why a retry was or was not made (what [`RetryPolicy::run`] tells its `on_retry` hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// `max_attempts` reached.
    Attempts,
    /// The retry budget is spent.
    Budget,
    /// The backoff would outlive the task's deadline.
    Deadline,
}

/// Retries for one dependency.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    dependency: String,
    max_attempts: u32,
    backoff: Backoff,
    budget: RetryBudget,
}

impl RetryPolicy {
    /// `max_attempts` counts the first call (1 = no retry).
    pub fn new(
        dependency: impl Into<String>,
        max_attempts: u32,
        backoff: Backoff,
        budget: RetryBudget,
    ) -> Self {
        RetryPolicy {
            dependency: dependency.into(),
            max_attempts: max_attempts.max(1),
            backoff,
            budget,
        }
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub fn budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// Whether retry number `retry` (0 = first retry) may happen, and the wait before it.
    fn next(&self, retry: u32) -> Result<Duration, GiveUp> {
        if retry + 1 >= self.max_attempts {
            return Err(GiveUp::Attempts);
        }
        let delay = self.backoff.jittered(retry);
        if crate::deadline::remaining().is_some_and(|left| left <= delay) {
            return Err(GiveUp::Deadline);
        }
        if !self.budget.withdraw() {
            metrics::counter!(RETRY_BUDGET_EXHAUSTED_TOTAL, "dependency" => self.dependency.clone())
                .increment(1);
            return Err(GiveUp::Budget);
        }
        metrics::counter!(RETRIES_TOTAL, "dependency" => self.dependency.clone()).increment(1);
        Ok(delay)
    }

    /// Call `op(attempt)` (attempt 0 first) until it succeeds, fails with an error `retryable`
    /// rejects, or the attempts, the budget or the deadline run out; returns the last result.
    pub async fn run<T, E, F, Fut>(&self, mut op: F, retryable: impl Fn(&E) -> bool) -> Result<T, E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.budget.deposit();
        let mut attempt = 0;
        loop {
            match op(attempt).await {
                Ok(v) => return Ok(v),
                Err(e) if !retryable(&e) => return Err(e),
                Err(e) => match self.next(attempt) {
                    Ok(delay) => {
                        tracing::debug!(dependency = %self.dependency, attempt, ?delay, "retrying");
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    Err(why) => {
                        tracing::debug!(dependency = %self.dependency, attempt, ?why, "not retrying");
                        return Err(e);
                    }
                },
            }
        }
    }
}

/// A [`tower::retry::Policy`]: retries results `retryable` accepts, within [`RetryPolicy`]'s
/// attempts, budget and deadline. Requests must be `Clone` (idempotent requests only).
pub struct BudgetedRetry<C> {
    policy: RetryPolicy,
    retryable: Arc<C>,
    attempt: u32,
}

impl<C> Clone for BudgetedRetry<C> {
    fn clone(&self) -> Self {
        BudgetedRetry {
            policy: self.policy.clone(),
            retryable: self.retryable.clone(),
            attempt: self.attempt,
        }
    }
}

impl<C> BudgetedRetry<C> {
    pub fn new(policy: RetryPolicy, retryable: C) -> Self {
        BudgetedRetry {
            policy,
            retryable: Arc::new(retryable),
            attempt: 0,
        }
    }
}

impl<C, Req, Res, E> tower::retry::Policy<Req, Res, E> for BudgetedRetry<C>
where
    C: Fn(&Result<Res, E>) -> bool,
    Req: Clone,
{
    type Future = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn retry(&mut self, _req: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        // Called on the per-request clone after every attempt; the first call is the deposit.
        if self.attempt == 0 {
            self.policy.budget.deposit();
        }
        if !(self.retryable)(result) {
            return None;
        }
        let delay = self.policy.next(self.attempt).ok()?;
        self.attempt += 1;
        Some(Box::pin(tokio::time::sleep(delay)))
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use tower::{ServiceBuilder, ServiceExt as _, service_fn};

    fn policy(max_attempts: u32, budget: RetryBudget) -> RetryPolicy {
        RetryPolicy::new(
            "test",
            max_attempts,
            Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
            budget,
        )
    }

    /// Transient failures are retried up to max_attempts with waits within the backoff
    /// ceilings; a permanent failure is returned at once.
    #[tokio::test(start_paused = true)]
    async fn retries_transient_failures_only_within_the_ceilings() {
        let p = policy(4, RetryBudget::new(Duration::from_secs(10), 100, 0.1));
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let out: Result<(), &str> = p
            .run(
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err("503") }
                },
                |e| *e == "503",
            )
            .await;
        assert_eq!(out, Err("503"));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Full jitter: the 3 waits are within [0, 100 + 200 + 400 ms].
        assert!(
            started.elapsed() <= Duration::from_millis(700),
            "{:?}",
            started.elapsed()
        );

        calls.store(0, Ordering::SeqCst);
        let out: Result<(), &str> = p
            .run(
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err("400") }
                },
                |e| *e == "503",
            )
            .await;
        assert_eq!(out, Err("400"));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a permanent failure is not retried"
        );

        calls.store(0, Ordering::SeqCst);
        let out: Result<u32, &str> = p
            .run(
                |attempt| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async move { if attempt < 2 { Err("503") } else { Ok(attempt) } }
                },
                |e| *e == "503",
            )
            .await;
        assert_eq!(out, Ok(2));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    /// With a dependency failing every call, the budget caps the total attempts at about
    /// calls × (1 + ratio) + the floor, even though each call may make 3 attempts.
    #[tokio::test(start_paused = true)]
    async fn budget_caps_retry_load_at_ten_percent() {
        let p = policy(3, RetryBudget::new(Duration::from_secs(10), 1, 0.1));
        let attempts = AtomicU32::new(0);
        let calls = 200;
        for _ in 0..calls {
            let _: Result<(), ()> = p
                .run(
                    |_| {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        async { Err(()) }
                    },
                    |_| true,
                )
                .await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let total = attempts.load(Ordering::SeqCst);
        // 200 calls; 10 % is 20 retries, plus the floor of 1/s over the (at most ~10 s) window.
        assert!(total >= calls, "{total}");
        assert!(
            total <= calls + calls / 10 + 15,
            "{total} attempts for {calls} calls"
        );
        // Without the budget it would have been 3 attempts per call.
        assert!(total < calls * 2, "{total}");
    }

    /// A backoff that would outlive the deadline is not waited for.
    #[tokio::test(start_paused = true)]
    async fn deadline_stops_retrying() {
        let p = RetryPolicy::new(
            "test",
            5,
            Backoff::new(Duration::from_secs(10), Duration::from_secs(10)),
            RetryBudget::new(Duration::from_secs(10), 100, 1.0),
        );
        let attempts = AtomicU32::new(0);
        // Zero-length draws never exceed any deadline, so make the deadline already spent.
        crate::deadline::within(Duration::ZERO, async {
            let _: Result<(), ()> = p
                .run(
                    |_| {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        async { Err(()) }
                    },
                    |_| true,
                )
                .await;
        })
        .await;
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    /// The tower policy retries a flaky service and deposits once per request.
    #[tokio::test(start_paused = true)]
    async fn tower_policy_retries_and_respects_the_budget() {
        let attempts = Arc::new(AtomicU32::new(0));
        let a = attempts.clone();
        let svc = service_fn(move |n: u32| {
            let a = a.clone();
            async move {
                let k = a.fetch_add(1, Ordering::SeqCst);
                if k % 2 == 0 {
                    Err::<u32, &str>("flaky")
                } else {
                    Ok(n)
                }
            }
        });
        let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.5);
        let p = BudgetedRetry::new(policy(3, budget), |r: &Result<u32, &str>| r.is_err());
        let client = ServiceBuilder::new()
            .layer(tower::retry::RetryLayer::new(p))
            .service(svc);
        // The budget starts empty (floor 0): the first request cannot retry.
        assert_eq!(client.clone().oneshot(7).await, Err("flaky"));
        // Deposits of 0.5 retry each: the next request (attempt 1 succeeds) deposits, and a
        // later failing one may now retry once.
        assert_eq!(client.clone().oneshot(8).await, Ok(8));
        assert_eq!(client.clone().oneshot(9).await, Ok(9));
        assert_eq!(attempts.load(Ordering::SeqCst), 4);
    }
}
