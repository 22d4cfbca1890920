//! A circuit breaker per dependency with failure-rate AND slow-call-rate thresholds over a
//! count-based sliding window, and a half-open state that lets N trial calls through.
//!
//! ```text
//!            failure rate >= F or slow-call rate >= S
//!            (over the last `window` calls, once `minimum_calls` were recorded)
//!   Closed ─────────────────────────────────────────────▶ Open ──(open_for elapsed)──▶ HalfOpen
//!     ▲                                                    ▲                             │
//!     │                                                    └── trials over a threshold ──┤
//!     └──────────────── the `half_open_calls` trials are under both thresholds ──────────┘
//! ```
//!
//! - A *failure* is what the caller says is one (a transient failure of the dependency:
//!   connect error, timeout, 5xx, 429). A business refusal (a decline, a 404) is the dependency
//!   answering: the caller records it as a success.
//! - A *slow call* took at least `slow_call_duration`, whatever its outcome: a dependency that
//!   answers in 5 s is as unusable as one that fails, and the slow-call rate catches it before
//!   the timeouts do.
//! - While open, [`CircuitBreaker::try_acquire`] refuses at once ([`CircuitOpen`]): the caller
//!   answers "temporarily unavailable" and the dependency is left alone to recover.
//! - In half-open exactly `half_open_calls` calls are admitted; a trial whose permit is dropped
//!   without a verdict (its task was cancelled) frees its slot for another trial.
//! - The state is the gauge `nivesh_circuit_breaker_state{dependency}` (0 closed, 1 half-open,
//!   2 open); transitions and refusals are counters.
//!
//! Time is `tokio::time::Instant`, so tests run on paused time.
//!
//! Why not tower-resilience's breaker: see docs/resilience.md ("Crates evaluated").

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::{BoxError, Layer, Service};

/// Gauge: 0 closed, 1 half-open, 2 open; label `dependency`.
pub const BREAKER_STATE: &str = "nivesh_circuit_breaker_state";
/// Counter: state changes; labels `dependency`, `to`.
pub const BREAKER_TRANSITIONS: &str = "nivesh_circuit_breaker_transitions_total";
/// Counter: calls refused without reaching the dependency; label `dependency`.
pub const BREAKER_REJECTED: &str = "nivesh_circuit_breaker_rejected_total";

/// Thresholds and timings of one breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Open when at least this share of the window failed (0 < x <= 1).
    pub failure_rate_threshold: f64,
    /// Open when at least this share of the window was slow (0 < x <= 1).
    pub slow_call_rate_threshold: f64,
    /// A call taking at least this long is slow.
    pub slow_call_duration: Duration,
    /// The sliding window: the last N recorded calls.
    pub window: usize,
    /// No verdict before this many calls are in the window.
    pub minimum_calls: usize,
    /// How long the breaker stays open before trials.
    pub open_for: Duration,
    /// Trial calls admitted in half-open; all are judged together.
    pub half_open_calls: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_rate_threshold: 0.5,
            slow_call_rate_threshold: 0.5,
            slow_call_duration: Duration::from_secs(2),
            window: 20,
            minimum_calls: 10,
            open_for: Duration::from_secs(30),
            half_open_calls: 3,
        }
    }
}

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

impl State {
    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub fn value(&self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::HalfOpen => 1.0,
            State::Open { .. } => 2.0,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::HalfOpen => "half_open",
            State::Open { .. } => "open",
        }
    }
}

/// The breaker refused the call: the dependency was not called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{dependency} temporarily unavailable (circuit open)")]
pub struct CircuitOpen {
    pub dependency: String,
}

#[derive(Debug, Clone, Copy)]
struct Call {
    failed: bool,
    slow: bool,
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Bumped on every transition; permits from an older generation do not count.
    generation: u64,
    window: VecDeque<Call>,
    /// Half-open: trials admitted and not yet abandoned, and the verdicts so far.
    admitted: u32,
    trials: Vec<Call>,
}

