//! nivesh-bus: Kafka for the fleet, effectively once without Kafka transactions.
//!
//! The guarantee is built from four parts that compose: an idempotent producer (no broker-side
//! duplicates or reordering), the transactional outbox (no event without its state change),
//! idempotent consumers (the inbox, in the services) and offsets committed only after processing
//! (a crash redelivers, never loses). Kafka transactions are not used anywhere: state lives in the
//! store, not in Kafka, and the local brokers and Event Hubs do not support them.
//!
//! Modules:
//! - [`catalog`]: every topic (key, partitions, retention, why) and consumer group (topics, retry
//!   tiers); `retry_topic`, `dead_letter_topic`, `all_topics`. The dev broker and deployment read it.
//! - `settings`: [`KafkaSettings`], bootstrap servers plus passthrough librdkafka properties
//!   (SASL for Event Hubs), with secrets redacted in Debug.
//! - `producer`: [`BusProducer`], the idempotent, lz4, bounded-timeout producer; `send` awaits the
//!   delivery report, `enqueue` splits enqueue from awaiting so batches keep their order.
//! - `message`: what handlers see ([`InboundMessage`]) and answer ([`HandlerError`]), the
//!   [`MessageHandler`] trait and the [`headers`] the bus writes.
//! - `consumer`: [`run_consumer`], per-partition ordered workers, bounded in-flight with pause
//!   backpressure, store-offset-after-processing, retry tiers with full-jitter delays, the
//!   dead-letter topic, commit on revocation and on shutdown, lag from librdkafka statistics.
//! - `outbox`: [`OutboxRelay`], publishes pending outbox records in commit order and acks them
//!   after the delivery report.
//! - [`devbroker`]: [`devbroker::DevBroker`], librdkafka's mock cluster on its own thread with the
//!   catalog's topics created, plus fault injection (broker down, latency, request errors).
//! - [`trace`]: W3C trace context in and out of Kafka headers.
//!
//! Metrics (via the `metrics` facade; the runtime installs the exporter):
//! `nivesh_consumer_messages_total{group,topic,outcome}`, `nivesh_consumer_handler_seconds`,
//! `nivesh_consumer_lag{group,topic,partition}`, `nivesh_producer_messages_total{topic,outcome}`,
//! `nivesh_outbox_published_total`, `nivesh_outbox_pending`.

pub mod catalog;
mod consumer;
pub mod devbroker;
mod message;
mod outbox;
mod producer;
mod settings;
pub mod trace;

pub use consumer::{
    ConsumerSettings, DEFAULT_MAX_IN_FLIGHT, UNSAFE_COMMIT_BEFORE_PROCESS_ENV, run_consumer,
};
pub use message::{HandlerError, InboundMessage, MessageHandler, headers};
pub use outbox::{DEFAULT_BATCH_SIZE, DEFAULT_IDLE_POLL, OutboxRelay};
pub use producer::{BusProducer, DEFAULT_MESSAGE_TIMEOUT, Delivery, OutgoingMessage};
pub use settings::KafkaSettings;

/// Everything the bus can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("delivery to {topic} failed: {source}")]
    Delivery {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("outbox store: {0}")]
    Store(#[from] nivesh_store::Error),
    #[error("unknown consumer group {0:?} (not in the catalog)")]
    UnknownGroup(String),
    #[error("invalid bus configuration: {0}")]
    Config(String),
    #[error("dev broker: {0}")]
    DevBroker(String),
    #[error("background task failed: {0}")]
    Task(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
