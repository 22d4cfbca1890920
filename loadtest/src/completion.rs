//! End-to-end completion from events: a watcher reads `portfolio.updated` (the order is
//! COMPLETED) and `order.failed` from their ends, and the load records when it placed each
//! order; an order's completion latency is placed → its `portfolio.updated` seen here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use nivesh_events::{AvroCodec, OrderFailed, PortfolioUpdated};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::stats::{line, summary};

/// The terminal events of an order.
pub const TOPICS: [&str; 2] = ["portfolio.updated", "order.failed"];

type Seen = Arc<Mutex<HashMap<String, (Instant, bool)>>>;

/// Watches the terminal events of orders and matches them to the orders placed.
pub struct CompletionWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    /// Order id → when its terminal event was seen, and whether it COMPLETED.
    seen: Seen,
    /// Order id → when its POST was sent.
    placed: Mutex<HashMap<String, Instant>>,
}

impl CompletionWatcher {
    /// Assign every partition of [`TOPICS`] at its current end (watermarks read now, so nothing
    /// produced from here on is missed) and start reading.
    pub fn start(bootstrap: &str, group_prefix: &str) -> Result<CompletionWatcher> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", nivesh_testkit::unique(group_prefix))
            .set("enable.auto.commit", "false")
            // The watcher stops the clock: the dev broker answers a fetch of an idle partition
            // only when fetch.wait.max.ms runs out, which must not be added to the latency.
            .set("fetch.wait.max.ms", "10")
            .set("fetch.queue.backoff.ms", "10")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for topic in TOPICS {
            let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            for p in md.topics()[0].partitions() {
                let (_, high) =
                    consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))?;
            }
        }
        consumer.assign(&tpl)?;
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Seen = Arc::default();
        let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, bool, Vec<u8>)>();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || -> Result<()> {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(m) = consumer.poll(Duration::from_millis(20)) {
                        let m = m?;
                        let completed = m.topic() == TOPICS[0];
                        let payload = m.payload().unwrap_or_default().to_vec();
                        if tx.send((Instant::now(), completed, payload)).is_err() {
                            break;
                        }
                    }
                }
                Ok(())
            })
        };
        {
            let seen = seen.clone();
            tokio::spawn(async move {
                let codec = AvroCodec::single_object();
                while let Some((at, completed, payload)) = rx.recv().await {
                    let id = if completed {
                        codec
                            .decode::<PortfolioUpdated>(&payload)
                            .await
                            .ok()
                            .and_then(|e| e.order_id)
                    } else {
                        codec
                            .decode::<OrderFailed>(&payload)
                            .await
                            .ok()
                            .map(|e| e.order_id)
                    };
                    if let Some(id) = id {
                        seen.lock()
                            .expect("seen lock")
                            .entry(id)
                            .or_insert((at, completed));
                    }
                }
            });
        }
        Ok(CompletionWatcher {
            stop,
            thread: Some(thread),
            seen,
            placed: Mutex::default(),
        })
    }

    /// Order `id`'s POST was sent at `at` (and answered 201).
    pub fn placed(&self, id: String, at: Instant) {
        self.placed.lock().expect("placed lock").insert(id, at);
    }

    pub fn placed_count(&self) -> usize {
        self.placed.lock().expect("placed lock").len()
    }

    /// How many placed orders have reached a terminal event so far.
    fn resolved(&self) -> (usize, usize) {
        let placed = self.placed.lock().expect("placed lock");
        let seen = self.seen.lock().expect("seen lock");
        let done = placed.keys().filter(|id| seen.contains_key(*id)).count();
        (done, placed.len())
    }

    /// Wait until every placed order has COMPLETED or FAILED, or until nothing has resolved for
    /// `quiet` / `timeout` has passed since the call (the rest are then lost). Prints progress
    /// every 10 s.
    pub async fn wait(&self, timeout: Duration, quiet: Duration) -> Completion {
        let start = Instant::now();
        let (mut last_done, mut last_progress, mut last_print) =
            (0, Instant::now(), Instant::now());
        loop {
            let (done, placed) = self.resolved();
            if done == placed {
                break;
            }
            if done > last_done {
                last_done = done;
                last_progress = Instant::now();
            }
            if start.elapsed() > timeout || last_progress.elapsed() > quiet {
                eprintln!(
                    "giving up: {} of {placed} placed orders never COMPLETED nor FAILED",
                    placed - done
                );
                break;
            }
            if last_print.elapsed() > Duration::from_secs(10) {
                last_print = Instant::now();
                println!("  … {done} of {placed} orders COMPLETED or FAILED");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.snapshot()
    }

    /// Where every placed order stands now.
    pub fn snapshot(&self) -> Completion {
        let placed = self.placed.lock().expect("placed lock").clone();
        let seen = self.seen.lock().expect("seen lock");
        let mut c = Completion {
            placed: placed.len(),
            first_placed: placed.values().min().copied(),
            ..Completion::default()
        };
        for (id, sent) in &placed {
            match seen.get(id) {
                Some((at, true)) => {
                    c.completed.push((id.clone(), *sent, *at));
                    c.latencies.push(at.saturating_duration_since(*sent));
                }
                Some((at, false)) => c.failed.push((*sent, *at)),
                None => c.lost.push(id.clone()),
            }
        }
        c.latencies.sort();
        c.completed.sort_by_key(|(_, _, at)| *at);
        c
    }

    /// Stop reading.
    pub fn stop(mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t.join().expect("watcher thread"),
            None => Ok(()),
        }
    }
}

