//! The load drivers: closed loop (C clients, each sending its next request when the previous one
//! is answered, for N requests or for a duration) and open loop (requests scheduled at a fixed
//! offered rate whatever the answers, with a bound on requests in flight).
//!
//! A request is a future built by `make(i)` for request number `i`; its latency is measured
//! around the whole future (send, answer, body). It resolves to an [`Outcome`] (answered, with
//! the status when it is not the expected one) or an error (no HTTP answer: `"transport"`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::stats::Tally;

/// How an answered request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The expected answer.
    Ok,
    /// Any other HTTP status.
    Status(u16),
}

impl Outcome {
    /// `Ok` when `status` is the expected one, else `Status(status)`.
    pub fn expect(status: u16, expected: impl Fn(u16) -> bool) -> Outcome {
        if expected(status) {
            Outcome::Ok
        } else {
            Outcome::Status(status)
        }
    }
}

/// Results of a closed-loop run of one request kind.
#[derive(Debug)]
pub struct LoadResult {
    pub ok: usize,
    /// Answered with an unexpected status.
    pub refused: usize,
    /// No HTTP answer.
    pub errors: usize,
    pub errors_by_status: BTreeMap<String, usize>,
    /// From the start until the last answer.
    pub wall: Duration,
    /// Latencies of the successful requests, sorted.
    pub latencies: Vec<Duration>,
}

impl LoadResult {
    fn from_tally(t: Tally, wall: Duration) -> Self {
        LoadResult {
            ok: t.ok,
            refused: t.refused(),
            errors: t.transport_errors(),
            errors_by_status: t.errors,
            wall,
            latencies: t.latencies,
        }
    }

    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64()
    }
}

/// When a closed loop stops.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this many requests in all.
    Count(usize),
    /// No new request after this long.
    Elapsed(Duration),
}

fn record(tally: &mut Tally, i: usize, latency: Duration, outcome: Result<Outcome>) {
    match outcome {
        Ok(Outcome::Ok) => tally.ok(latency),
        Ok(Outcome::Status(s)) => tally.error(s.to_string()),
        Err(e) => {
            if tally.transport_errors() == 0 {
                eprintln!("request {i} failed: {e:#}");
            }
            tally.error("transport");
        }
    }
}

/// Closed loop over several request kinds: `clients` tasks send requests `make(c, 0)`,
/// `make(c', 1)`, … (`c` the client sending it; each request labels its kind) until `until`. Returns a tally per kind (latencies sorted) and the wall
/// time from the start until the last answer.
pub async fn closed_loop<F, Fut>(
    clients: usize,
    until: Until,
    make: F,
) -> (BTreeMap<&'static str, Tally>, Duration)
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = (&'static str, Result<Outcome>)> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let (next, make) = (next.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let more = match until {
                    Until::Count(n) => i < n,
                    Until::Elapsed(d) => t0.elapsed() < d,
                };
                if !more {
                    break;
                }
                let t = Instant::now();
                let (kind, outcome) = make(client, i).await;
                record(tallies.entry(kind).or_default(), i, t.elapsed(), outcome);
            }
            tallies
        }));
    }
    let mut all: BTreeMap<&'static str, Tally> = BTreeMap::new();
    for t in tasks {
        if let Ok(tallies) = t.await {
            for (kind, tally) in tallies {
                all.entry(kind).or_default().merge(tally);
            }
        }
    }
    let wall = t0.elapsed();
    all.values_mut().for_each(Tally::finish);
    (all, wall)
}

/// Closed loop of one request kind: `clients` tasks share `n` requests.
pub async fn load<F, Fut>(n: usize, clients: usize, make: F) -> LoadResult
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome>> + Send,
{
    one_kind(clients, Until::Count(n), make).await
}

/// Closed loop of one request kind for a duration.
pub async fn load_for<F, Fut>(duration: Duration, clients: usize, make: F) -> LoadResult
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome>> + Send,
{
    one_kind(clients, Until::Elapsed(duration), make).await
}

async fn one_kind<F, Fut>(clients: usize, until: Until, make: F) -> LoadResult
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome>> + Send,
{
    let make = Arc::new(make);
    let (mut tallies, wall) = closed_loop(clients, until, move |_, i| {
        let make = make.clone();
        async move { ("request", make(i).await) }
    })
    .await;
    LoadResult::from_tally(tallies.remove("request").unwrap_or_default(), wall)
}

/// An open-loop run: `rate` requests per second for `seconds`, request `i` due at `i / rate`
/// after the start, at most `max_in_flight` unanswered at once.
#[derive(Debug, Clone, Copy)]
pub struct OpenLoop {
    pub rate: f64,
    pub seconds: f64,
    pub max_in_flight: usize,
}

/// A request sent this much after its due time counts as late.
pub const LATE: Duration = Duration::from_millis(10);

