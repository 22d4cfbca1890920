//! Deadline propagation: a downstream call never outlives its caller's remaining budget.
//!
//! - On the way in, [`DeadlineLayer`] reads [`DEADLINE_HEADER`] (`x-nivesh-deadline-ms`: the
//!   caller's REMAINING budget in milliseconds; relative, so clock skew between hosts does not
//!   matter) and runs the request's handler with a task-local deadline. Without the header the
//!   layer's default budget applies (or none).
//! - Inside, [`remaining`] is what is left and [`budget`]`(configured)` is
//!   `min(configured, remaining)`: the timeout every outbound call uses. [`timeout`] runs a
//!   future under it; [`DeadlineTimeoutLayer`] does the same for a tower client.
//! - On the way out, [`inject`] (or [`PropagateDeadlineLayer`]) writes what is left into the
//!   outbound request's header, so the next hop knows too.
//!
//! The deadline is task-local: work spawned onto other tasks does not inherit it (a detached
//! task is by definition not bounded by the request). Nested scopes keep the earlier deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt as _};
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service};

/// The header carrying the caller's remaining budget in milliseconds.
pub static DEADLINE_HEADER: HeaderName = HeaderName::from_static("x-nivesh-deadline-ms");

/// A budget in the header larger than this is clamped (a typo must not disable timeouts).
pub const MAX_BUDGET: Duration = Duration::from_secs(300);

tokio::task_local! {
    static DEADLINE: Instant;
}

/// The operation ran out of its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline exceeded after {budget:?}")]
pub struct DeadlineExceeded {
    /// The budget the operation was given.
    pub budget: Duration,
}

/// The current task's deadline, if any.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// What is left of the current task's budget (`None`: no deadline; zero: already over).
pub fn remaining() -> Option<Duration> {
    current().map(|d| d.saturating_duration_since(Instant::now()))
}

/// The timeout for an outbound call configured with `configured`: `min(configured, remaining)`.
pub fn budget(configured: Duration) -> Duration {
    remaining().map_or(configured, |r| r.min(configured))
}

/// Run `f` with the deadline `deadline` (or the current one, when that is earlier).
pub async fn scope<F: Future>(deadline: Instant, f: F) -> F::Output {
    let effective = current().map_or(deadline, |d| d.min(deadline));
    DEADLINE.scope(effective, f).await
}

/// Run `f` with a budget of `within` from now (see [`scope`]).
pub async fn within<F: Future>(within: Duration, f: F) -> F::Output {
    scope(Instant::now() + within, f).await
}

/// Run `f` under `min(configured, remaining)`.
pub async fn timeout<F: Future>(configured: Duration, f: F) -> Result<F::Output, DeadlineExceeded> {
    let budget = budget(configured);
    tokio::time::timeout(budget, f)
        .await
        .map_err(|_| DeadlineExceeded { budget })
}

/// The budget a request carries in [`DEADLINE_HEADER`] (clamped to [`MAX_BUDGET`]).
pub fn from_headers(headers: &HeaderMap) -> Option<Duration> {
    let ms: u64 = headers
        .get(&DEADLINE_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_millis(ms).min(MAX_BUDGET))
}

/// Write the current remaining budget into `headers` (nothing without a deadline).
pub fn inject(headers: &mut HeaderMap) {
    if let Some(left) = remaining() {
        headers.insert(
            DEADLINE_HEADER.clone(),
            HeaderValue::from(left.as_millis() as u64),
        );
    }
}

/// Server side: runs each request under the budget from its header, or `default`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineLayer {
    default: Option<Duration>,
}

impl DeadlineLayer {
    /// Requests without the header get `default` (`None`: no deadline).
    pub fn new(default: Option<Duration>) -> Self {
        DeadlineLayer { default }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            default: self.default,
        }
    }
}

/// See [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    default: Option<Duration>,
}

impl<S, B> Service<http::Request<B>> for Deadline<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let budget = from_headers(req.headers()).or(self.default);
        let fut = self.inner.call(req);
        match budget {
            Some(b) => within(b, fut).boxed(),
            None => fut.boxed(),
        }
    }
}

/// Client side: each call times out after `min(configured, remaining)`.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineTimeoutLayer {
    configured: Duration,
}

impl DeadlineTimeoutLayer {
    pub fn new(configured: Duration) -> Self {
        DeadlineTimeoutLayer { configured }
    }
}

impl<S> Layer<S> for DeadlineTimeoutLayer {
    type Service = DeadlineTimeout<S>;
    fn layer(&self, inner: S) -> DeadlineTimeout<S> {
        DeadlineTimeout {
            inner,
            configured: self.configured,
        }
    }
}