/// Where the placed orders ended.
#[derive(Debug, Default, Clone)]
pub struct Completion {
    pub placed: usize,
    pub first_placed: Option<Instant>,
    /// (order id, sent, portfolio.updated seen), by time seen.
    pub completed: Vec<(String, Instant, Instant)>,
    /// (sent, order.failed seen).
    pub failed: Vec<(Instant, Instant)>,
    /// Placed, never COMPLETED nor FAILED.
    pub lost: Vec<String>,
    /// Placed → COMPLETED, sorted.
    pub latencies: Vec<Duration>,
}

impl Completion {
    /// From the first POST until the last terminal event.
    pub fn span(&self) -> Duration {
        let last = self
            .completed
            .iter()
            .map(|(_, _, at)| *at)
            .chain(self.failed.iter().map(|(_, at)| *at))
            .max();
        match (self.first_placed, last) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => Duration::ZERO,
        }
    }

    /// Completed orders per second from the first POST until the last terminal event.
    pub fn rate(&self) -> f64 {
        let s = self.span().as_secs_f64();
        if s > 0.0 {
            self.completed.len() as f64 / s
        } else {
            0.0
        }
    }

    /// Orders completed before `t0 + window` (e.g. while orders were still being placed).
    pub fn completed_by(&self, t0: Instant, window: Duration) -> usize {
        self.completed
            .iter()
            .filter(|(_, _, at)| *at <= t0 + window)
            .count()
    }

    /// Spot check through the API: the order service itself says COMPLETED for the first `n`
    /// orders whose `portfolio.updated` was seen.
    pub async fn spot_check(&self, client: &reqwest::Client, order: &str, n: usize) -> Result<()> {
        for (id, _, _) in self.completed.iter().take(n) {
            let v: Value = client
                .get(format!("{order}/v1/orders/{id}"))
                .send()
                .await?
                .json()
                .await?;
            if v["status"] != "COMPLETED" {
                anyhow::bail!("order {id}: portfolio.updated seen but the API says {v}");
            }
        }
        Ok(())
    }

    pub fn print(&self) {
        println!(
            "completion: {} placed, {} COMPLETED, {} FAILED, {} lost, {:.2} s from the first POST to the last = {:.0} completed/s; placed → COMPLETED {}",
            self.placed,
            self.completed.len(),
            self.failed.len(),
            self.lost.len(),
            self.span().as_secs_f64(),
            self.rate(),
            line(&self.latencies)
        );
    }

    /// Figures for a results file; `placement` is (start of the placements, how long they ran,
    /// accepted per second) so the completion rate is set against the placement rate.
    pub fn to_json(&self, placement: Option<(Instant, Duration, f64)>) -> Value {
        let mut v = json!({
            "accepted": self.placed,
            "completed": self.completed.len(),
            "failed": self.failed.len(),
            "lost": self.lost.len(),
            "lost_sample": self.lost.iter().take(10).collect::<Vec<_>>(),
            "first_post_to_last_terminal_s": self.span().as_secs_f64(),
            "completed_per_s": self.rate(),
            "placed_to_completed_latency": summary(&self.latencies),
        });
        if let Some((t0, window, placed_rate)) = placement {
            let during = self.completed_by(t0, window);
            let during_rate = during as f64 / window.as_secs_f64();
            v["completed_during_placement_window"] = json!(during);
            v["completed_per_s_during_placement_window"] = json!(during_rate);
            v["placement_rate_per_s"] = json!(placed_rate);
            v["completion_rate_over_placement_rate"] = json!(if placed_rate > 0.0 {
                self.rate() / placed_rate
            } else {
                0.0
            });
        }
        v
    }
}