#[derive(Debug)]
pub struct OpenLoopResult {
    pub plan: OpenLoop,
    /// Requests due over the run (`rate × seconds`).
    pub offered: usize,
    pub sent: usize,
    /// Due while `max_in_flight` requests were unanswered: never sent.
    pub not_sent_in_flight_cap: usize,
    /// Sent more than [`LATE`] after their due time (the generator itself fell behind).
    pub sent_late: usize,
    pub max_send_lag: Duration,
    /// From the start until the last request was due (and sent or given up).
    pub send_window: Duration,
    /// From the start until the last answer.
    pub wall: Duration,
    /// Latencies sorted.
    pub tally: Tally,
}

impl OpenLoopResult {
    /// Successful requests per second over the send window.
    pub fn achieved_rate(&self) -> f64 {
        self.tally.ok as f64 / self.send_window.as_secs_f64()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "offered_rate_per_s": self.plan.rate,
            "seconds": self.plan.seconds,
            "max_in_flight": self.plan.max_in_flight,
            "offered": self.offered,
            "sent": self.sent,
            "not_sent_in_flight_cap_full": self.not_sent_in_flight_cap,
            "sent_late_over_10ms": self.sent_late,
            "max_send_lag_ms": self.max_send_lag.as_secs_f64() * 1000.0,
            "send_window_s": self.send_window.as_secs_f64(),
            "last_answer_s": self.wall.as_secs_f64(),
            "achieved_ok_per_s": self.achieved_rate(),
            "requests": self.tally.to_json(self.send_window.as_secs_f64()),
        })
    }
}

/// Open loop: every millisecond, send every request that has fallen due, each in its own task;
/// a request due while `max_in_flight` are unanswered is not sent (and counted). Waits for every
/// sent request's answer before returning.
pub async fn open_loop<F, Fut>(plan: OpenLoop, make: F) -> OpenLoopResult
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome>> + Send + 'static,
{
    let make = Arc::new(make);
    let cap = plan.max_in_flight.max(1);
    let permits = Arc::new(Semaphore::new(cap));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let offered = (plan.rate * plan.seconds).round() as usize;
    let (mut issued, mut sent, mut not_sent, mut late) = (0usize, 0usize, 0usize, 0usize);
    let mut max_lag = Duration::ZERO;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let t0 = Instant::now();
    while issued < offered {
        tick.tick().await;
        let due = ((t0.elapsed().as_secs_f64() * plan.rate) as usize + 1).min(offered);
        while issued < due {
            let i = issued;
            issued += 1;
            let due_at = t0 + Duration::from_secs_f64(i as f64 / plan.rate);
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                not_sent += 1;
                continue;
            };
            let lag = Instant::now().saturating_duration_since(due_at);
            max_lag = max_lag.max(lag);
            if lag > LATE {
                late += 1;
            }
            sent += 1;
            let (make, tally) = (make.clone(), tally.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let outcome = make(i).await;
                let latency = t.elapsed();
                record(&mut tally.lock().expect("tally lock"), i, latency, outcome);
                drop(permit);
            });
        }
    }
    let send_window = t0.elapsed();
    // Every permit back: every sent request answered.
    let _all = permits
        .acquire_many(cap as u32)
        .await
        .expect("semaphore never closed");
    let wall = t0.elapsed();
    let mut tally = std::mem::take(&mut *tally.lock().expect("tally lock"));
    tally.finish();
    OpenLoopResult {
        plan,
        offered,
        sent,
        not_sent_in_flight_cap: not_sent,
        sent_late: late,
        max_send_lag: max_lag,
        send_window,
        wall,
        tally,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closed_loop_counts_every_request_once() {
        let r = load(100, 4, |i| async move {
            Ok(if i % 10 == 0 {
                Outcome::Status(429)
            } else {
                Outcome::Ok
            })
        })
        .await;
        assert_eq!((r.ok, r.refused, r.errors), (90, 10, 0));
        assert_eq!(r.errors_by_status["429"], 10);
        assert!(r.latencies.windows(2).all(|w| w[0] <= w[1]));
    }

    #[tokio::test]
    async fn open_loop_never_exceeds_its_in_flight_cap() {
        // 200/s for 0.5 s = 100 requests, each taking 100 ms, at most 5 in flight: at most
        // ~5 per 100 ms can be sent, the rest are counted as not sent.
        let plan = OpenLoop {
            rate: 200.0,
            seconds: 0.5,
            max_in_flight: 5,
        };
        let r = open_loop(plan, |_| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(Outcome::Ok)
        })
        .await;
        assert_eq!(r.offered, 100);
        assert_eq!(r.sent + r.not_sent_in_flight_cap, 100);
        assert_eq!(r.tally.ok, r.sent);
        assert!(r.sent <= 35, "sent {}", r.sent);
        assert!(r.not_sent_in_flight_cap >= 65);
    }
}
