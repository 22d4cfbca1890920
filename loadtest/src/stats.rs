//! Latency statistics: nearest-rank percentiles over sorted durations, and the JSON summary every
//! results file uses (`count`, `p50_ms`, `p95_ms`, `p99_ms`, `max_ms`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

/// The `p` quantile (nearest rank) of sorted latencies; zero when there are none.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 / p95 / p99 / max of sorted latencies, in milliseconds (the format of order-bench).
pub fn lat_json(sorted: &[Duration]) -> Value {
    json!({
        "p50_ms": ms(pct(sorted, 0.50)),
        "p95_ms": ms(pct(sorted, 0.95)),
        "p99_ms": ms(pct(sorted, 0.99)),
        "max_ms": ms(sorted.last().copied().unwrap_or_default()),
    })
}

/// `lat_json` plus the sample count.
pub fn summary(sorted: &[Duration]) -> Value {
    let mut v = lat_json(sorted);
    v["count"] = json!(sorted.len());
    v
}

/// One line for the console: `p50 1.2 ms, p95 3.4 ms, p99 5.6 ms, max 7.8 ms`.
pub fn line(sorted: &[Duration]) -> String {
    format!(
        "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(pct(sorted, 0.50)),
        ms(pct(sorted, 0.95)),
        ms(pct(sorted, 0.99)),
        ms(sorted.last().copied().unwrap_or_default())
    )
}

/// What happened to the requests of one kind: successes with their latencies, failures by
/// status (`"429"`, `"503"`, … or `"transport"` for a request that got no HTTP answer).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub ok: usize,
    /// Latencies of the successful requests (sorted by [`Tally::finish`]).
    pub latencies: Vec<Duration>,
    pub errors: BTreeMap<String, usize>,
}

impl Tally {
    pub fn ok(&mut self, latency: Duration) {
        self.ok += 1;
        self.latencies.push(latency);
    }

    pub fn error(&mut self, what: impl Into<String>) {
        *self.errors.entry(what.into()).or_insert(0) += 1;
    }

    /// Failures answered with an HTTP status.
    pub fn refused(&self) -> usize {
        self.errors
            .iter()
            .filter(|(k, _)| k.as_str() != "transport")
            .map(|(_, n)| n)
            .sum()
    }

    /// Failures without an HTTP answer.
    pub fn transport_errors(&self) -> usize {
        self.errors.get("transport").copied().unwrap_or(0)
    }

    pub fn error_count(&self) -> usize {
        self.errors.values().sum()
    }

    pub fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.latencies.extend(other.latencies);
        for (k, n) in other.errors {
            *self.errors.entry(k).or_insert(0) += n;
        }
    }

    /// Sort the latencies (needed before any percentile).
    pub fn finish(&mut self) {
        self.latencies.sort();
    }

    /// Counts, throughput over `seconds`, latency summary and errors by status.
    pub fn to_json(&self, seconds: f64) -> Value {
        json!({
            "ok": self.ok,
            "errors": self.error_count(),
            "errors_by_status": self.errors,
            "ok_per_s": if seconds > 0.0 { self.ok as f64 / seconds } else { 0.0 },
            "latency": summary(&self.latencies),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(pct(&v, 0.50), Duration::from_millis(50));
        assert_eq!(pct(&v, 0.99), Duration::from_millis(99));
        assert_eq!(pct(&v, 1.0), Duration::from_millis(100));
        assert_eq!(pct(&v[..1], 0.99), Duration::from_millis(1));
        assert_eq!(pct(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn tally_separates_statuses_from_transport_errors() {
        let mut t = Tally::default();
        t.ok(Duration::from_millis(3));
        t.error("429");
        t.error("429");
        t.error("transport");
        assert_eq!((t.ok, t.refused(), t.transport_errors()), (1, 2, 1));
        assert_eq!(t.to_json(1.0)["errors_by_status"]["429"], 2);
    }
}