/// See [`DeadlineTimeoutLayer`]. Errors are boxed: the inner error, or [`DeadlineExceeded`].
#[derive(Debug, Clone)]
pub struct DeadlineTimeout<S> {
    inner: S,
    configured: Duration,
}

impl<S, R> Service<R> for DeadlineTimeout<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        // Read in the caller's task, where the task-local deadline lives.
        let budget = budget(self.configured);
        let fut = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout(budget, fut).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(Box::new(DeadlineExceeded { budget }) as BoxError),
            }
        })
    }
}

/// Client side: writes the remaining budget into each outbound `http::Request`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PropagateDeadlineLayer;

impl<S> Layer<S> for PropagateDeadlineLayer {
    type Service = PropagateDeadline<S>;
    fn layer(&self, inner: S) -> PropagateDeadline<S> {
        PropagateDeadline { inner }
    }
}

/// See [`PropagateDeadlineLayer`].
#[derive(Debug, Clone)]
pub struct PropagateDeadline<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for PropagateDeadline<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> S::Future {
        inject(req.headers_mut());
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{ServiceBuilder, ServiceExt as _, service_fn};

    /// Without a deadline the configured timeout applies; inside one, the smaller of the two.
    #[tokio::test(start_paused = true)]
    async fn budget_is_the_smaller_of_configured_and_remaining() {
        assert_eq!(remaining(), None);
        assert_eq!(budget(Duration::from_secs(3)), Duration::from_secs(3));
        within(Duration::from_millis(800), async {
            assert_eq!(budget(Duration::from_secs(3)), Duration::from_millis(800));
            assert_eq!(
                budget(Duration::from_millis(500)),
                Duration::from_millis(500)
            );
            tokio::time::sleep(Duration::from_millis(600)).await;
            assert_eq!(budget(Duration::from_secs(3)), Duration::from_millis(200));
            // A nested, longer scope does not extend the outer deadline.
            within(Duration::from_secs(10), async {
                assert_eq!(remaining(), Some(Duration::from_millis(200)));
            })
            .await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(remaining(), Some(Duration::ZERO));
        })
        .await;
    }

    /// A server request with 300 ms left calls a dependency configured with 3 s: the call is cut
    /// at 300 ms, and the outbound request carries the remaining budget.
    #[tokio::test(start_paused = true)]
    async fn server_deadline_bounds_the_outbound_call_and_is_propagated() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None::<u64>));
        let seen2 = seen.clone();
        // A slow dependency that records the header it receives.
        let dependency = service_fn(move |req: http::Request<()>| {
            let seen = seen2.clone();
            async move {
                *seen.lock().unwrap() = from_headers(req.headers()).map(|d| d.as_millis() as u64);
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok::<_, std::io::Error>("late")
            }
        });
        let client = ServiceBuilder::new()
            .layer(DeadlineTimeoutLayer::new(Duration::from_secs(3)))
            .layer(PropagateDeadlineLayer)
            .service(dependency);
        let server = ServiceBuilder::new()
            .layer(DeadlineLayer::new(None))
            .service(service_fn(move |_req: http::Request<()>| {
                let client = client.clone();
                async move {
                    let started = Instant::now();
                    let out: Result<&str, BoxError> = client.oneshot(http::Request::new(())).await;
                    let out: Result<&str, String> = out.map_err(|e| e.to_string());
                    Ok::<_, std::convert::Infallible>((out, started.elapsed()))
                }
            }));
        let req = http::Request::builder()
            .header("x-nivesh-deadline-ms", "300")
            .body(())
            .unwrap();
        let (out, took) = server.oneshot(req).await.unwrap();
        let err = out.unwrap_err();
        assert!(err.contains("deadline exceeded"), "{err}");
        assert_eq!(took, Duration::from_millis(300));
        assert_eq!(*seen.lock().unwrap(), Some(300));
    }

    /// Garbage in the header is ignored; huge budgets are clamped.
    #[test]
    fn header_parsing() {
        let mut h = HeaderMap::new();
        h.insert(&DEADLINE_HEADER, HeaderValue::from_static("abc"));
        assert_eq!(from_headers(&h), None);
        h.insert(&DEADLINE_HEADER, HeaderValue::from_static(" 1500 "));
        assert_eq!(from_headers(&h), Some(Duration::from_millis(1500)));
        h.insert(&DEADLINE_HEADER, HeaderValue::from_static("99999999999"));
        assert_eq!(from_headers(&h), Some(MAX_BUDGET));
    }
}
