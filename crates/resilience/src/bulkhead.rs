//! Bulkheads: a concurrency limit per dependency, so one slow dependency cannot take every
//! worker (or every connection) of the process with it.
//!
//! [`Bulkhead`] is for calls that are not tower services (a `reqwest` request): a call waits
//! at most `max_wait` for a slot, then fails fast with [`BulkheadFull`]. Tower clients use
//! tower's own `ConcurrencyLimitLayer` (waits) or it plus `LoadShedLayer` (fails fast).
//!
//! [`LoadShedder`] is the server-side sibling: at most `max_in_flight` requests in a service,
//! the rest are refused at once (the HTTP stack answers 503 with `Retry-After`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Counter: calls refused by a full bulkhead; label `dependency`.
pub const BULKHEAD_REJECTED: &str = "nivesh_bulkhead_rejected_total";
/// Counter: HTTP requests shed; label `service`.
pub const LOAD_SHED_TOTAL: &str = "nivesh_http_load_shed_total";

/// The bulkhead had no free slot within `max_wait`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{dependency}: too many concurrent calls (bulkhead full)")]
pub struct BulkheadFull {
    pub dependency: String,
}

/// A concurrency limit for one dependency. Cheap to clone (clones share the slots).
#[derive(Debug, Clone)]
pub struct Bulkhead {
    dependency: Arc<str>,
    slots: Arc<Semaphore>,
    max_wait: Duration,
}

impl Bulkhead {
    pub fn new(dependency: &str, max_concurrent: usize, max_wait: Duration) -> Self {
        Bulkhead {
            dependency: dependency.into(),
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            max_wait,
        }
    }

    /// A slot (held until the permit is dropped), waiting at most `max_wait` (and never past
    /// the task's deadline).
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, BulkheadFull> {
        let wait = crate::deadline::budget(self.max_wait);
        match tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                metrics::counter!(BULKHEAD_REJECTED, "dependency" => self.dependency.to_string())
                    .increment(1);
                Err(BulkheadFull {
                    dependency: self.dependency.to_string(),
                })
            }
        }
    }

    /// Free slots now.
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }
}

/// The in-flight limit of an HTTP server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LoadShedder {
    slots: Arc<Semaphore>,
    limit: usize,
}

impl LoadShedder {
    pub fn new(max_in_flight: usize) -> Self {
        LoadShedder {
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
            limit: max_in_flight.max(1),
        }
    }

    /// A slot for one request, or `None` when `max_in_flight` requests are already in.
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn in_flight(&self) -> usize {
        self.limit - self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two slots: the third caller waits max_wait and is refused; a freed slot admits again.
    #[tokio::test(start_paused = true)]
    async fn bulkhead_limits_concurrency() {
        let b = Bulkhead::new("t", 2, Duration::from_millis(100));
        let p1 = b.acquire().await.unwrap();
        let _p2 = b.acquire().await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(
            b.acquire().await.unwrap_err(),
            BulkheadFull {
                dependency: "t".into()
            }
        );
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        // A slot freed while waiting is taken.
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.acquire().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(p1);
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    /// The shedder refuses at once beyond its limit and counts in-flight requests.
    #[test]
    fn shedder_refuses_beyond_the_limit() {
        let s = LoadShedder::new(2);
        let a = s.try_enter().unwrap();
        let _b = s.try_enter().unwrap();
        assert_eq!(s.in_flight(), 2);
        assert!(s.try_enter().is_none());
        drop(a);
        assert!(s.try_enter().is_some());
    }
}
