use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
    SharedString, Unit,
};
use nivesh_bus::HandlerError;
use tokio::sync::Semaphore;

use crate::common::{Env, Recorder, eventually};

/// Every metric update, by name and sorted labels, kept in memory.
#[derive(Default)]
struct Store {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<BTreeMap<String, Arc<GaugeCell>>>,
    histograms: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

#[derive(Default)]
struct GaugeCell {
    now: Mutex<f64>,
    max: Mutex<f64>,
}

impl GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        let v = *self.now.lock().unwrap() + value;
        self.set(v);
    }
    fn decrement(&self, value: f64) {
        let v = *self.now.lock().unwrap() - value;
        self.set(v);
    }
    fn set(&self, value: f64) {
        *self.now.lock().unwrap() = value;
        let mut max = self.max.lock().unwrap();
        if value > *max {
            *max = value;
        }
    }
}

struct CounterCell(Arc<AtomicU64>);
impl CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

/// Counts samples only.
struct HistogramCell(Arc<AtomicU64>);
impl HistogramFn for HistogramCell {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn id(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

struct TestRecorder(Arc<Store>);

impl metrics::Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let cell = self
            .0
            .counters
            .lock()
            .unwrap()
            .entry(id(key))
            .or_default()
            .clone();
        Counter::from_arc(Arc::new(CounterCell(cell)))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(
            self.0
                .gauges
                .lock()
                .unwrap()
                .entry(id(key))
                .or_default()
                .clone(),
        )
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let cell = self
            .0
            .histograms
            .lock()
            .unwrap()
            .entry(id(key))
            .or_default()
            .clone();
        Histogram::from_arc(Arc::new(HistogramCell(cell)))
    }
}

fn store() -> Arc<Store> {
    static STORE: OnceLock<Arc<Store>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let store = Arc::new(Store::default());
            metrics::set_global_recorder(TestRecorder(store.clone())).expect("recorder");
            store
        })
        .clone()
}

fn counter(s: &Store, id: &str) -> u64 {
    s.counters
        .lock()
        .unwrap()
        .get(id)
        .map_or(0, |c| c.load(Ordering::SeqCst))
}

fn gauge(s: &Store, id: &str) -> Option<(f64, f64)> {
    s.gauges
        .lock()
        .unwrap()
        .get(id)
        .map(|g| (*g.now.lock().unwrap(), *g.max.lock().unwrap()))
}

/// A handler stuck on its first record makes the partition pause instead of buffering: the lag
/// gauge shows the records left on the broker, all records are still handled exactly once and
/// in order once it unblocks, the lag returns to 0, and outcome counters and the handler
/// histogram account for every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_partition_pauses_and_metrics_account_for_every_record() {
    let metrics = store();
    let env = Env::start();
    let (topic, group) = env.topic_and_group(1, 0);
    // More records than the per-partition buffer (512), so a blocked handler must pause the partition.
    const N: usize = 700;
    for i in 0..N {
        env.send(&topic, "scheme-1", &format!("r{i:03}"), vec![])
            .await;
    }

    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let handler = Recorder::with(move |m| {
        let gate = g.clone();
        let first = m.payload == b"r000";
        let poison = m.payload == b"r007";
        Box::pin(async move {
            if first {
                let _ = gate.acquire().await.expect("gate");
            }
            if poison {
                Err(HandlerError::Permanent("bad".into()))
            } else {
                Ok(())
            }
        })
    });
    let mut settings = env.settings(&group, &topic, vec![]);
    settings.kafka = settings.kafka.with("statistics.interval.ms", "100");
    let (stop, task) = env.spawn_consumer(settings, handler.clone());

    let lag_id = format!("nivesh_consumer_lag{{group={group},partition=0,topic={topic}}}");
    handler.until("r000 started", |c| !c.is_empty()).await;
    eventually("lag reported while blocked", || async {
        gauge(&metrics, &lag_id).is_some_and(|(now, _)| now > 0.0)
    })
    .await;
    assert_eq!(
        handler.payloads(),
        vec!["r000"],
        "nothing else runs while r00 blocks its partition"
    );

    gate.add_permits(1);
    handler.until("all records", |c| c.len() >= N).await;
    eventually("lag back to 0", || async {
        gauge(&metrics, &lag_id).is_some_and(|(now, _)| now == 0.0)
    })
    .await;
    stop.cancel();
    task.await.expect("join").expect("consumer");

    let expected: Vec<String> = (0..N).map(|i| format!("r{i:03}")).collect();
    assert_eq!(
        handler.payloads(),
        expected,
        "each record once, in partition order"
    );
    let (_, max_lag) = gauge(&metrics, &lag_id).expect("lag gauge");
    assert!(max_lag > 0.0 && max_lag <= N as f64, "max lag {max_lag}");

    let labels = |outcome: &str| {
        format!("nivesh_consumer_messages_total{{group={group},outcome={outcome},topic={topic}}}")
    };
    assert_eq!(counter(&metrics, &labels("ok")), (N - 1) as u64);
    assert_eq!(counter(&metrics, &labels("dead_lettered")), 1);
    assert_eq!(counter(&metrics, &labels("retried")), 0);
    let hist = format!("nivesh_consumer_handler_seconds{{group={group},topic={topic}}}");
    assert_eq!(
        metrics
            .histograms
            .lock()
            .unwrap()
            .get(&hist)
            .map(|h| h.load(Ordering::SeqCst)),
        Some(N as u64)
    );
    let produced = format!("nivesh_producer_messages_total{{outcome=ok,topic={topic}}}");
    assert_eq!(counter(&metrics, &produced), N as u64);
}
