//! Nivesh's event contracts: typed events, the Avro codec and the schema evolution gate.
//!
//! The contracts themselves are files, `schemas/avro/<record full name>/v<N>.avsc`, every
//! released version kept and never edited. Each file is self-contained (shared named types such
//! as [`EventMeta`] and `nivesh.common.Decimal` are inlined, identically, in every file) so it can
//! be registered in a Confluent registry without references. See `docs/events.md`.
//!
//! Modules, in the order a message meets them:
//! - `meta`: [`EventMeta`], the envelope every event carries (UUID v7 id, type, UTC instant shown
//!   in IST, producer, causation/idempotency key, schema version), and the [`Event`] trait that
//!   binds a struct to `FULL_NAME` + `VERSION` (always the latest version of its schema).
//! - `nav`: the NAV pipeline's events, [`RawNavReceived`] -> [`NavValidated`] | [`NavRejected`] ->
//!   [`NavPublished`], with domain types (`rust_decimal::Decimal`, `chrono::NaiveDate`).
//! - `decimal` + `wire`: the serde adapters from domain types to the exact Avro form. Money, NAV
//!   and units travel as [`WireDecimal`] `{unscaled: long, scale: int}`, NOT Avro's `decimal`
//!   logical type: its scale is fixed per schema, while a NAV must keep the 0-8 decimals its source
//!   gave; apache-avro's `Decimal` is scale-less big-endian bytes that serde derive does not
//!   round-trip cleanly and whose precision overflow is silent in places; fastavro returns Python
//!   `Decimal`s subject to context precision. A scaled i64 is exact, fast and portable, and covers
//!   every INR amount / NAV / unit count at its scale. Dates are Avro `date`, instants
//!   `timestamp-micros` (UTC).
//! - `order`: the investor transaction flow, [`OrderPlaced`] -> [`PaymentInitiated`] ->
//!   [`PaymentSucceeded`] | [`PaymentFailed`] -> [`TransactionCompleted`] (with [`LotMovement`]s)
//!   | [`TransactionFailed`] -> [`OrderFailed`] -> [`PaymentRefunded`]; and [`PortfolioUpdated`].
//! - `identity`: onboarding's [`InvestorOnboarded`], [`KycVerified`] and [`InvestorErased`]
//!   (PAN only masked, never an Aadhaar number).
//! - `ops`: [`AlertRaised`], the generic operator alert any service raises (topic `ops.alerts`).
//! - `support`: [`TicketCreated`], a support ticket for a person (topic `support.tickets`).
//! - `catalog`: [`SchemaCatalog`], all versions of all schemas embedded at build time (`build.rs`
//!   scans `schemas/avro`), indexed by name/version and by CRC-64-AVRO fingerprint;
//!   [`SchemaCatalog::from_dir`] reads a directory instead (for `schema-check`).
//! - [`canonical`]: Parsing Canonical Form and the Rabin fingerprint, written to the spec because
//!   apache-avro's canonical form keeps logical-type wrappers and would not match other languages.
//! - `codec`: [`AvroCodec`], one interface for both [`Framing`]s: single-object (default;
//!   `C3 01`, fingerprint, body; no registry needed) and Confluent (`00`, registry id, body). Decoding detects the
//!   framing, finds the writer schema and resolves it against the struct's reader schema, so old
//!   events decode into new structs.
//! - `registry`: [`SchemaRegistryClient`], Confluent REST with id <-> schema caches; subjects use
//!   RecordNameStrategy (subject = record full name) because several event types may share a
//!   topic (audit, retry and dead-letter topics).
//! - [`compat`]: the BACKWARD_TRANSITIVE gate (+ no version gaps, record name = directory, shared
//!   types identical), run in CI by the `schema-check` binary.
//!
//! Kafka headers that travel with every event are named by the `HEADER_*` constants;
//! [`AvroCodec::headers`] builds them.

pub mod canonical;
mod catalog;
mod codec;
pub mod compat;
mod decimal;
mod error;
mod identity;
mod meta;
mod nav;
mod ops;
mod order;
mod registry;
mod support;
mod wire;

pub use apache_avro;
pub use catalog::{RegisteredSchema, SchemaCatalog};
pub use codec::{AvroCodec, CONFLUENT_MAGIC, Framing, SINGLE_OBJECT_MARKER};
pub use decimal::WireDecimal;
pub use error::{Error, Result};
pub use identity::{InvestorErased, InvestorOnboarded, KycVerified, kyc_status};
pub use meta::{Event, EventMeta, IST};
pub use nav::{NavPublished, NavRejected, NavValidated, RawNavReceived};
pub use ops::{AlertRaised, severity as alert_severity};
pub use order::{
    LotMovement, OrderFailed, OrderPlaced, PaymentFailed, PaymentInitiated, PaymentRefunded,
    PaymentSucceeded, PortfolioUpdated, TransactionCompleted, TransactionFailed, leg, order_kind,
};
pub use registry::SchemaRegistryClient;
pub use support::TicketCreated;

/// Kafka header: full record name of the payload (`nivesh.nav.RawNavReceived`), so routers,
/// DLQ tooling and metrics need not decode the body.
pub const HEADER_EVENT_TYPE: &str = "nivesh-event-type";
/// Kafka header: the event id (UUID string); equals `meta.event_id` and the outbox message id.
pub const HEADER_EVENT_ID: &str = "nivesh-event-id";
/// Kafka header: how the payload is encoded (one of the `CONTENT_TYPE_*` values).
pub const HEADER_CONTENT_TYPE: &str = "content-type";
/// Content type of single-object framed Avro.
pub const CONTENT_TYPE_AVRO_SINGLE_OBJECT: &str = "application/avro; framing=single-object";
/// Content type of Confluent-framed Avro.
pub const CONTENT_TYPE_AVRO_CONFLUENT: &str = "application/avro; framing=confluent";
