//! The envelope every event carries and the trait that ties a Rust struct to its schema.

use chrono::{DateTime, FixedOffset, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// India Standard Time, UTC+05:30 (no daylight saving, so a fixed offset is exact).
pub const IST: FixedOffset = match FixedOffset::east_opt(5 * 3600 + 30 * 60) {
    Some(ist) => ist,
    None => panic!("+05:30 is a valid offset"),
};

/// `nivesh.common.EventMeta`: who produced an event, when, and because of what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    /// UUID v7: unique and time-ordered, so ids sort roughly by creation (useful in inbox
    /// markers and logs) without coordination.
    #[serde(with = "crate::wire::uuid_string")]
    pub event_id: Uuid,
    /// Full record name of the payload, e.g. `nivesh.nav.RawNavReceived`.
    pub event_type: String,
    /// The instant the fact happened. Stored as a UTC instant (Avro timestamp-micros); use
    /// [`EventMeta::occurred_at_ist`] to show it to humans.
    #[serde(with = "crate::wire::timestamp_micros")]
    pub occurred_at: DateTime<Utc>,
    /// Service name of the producer.
    pub producer: String,
    /// Idempotency/causation key: the file id + line, the upstream event id, an order's
    /// Idempotency-Key.
    pub causation_key: Option<String>,
    /// Schema version the producer wrote; an old event decoded into a newer struct keeps the
    /// version it was written with.
    pub schema_version: i32,
}

impl EventMeta {
    /// A fresh envelope for an event of type `E`, stamped now (truncated to the microsecond the
    /// wire carries, so the value round-trips unchanged).
    pub fn new<E: Event>(producer: &str, causation_key: Option<String>) -> Self {
        let now = Utc::now();
        let occurred_at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        EventMeta {
            event_id: Uuid::now_v7(),
            event_type: E::FULL_NAME.to_string(),
            occurred_at,
            producer: producer.to_string(),
            causation_key,
            schema_version: i32::try_from(E::VERSION).expect("schema versions are small"),
        }
    }

    /// `occurred_at` in India Standard Time.
    pub fn occurred_at_ist(&self) -> DateTime<FixedOffset> {
        self.occurred_at.with_timezone(&IST)
    }
}

/// A Rust struct that reads and writes one Avro record schema of the catalog.
///
/// The struct always matches the LATEST version of its schema; older versions are read through
/// Avro schema resolution (the compatibility gate guarantees that works).
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Full Avro record name, e.g. `nivesh.nav.RawNavReceived`; also the registry subject.
    const FULL_NAME: &'static str;
    /// The schema version (`schemas/avro/<FULL_NAME>/v<VERSION>.avsc`) this struct reads/writes.
    const VERSION: u32;
    fn meta(&self) -> &EventMeta;
}

/// Implements [`Event`] and mirrors its constants as inherent constants, so call sites can write
/// `RawNavReceived::FULL_NAME` without importing the trait.
macro_rules! impl_event {
    ($ty:ident, $full_name:literal, v $version:literal) => {
        impl $ty {
            /// Full Avro record name (same as [`crate::Event::FULL_NAME`]).
            pub const FULL_NAME: &'static str = $full_name;
            /// Schema version this struct reads and writes (same as [`crate::Event::VERSION`]).
            pub const VERSION: u32 = $version;
        }

        impl $crate::Event for $ty {
            const FULL_NAME: &'static str = $full_name;
            const VERSION: u32 = $version;
            fn meta(&self) -> &$crate::EventMeta {
                &self.meta
            }
        }
    };
}
pub(crate) use impl_event;
