//! What a handler sees and what it may answer.

use async_trait::async_trait;

/// Header names the bus writes. Retry and dead-letter records carry the `ORIGINAL_*`, attempt,
/// error and time headers; dead letters add the reason and when.
pub mod headers {
    /// Topic the record was first consumed from (not the retry topic).
    pub const ORIGINAL_TOPIC: &str = "nivesh-original-topic";
    pub const ORIGINAL_PARTITION: &str = "nivesh-original-partition";
    pub const ORIGINAL_OFFSET: &str = "nivesh-original-offset";
    /// Number of attempts that have failed so far (decimal). The next attempt is this plus one.
    pub const ATTEMPT: &str = "nivesh-attempt";
    /// The last failure's message.
    pub const ERROR: &str = "nivesh-error";
    /// When the first attempt failed (ms since the Unix epoch).
    pub const FIRST_FAILED_AT: &str = "nivesh-first-failed-at";
    /// Earliest time the next attempt may run (ms since the Unix epoch).
    pub const NOT_BEFORE: &str = "nivesh-not-before";
    /// Why the record was dead-lettered: [`REASON_PERMANENT`] or [`REASON_RETRIES_EXHAUSTED`].
    pub const DLQ_REASON: &str = "nivesh-dlq-reason";
    /// When the record was dead-lettered (ms since the Unix epoch).
    pub const DEAD_LETTERED_AT: &str = "nivesh-dead-lettered-at";
    /// The outbox message id, set by the relay so consumers and tools can dedupe without decoding.
    pub const MESSAGE_ID: &str = "nivesh-message-id";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";

    /// The handler said the record can never succeed (including: it cannot be decoded).
    pub const REASON_PERMANENT: &str = "permanent";
    /// Every retry tier failed.
    pub const REASON_RETRIES_EXHAUSTED: &str = "retries-exhausted";
}

/// One record handed to a [`MessageHandler`].
///
/// For a redelivery from a retry topic, `topic`, `partition` and `offset` are those of the
/// original record (from the `nivesh-original-*` headers), so a handler that dispatches on the
/// topic behaves the same on every attempt; `attempt` is greater than 1 then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Broker or producer timestamp, ms since the Unix epoch.
    pub timestamp_ms: Option<i64>,
    /// 1 on first delivery, 2 on the first retry, and so on.
    pub attempt: u32,
}

impl InboundMessage {
    /// The first header with this name (Kafka allows repeats; the bus never writes them).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.headers, name)
    }

    /// The header as UTF-8, if present and valid.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The key as UTF-8, if present and valid.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }
}

pub(crate) fn find_header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

/// How a handler failed. The consumer never drops a record on either: it forwards it and only
/// then moves past it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Might work later (store or dependency down, timeout): goes to the next retry tier, or to
    /// the dead-letter topic after the last one.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Will never work (undecodable, violates a contract): goes to the dead-letter topic now.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A service's business logic for one consumer group.
///
/// Must be idempotent: the bus delivers at least once (a crash after the effect but before the
/// offset commit redelivers), and the outbox may publish an event twice. The inbox pattern
/// (an `inbox:<group>:<event id>` `Create` in the same batch as the effect) makes it so.
///
/// A handler whose per-record cost is dominated by store round trips can also take records
/// several at a time: return `true` from [`MessageHandler::batched`] and implement
/// [`MessageHandler::handle_many`]. The consumer then hands it *rounds*: at most one record per
/// key (so records of one key still run strictly in offset order, one round after another), all
/// from one partition of one topic, never from a retry topic (those keep their per-record wait
/// and go through [`MessageHandler::handle`]).
#[async_trait]
pub trait MessageHandler: Send + Sync + 'static {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError>;

    /// Whether the consumer should use [`MessageHandler::handle_many`] for first deliveries.
    fn batched(&self) -> bool {
        false
    }

    /// Handle records of distinct keys together; one result per record, in order. Each record
    /// succeeds or fails on its own exactly as through [`MessageHandler::handle`] (a failed one
    /// goes to the retry tiers, the others are done): no record's effect may depend on another
    /// record of the same call committing. The default handles them concurrently one by one.
    async fn handle_many(&self, msgs: &[InboundMessage]) -> Vec<Result<(), HandlerError>> {
        futures::future::join_all(msgs.iter().map(|m| self.handle(m))).await
    }
}
