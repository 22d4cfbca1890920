//! Shared fixtures: a mock cluster per test, unique topics and groups, a recording handler and a
//! reader that returns everything on a topic.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nivesh_bus::catalog::{dead_letter_topic, retry_topic};
use nivesh_bus::devbroker::DevBroker;
use nivesh_bus::{
    BusProducer, ConsumerSettings, HandlerError, InboundMessage, KafkaSettings, MessageHandler,
    run_consumer,
};
use nivesh_testkit::kafka;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound for any wait in these tests: they finish in seconds or fail, never hang.
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Env {
    pub broker: DevBroker,
    pub bootstrap: String,
    pub producer: BusProducer,
}

impl Env {
    pub fn start() -> Env {
        let broker = DevBroker::start(1).expect("mock cluster");
        let bootstrap = broker.bootstrap_servers();
        let producer = BusProducer::new(&kafka(&bootstrap, "test-producer")).expect("producer");
        Env {
            broker,
            bootstrap,
            producer,
        }
    }

    /// A fresh topic plus the retry and DLQ topics of a fresh group.
    pub fn topic_and_group(&self, partitions: i32, tiers: usize) -> (String, String) {
        let topic = nivesh_testkit::unique("t");
        let group = nivesh_testkit::unique("g");
        self.broker.create_topic(&topic, partitions).expect("topic");
        for tier in 0..tiers {
            self.broker
                .create_topic(&retry_topic(&group, tier), 1)
                .expect("retry topic");
        }
        self.broker
            .create_topic(&dead_letter_topic(&group), 1)
            .expect("dlq topic");
        (topic, group)
    }

    pub fn settings(
        &self,
        group: &str,
        topic: &str,
        retry_delays: Vec<Duration>,
    ) -> ConsumerSettings {
        ConsumerSettings {
            group: group.to_owned(),
            topics: vec![topic.to_owned()],
            retry_delays,
            max_in_flight: 8,
            kafka: kafka(&self.bootstrap, group),
            unsafe_commit_before_process: false,
        }
    }

    pub async fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &str,
        headers: Vec<(String, Vec<u8>)>,
    ) {
        kafka::produce_raw(&self.producer, topic, key, payload.into(), headers).await;
    }

    pub fn spawn_consumer(
        &self,
        settings: ConsumerSettings,
        handler: Arc<dyn MessageHandler>,
    ) -> (CancellationToken, JoinHandle<nivesh_bus::Result<()>>) {
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_consumer(
            settings,
            handler,
            self.producer.clone(),
            stop.clone(),
        ));
        (stop, task)
    }

    /// Every record on `topic`, read from the beginning up to the current high watermarks.
    pub async fn read_all(&self, topic: &str) -> Vec<InboundMessage> {
        kafka::read_all(&self.bootstrap, topic, WAIT).await
    }

    /// Offsets committed by `group` on every partition of `topic` (`None`: nothing committed).
    pub async fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
        let bootstrap = self.bootstrap.clone();
        let (group, topic) = (group.to_owned(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .create()
                .expect("consumer");
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                tpl.add_partition(&topic, p);
            }
            let got = c
                .committed_offsets(tpl, Duration::from_secs(10))
                .expect("committed offsets");
            (0..partitions)
                .map(
                    |p| match got.find_partition(&topic, p).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => Some(o),
                        _ => None,
                    },
                )
                .collect()
        })
        .await
        .expect("committed task")
    }
}

/// Test clients: short session timeout so a departed member is noticed quickly.
pub fn kafka(bootstrap: &str, client_id: &str) -> KafkaSettings {
    KafkaSettings::new(bootstrap, client_id)
        .with("session.timeout.ms", "6000")
        .with("heartbeat.interval.ms", "500")
}

/// One handler call as seen by the handler.
#[derive(Debug, Clone)]
pub struct Call {
    pub msg: InboundMessage,
    pub at_ms: i64,
    pub trace_id: String,
}

type Behaviour = dyn Fn(&InboundMessage) -> std::pin::Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>
    + Send
    + Sync;

/// Records every call, then runs the test's behaviour for it.
pub struct Recorder {
    pub calls: Mutex<Vec<Call>>,
    behaviour: Box<Behaviour>,
}

impl Recorder {
    pub fn ok() -> Arc<Self> {
        Self::with(|_| Box::pin(async { Ok(()) }))
    }

    pub fn with<F>(f: F) -> Arc<Self>
    where
        F: Fn(
                &InboundMessage,
            )
                -> std::pin::Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>
            + Send
            + Sync
            + 'static,
    {
        Arc::new(Recorder {
            calls: Mutex::new(Vec::new()),
            behaviour: Box::new(f),
        })
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn payloads(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| String::from_utf8_lossy(&c.msg.payload).into_owned())
            .collect()
    }

    /// Wait until `pred` holds over the calls so far.
    pub async fn until(&self, what: &str, pred: impl Fn(&[Call]) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            if pred(&self.calls()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; calls: {:?}",
                self.payloads()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[async_trait]
impl MessageHandler for Recorder {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let trace_id = tracing::Span::current()
            .context()
            .span()
            .span_context()
            .trace_id()
            .to_string();
        self.calls.lock().unwrap().push(Call {
            msg: msg.clone(),
            at_ms: now_ms(),
            trace_id,
        });
        (self.behaviour)(msg).await
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn header<'a>(m: &'a InboundMessage, name: &str) -> &'a str {
    m.header_str(name)
        .unwrap_or_else(|| panic!("header {name} missing; headers: {:?}", m.headers))
}

/// Poll an async condition until it holds or the test deadline passes.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