#[derive(Debug)]
struct Shared {
    dependency: String,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// One breaker, shared (cheap clones) by every caller of one dependency.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

/// Permission for one call; report its outcome with [`Permit::record`] (dropping it without a
/// verdict abandons the call: it counts neither way).
#[derive(Debug)]
#[must_use = "record the call's outcome"]
pub struct Permit {
    shared: Arc<Shared>,
    started: Instant,
    generation: u64,
    trial: bool,
    done: bool,
}

impl Permit {
    /// The call finished; `failed`: a transient failure of the dependency.
    pub fn record(mut self, failed: bool) {
        self.done = true;
        let slow = self.started.elapsed() >= self.shared.config.slow_call_duration;
        let shared = self.shared.clone();
        shared.record(self.generation, self.trial, Call { failed, slow });
    }

    /// When the call started (its duration decides slowness).
    pub fn started(&self) -> Instant {
        self.started
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done && self.trial {
            let mut inner = self.shared.lock();
            if inner.generation == self.generation && inner.state == State::HalfOpen {
                inner.admitted = inner.admitted.saturating_sub(1);
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn transition(&self, inner: &mut Inner, to: State) {
        let from = inner.state;
        inner.state = to;
        inner.generation += 1;
        inner.admitted = 0;
        inner.trials.clear();
        if matches!(to, State::Closed) {
            inner.window.clear();
        }
        metrics::gauge!(BREAKER_STATE, "dependency" => self.dependency.clone()).set(to.value());
        metrics::counter!(BREAKER_TRANSITIONS, "dependency" => self.dependency.clone(), "to" => to.name())
            .increment(1);
        tracing::warn!(dependency = %self.dependency, from = from.name(), to = to.name(), "circuit breaker changed state");
    }

    fn over_threshold(&self, calls: &[Call]) -> bool {
        let n = calls.len() as f64;
        if n == 0.0 {
            return false;
        }
        let failed = calls.iter().filter(|c| c.failed).count() as f64;
        let slow = calls.iter().filter(|c| c.slow).count() as f64;
        failed / n >= self.config.failure_rate_threshold
            || slow / n >= self.config.slow_call_rate_threshold
    }

    fn record(&self, generation: u64, trial: bool, call: Call) {
        let mut inner = self.lock();
        if inner.generation != generation {
            // Admitted under an earlier state (e.g. before the breaker opened): no vote.
            return;
        }
        match inner.state {
            State::Closed => {
                inner.window.push_back(call);
                while inner.window.len() > self.config.window.max(1) {
                    inner.window.pop_front();
                }
                let calls: Vec<Call> = inner.window.iter().copied().collect();
                if calls.len() >= self.config.minimum_calls.max(1) && self.over_threshold(&calls) {
                    let until = Instant::now() + self.config.open_for;
                    self.transition(&mut inner, State::Open { until });
                }
            }
            State::HalfOpen if trial => {
                inner.trials.push(call);
                let trials = inner.trials.clone();
                let all = self.config.half_open_calls.max(1) as usize;
                let failed_enough = {
                    // Enough bad trials that the rest cannot bring the rates under: decide now.
                    let bad_f = trials.iter().filter(|c| c.failed).count() as f64;
                    let bad_s = trials.iter().filter(|c| c.slow).count() as f64;
                    bad_f / all as f64 >= self.config.failure_rate_threshold
                        || bad_s / all as f64 >= self.config.slow_call_rate_threshold
                };
                if failed_enough {
                    let until = Instant::now() + self.config.open_for;
                    self.transition(&mut inner, State::Open { until });
                } else if trials.len() >= all {
                    self.transition(&mut inner, State::Closed);
                }
            }
            State::HalfOpen | State::Open { .. } => {}
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker for `dependency` (the metric label).
    pub fn new(dependency: impl Into<String>, config: BreakerConfig) -> Self {
        let dependency = dependency.into();
        metrics::gauge!(BREAKER_STATE, "dependency" => dependency.clone()).set(0.0);
        CircuitBreaker {
            shared: Arc::new(Shared {
                dependency,
                config,
                inner: Mutex::new(Inner {
                    state: State::Closed,
                    generation: 0,
                    window: VecDeque::new(),
                    admitted: 0,
                    trials: Vec::new(),
                }),
            }),
        }
    }

    pub fn dependency(&self) -> &str {
        &self.shared.dependency
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.shared.config
    }

    /// The current state (an open breaker whose time is up still reads `Open` until the next
    /// call moves it to half-open).
    pub fn state(&self) -> State {
        self.shared.lock().state
    }

    /// May a call go to the dependency now?
    pub fn try_acquire(&self) -> Result<Permit, CircuitOpen> {
        let shared = &self.shared;
        let mut inner = shared.lock();
        let now = Instant::now();
        if let State::Open { until } = inner.state {
            if now >= until {
                shared.transition(&mut inner, State::HalfOpen);
            }
        }
        let trial = match inner.state {
            State::Closed => false,
            State::HalfOpen if inner.admitted < shared.config.half_open_calls.max(1) => {
                inner.admitted += 1;
                true
            }
            State::HalfOpen | State::Open { .. } => {
                metrics::counter!(BREAKER_REJECTED, "dependency" => shared.dependency.clone())
                    .increment(1);
                return Err(CircuitOpen {
                    dependency: shared.dependency.clone(),
                });
            }
        };
        Ok(Permit {
            shared: shared.clone(),
            started: now,
            generation: inner.generation,
            trial,
            done: false,
        })
    }

    /// Run `call` through the breaker; `is_failure` classifies its result.
    pub async fn call<T, E, Fut>(
        &self,
        call: Fut,
        is_failure: impl FnOnce(&Result<T, E>) -> bool,
    ) -> Result<Result<T, E>, CircuitOpen>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire()?;
        let result = call.await;
        permit.record(is_failure(&result));
        Ok(result)
    }
}

/// A tower layer putting a [`CircuitBreaker`] in front of a service. `is_failure` classifies
/// each result; refused calls fail with [`CircuitOpen`] (boxed).
#[derive(Clone)]
pub struct CircuitBreakerLayer<C> {
    breaker: CircuitBreaker,
    is_failure: Arc<C>,
}

impl<C> CircuitBreakerLayer<C> {
    pub fn new(breaker: CircuitBreaker, is_failure: C) -> Self {
        CircuitBreakerLayer {
            breaker,
            is_failure: Arc::new(is_failure),
        }
    }
}

impl<S, C> Layer<S> for CircuitBreakerLayer<C> {
    type Service = Breaking<S, C>;
    fn layer(&self, inner: S) -> Breaking<S, C> {
        Breaking {
            inner,
            breaker: self.breaker.clone(),
            is_failure: self.is_failure.clone(),
        }
    }
}

/// See [`CircuitBreakerLayer`].
pub struct Breaking<S, C> {
    inner: S,
    breaker: CircuitBreaker,
    is_failure: Arc<C>,
}

impl<S: Clone, C> Clone for Breaking<S, C> {
    fn clone(&self) -> Self {
        Breaking {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
            is_failure: self.is_failure.clone(),
        }
    }
}

impl<S, C, R> Service<R> for Breaking<S, C>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    C: Fn(&Result<S::Response, S::Error>) -> bool + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let permit = match self.breaker.try_acquire() {
            Ok(p) => p,
            Err(open) => return Box::pin(async move { Err(Box::new(open) as BoxError) }),
        };
        let fut = self.inner.call(req);
        let is_failure = self.is_failure.clone();
        Box::pin(async move {
            let result = fut.await;
            permit.record(is_failure(&result));
            result.map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{ServiceBuilder, ServiceExt as _, service_fn};

    fn config() -> BreakerConfig {
        BreakerConfig {
            failure_rate_threshold: 0.5,
            slow_call_rate_threshold: 0.6,
            slow_call_duration: Duration::from_secs(1),
            window: 10,
            minimum_calls: 4,
            open_for: Duration::from_secs(30),
            half_open_calls: 2,
        }
    }

    fn ok(b: &CircuitBreaker) {
        b.try_acquire().expect("closed").record(false);
    }

    fn fail(b: &CircuitBreaker) {
        b.try_acquire().expect("closed").record(true);
    }

    /// Below the minimum number of calls nothing opens; at a 50 % failure rate it opens.
    #[tokio::test(start_paused = true)]
    async fn opens_at_the_failure_rate_once_the_minimum_is_reached() {
        let b = CircuitBreaker::new("t-rate", config());
        fail(&b);
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), State::Closed, "3 calls < minimum 4");
        ok(&b);
        // 3 of 4 failed = 75 % >= 50 %: the 4th call's verdict opened it.
        assert!(matches!(b.state(), State::Open { .. }));
        assert!(b.try_acquire().is_err());

        let b = CircuitBreaker::new("t-rate2", config());
        for _ in 0..6 {
            ok(&b);
        }
        for _ in 0..3 {
            fail(&b);
        }
        assert_eq!(b.state(), State::Closed, "3 of 9 = 33 %");
        // The window slides: 10 calls, 4 failures = 40 %; then 5 of 10 = 50 %.
        fail(&b);
        assert_eq!(b.state(), State::Closed);
        fail(&b);
        assert!(matches!(b.state(), State::Open { .. }));
    }

    /// Successful but slow calls open it through the slow-call rate.
    #[tokio::test(start_paused = true)]
    async fn slow_calls_open_it() {
        let b = CircuitBreaker::new("t-slow", config());
        for i in 0..4 {
            let p = b.try_acquire().unwrap();
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            p.record(false);
        }
        // At the minimum of 4 calls, 3 slow = 75 % >= 60 %.
        assert!(matches!(b.state(), State::Open { .. }));
    }

    /// After open_for it admits exactly N trials; good trials close it, a bad one re-opens it;
    /// an abandoned trial frees its slot.
    #[tokio::test(start_paused = true)]
    async fn half_open_trials() {
        let b = CircuitBreaker::new("t-half", config());
        for _ in 0..4 {
            fail(&b);
        }
        assert!(matches!(b.state(), State::Open { .. }));
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(b.try_acquire().is_err());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t1 = b.try_acquire().expect("trial 1");
        assert_eq!(b.state(), State::HalfOpen);
        let t2 = b.try_acquire().expect("trial 2");
        assert!(b.try_acquire().is_err(), "only 2 trials");
        drop(t2);
        let t2 = b.try_acquire().expect("the abandoned slot is free again");
        t1.record(false);
        assert_eq!(b.state(), State::HalfOpen);
        t2.record(false);
        assert_eq!(b.state(), State::Closed);

        for _ in 0..4 {
            fail(&b);
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
        let t1 = b.try_acquire().unwrap();
        let t2 = b.try_acquire().unwrap();
        t1.record(true);
        // 1 of 2 trials failed = 50 %: re-opened at once, the other trial's verdict is ignored.
        assert!(matches!(b.state(), State::Open { .. }));
        t2.record(false);
        assert!(matches!(b.state(), State::Open { .. }));
    }

    /// A call admitted while closed that reports after the breaker opened does not vote.
    #[tokio::test(start_paused = true)]
    async fn late_reports_do_not_count() {
        let b = CircuitBreaker::new("t-late", config());
        let late = b.try_acquire().unwrap();
        for _ in 0..4 {
            fail(&b);
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
        let trial = b.try_acquire().unwrap();
        late.record(true);
        assert_eq!(b.state(), State::HalfOpen);
        drop(trial);
    }

    /// The tower layer refuses while open without calling the service, and exports the gauge.
    #[tokio::test(start_paused = true)]
    async fn tower_layer_and_gauge() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let c = calls.clone();
        let b = CircuitBreaker::new("t-layer", config());
        let svc = ServiceBuilder::new()
            .layer(CircuitBreakerLayer::new(
                b.clone(),
                |r: &Result<u32, &str>| r.is_err(),
            ))
            .service(service_fn(move |_: ()| {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { Err::<u32, &str>("boom") }
            }));
        for _ in 0..4 {
            let e = svc.clone().oneshot(()).await.unwrap_err();
            assert_eq!(e.to_string(), "boom");
        }
        let e = svc.clone().oneshot(()).await.unwrap_err();
        assert!(e.downcast_ref::<CircuitOpen>().is_some(), "{e}");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 4);
        let text = handle.render();
        assert!(
            text.contains("nivesh_circuit_breaker_state{dependency=\"t-layer\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("nivesh_circuit_breaker_rejected_total{dependency=\"t-layer\"} 1"),
            "{text}"
        );
    }
}
