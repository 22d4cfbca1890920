//! The crate's single error type.

/// Everything that can go wrong loading schemas, encoding/decoding events or talking to a
/// schema registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A schema file or schema text is unusable (not JSON, not Avro, misnamed file...).
    #[error("schema {origin}: {message}")]
    Schema { origin: String, message: String },

    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// The event type/version this build wants to write or read is not in the catalog.
    #[error("no schema {full_name} v{version} in the catalog")]
    UnknownSchema { full_name: String, version: u32 },

    /// A single-object message names a writer schema this build does not know (a newer producer,
    /// or not one of our events).
    #[error("no schema with CRC-64-AVRO fingerprint {0:#018x} in the catalog")]
    UnknownFingerprint(u64),

    /// The bytes start with neither the single-object marker `C3 01` nor the Confluent magic byte.
    #[error("not an Avro message we understand (first bytes: {0})")]
    UnknownFraming(String),

    #[error("message too short for {framing} framing: {len} bytes")]
    Truncated { framing: &'static str, len: usize },

    /// The message holds a different event than the one asked for.
    #[error("expected a {expected} event, the message holds {found}")]
    WrongEventType { expected: String, found: String },

    /// A Confluent-framed message reached a codec that has no registry to resolve its schema id.
    #[error("Confluent-framed message (schema id {0}) but this codec has no schema registry")]
    NoRegistry(u32),

    /// Encoding, decoding or schema resolution failed inside apache-avro.
    #[error("avro: {0}")]
    Avro(#[from] apache_avro::Error),

    /// The Avro body was decoded but bytes were left over: the message is corrupt or was written
    /// with a different schema than its header claims.
    #[error("{0} unexpected trailing bytes after the Avro body")]
    TrailingBytes(usize),

    /// A decimal does not fit the wire or domain representation exactly.
    #[error("decimal out of range: {0}")]
    DecimalRange(String),

    #[error("schema registry request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// The registry answered with a non-success status.
    #[error("schema registry {url} answered {status}: {body}")]
    Registry {
        url: String,
        status: u16,
        body: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
