//! Avro encoding with two framings behind one interface.
//!
//! * Single-object (default, Avro spec): `C3 01` + 8-byte little-endian CRC-64-AVRO fingerprint
//!   of the writer schema + body. Needs no registry: the fingerprint is looked up in the embedded
//!   catalog, which holds every released version.
//! * Confluent wire format: `00` + 4-byte big-endian registry schema id + body, for consumers
//!   that live in the Confluent ecosystem.
//!
//! `decode` detects the framing from the first bytes, so a consumer reads both while producers
//! migrate. It finds the WRITER schema (fingerprint -> catalog, id -> registry) and resolves it
//! against the reader schema of the requested struct, so events written with an older version
//! decode into the current struct (new optional fields take their defaults).
//!
//! Hot path: schemas are parsed once (catalog at first use, registry ids on first sight); when
//! writer and reader are the same schema (the normal case) the body is deserialized straight
//! into the struct, skipping the generic `Value` tree that resolution needs.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;

use crate::catalog::{RegisteredSchema, SchemaCatalog};
use crate::registry::{RegistrySchema, SchemaRegistryClient};
use crate::{Error, Event, Result};

/// First two bytes of an Avro single-object encoded message.
pub const SINGLE_OBJECT_MARKER: [u8; 2] = [0xC3, 0x01];
/// First byte of a Confluent wire-format message.
pub const CONFLUENT_MAGIC: u8 = 0x00;
const SINGLE_OBJECT_HEADER_LEN: usize = 10;
const CONFLUENT_HEADER_LEN: usize = 5;

/// How the schema is identified in front of the Avro body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// `C3 01` + CRC-64-AVRO fingerprint (little endian) + body.
    SingleObject,
    /// `00` + registry schema id (big endian) + body.
    Confluent,
}

impl Framing {
    /// The framing a message uses, judged from its first bytes.
    pub fn detect(bytes: &[u8]) -> Option<Framing> {
        if bytes.starts_with(&SINGLE_OBJECT_MARKER) {
            Some(Framing::SingleObject)
        } else if bytes.first() == Some(&CONFLUENT_MAGIC) {
            Some(Framing::Confluent)
        } else {
            None
        }
    }

    /// Value of the [`crate::HEADER_CONTENT_TYPE`] Kafka header for this framing.
    pub fn content_type(self) -> &'static str {
        match self {
            Framing::SingleObject => crate::CONTENT_TYPE_AVRO_SINGLE_OBJECT,
            Framing::Confluent => crate::CONTENT_TYPE_AVRO_CONFLUENT,
        }
    }
}

/// Encodes events into framed Avro and decodes them back. Cheap to clone.
#[derive(Clone)]
pub struct AvroCodec {
    inner: Arc<Inner>,
}

struct Inner {
    framing: Framing,
    catalog: &'static SchemaCatalog,
    registry: Option<SchemaRegistryClient>,
    /// (full name, version) -> registry id, so encoding does not hash the schema text per message.
    confluent_ids: RwLock<HashMap<(&'static str, u32), u32>>,
}

impl std::fmt::Debug for AvroCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroCodec")
            .field("framing", &self.inner.framing)
            .field("registry", &self.inner.registry)
            .finish_non_exhaustive()
    }
}

impl Default for AvroCodec {
    fn default() -> Self {
        AvroCodec::single_object()
    }
}

/// The writer schema of a message, wherever it was found.
enum Writer {
    Catalog(&'static RegisteredSchema),
    Registry(Arc<RegistrySchema>),
}

impl Writer {
    fn full_name(&self) -> &str {
        match self {
            Writer::Catalog(s) => &s.full_name,
            Writer::Registry(s) => &s.full_name,
        }
    }
    fn schema(&self) -> &Schema {
        match self {
            Writer::Catalog(s) => &s.schema,
            Writer::Registry(s) => &s.schema,
        }
    }
    fn fingerprint(&self) -> u64 {
        match self {
            Writer::Catalog(s) => s.fingerprint,
            Writer::Registry(s) => s.fingerprint,
        }
    }
}

/// Writer and same-schema reader for one catalog schema, with their named-type tables resolved
/// once. Building them walks the schema and allocates its name table, about a fifth of the cost
/// of encoding or decoding a NAV event, so they are made once per schema for the process.
struct Prepared {
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
}

fn prepared(schema: &'static RegisteredSchema) -> Result<&'static Prepared> {
    type Table = HashMap<(&'static str, u32), Result<Prepared, String>>;
    static PREPARED: OnceLock<Table> = OnceLock::new();
    let all = PREPARED.get_or_init(|| {
        SchemaCatalog::embedded()
            .iter()
            .map(|s| {
                // Kept per schema (not `?` over all) so one bad schema cannot disable the others.
                let prepared = GenericDatumWriter::builder(&s.schema)
                    .build()
                    .and_then(|writer| {
                        Ok(Prepared {
                            writer,
                            reader: GenericDatumReader::builder(&s.schema).build()?,
                        })
                    })
                    .map_err(|e| e.to_string());
                ((s.full_name.as_str(), s.version), prepared)
            })
            .collect()
    });
    match all.get(&(schema.full_name.as_str(), schema.version)) {
        Some(Ok(p)) => Ok(p),
        Some(Err(message)) => Err(Error::Schema {
            origin: schema.origin.clone(),
            message: message.clone(),
        }),
        None => Err(Error::UnknownSchema {
            full_name: schema.full_name.clone(),
            version: schema.version,
        }),
    }
}

impl AvroCodec {
    /// Single-object framing with the embedded catalog: the default, no infrastructure needed.
    /// Decodes single-object messages only (a Confluent-framed one needs a registry).
    pub fn single_object() -> Self {
        Self::build(Framing::SingleObject, None)
    }

    /// Confluent wire format: registers each event type's schema (subject = record full name)
    /// on first encode. Also decodes single-object messages.
    pub fn confluent(registry: SchemaRegistryClient) -> Self {
        Self::build(Framing::Confluent, Some(registry))
    }

    fn build(framing: Framing, registry: Option<SchemaRegistryClient>) -> Self {
        AvroCodec {
            inner: Arc::new(Inner {
                framing,
                catalog: SchemaCatalog::embedded(),
                registry,
                confluent_ids: RwLock::default(),
            }),
        }
    }

    /// The framing `encode` writes.
    pub fn framing(&self) -> Framing {
        self.inner.framing
    }

    pub fn catalog(&self) -> &'static SchemaCatalog {
        self.inner.catalog
    }

    /// Encodes `event` with the schema version its struct declares, framed per [`Self::framing`].
    pub async fn encode<E: Event>(&self, event: &E) -> Result<Vec<u8>> {
        let schema = self.schema_of::<E>()?;
        let mut out = Vec::with_capacity(256);
        match self.inner.framing {
            Framing::SingleObject => {
                out.extend_from_slice(&SINGLE_OBJECT_MARKER);
                out.extend_from_slice(&schema.fingerprint.to_le_bytes());
            }
            Framing::Confluent => {
                let id = self.confluent_id::<E>(schema).await?;
                out.push(CONFLUENT_MAGIC);
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
        // Straight from the struct to bytes through serde, validated against the schema as it
        // goes; no intermediate Value tree.
        prepared(schema)?.writer.write_ser(&mut out, event)?;
        Ok(out)
    }

    /// Decodes a message of either framing into `E`, resolving the writer's schema version
    /// against `E`'s. Errors when the message holds another event type.
    pub async fn decode<E: Event>(&self, bytes: &[u8]) -> Result<E> {
        let reader = self.schema_of::<E>()?;
        let (writer, mut body) = self.writer_of(bytes).await?;
        if writer.full_name() != E::FULL_NAME {
            return Err(Error::WrongEventType {
                expected: E::FULL_NAME.into(),
                found: writer.full_name().into(),
            });
        }
        let event = if writer.fingerprint() == reader.fingerprint {
            // Same Parsing Canonical Form means the same binary layout: read directly.
            prepared(reader)?.reader.read_deser::<E>(&mut body)?
        } else {
            // Only events written with another version take this path (during a migration), so
            // the resolving reader is built per message rather than cached per version pair.
            let value = GenericDatumReader::builder(writer.schema())
                .reader_schema(&reader.schema)
                .build()?
                .read_value(&mut body)?;
            apache_avro::from_value::<E>(&value)?
        };
        ensure_consumed(body)?;
        Ok(event)
    }

    /// Decodes any of our messages without knowing its type (DLQ tooling, debugging): the full
    /// record name, the schema version it was written with, and the value as written.
    ///
    /// For Confluent framing the version is the catalog version with the same canonical form,
    /// else the `meta.schema_version` the producer stamped, else 0.
    pub async fn decode_value(&self, bytes: &[u8]) -> Result<(String, u32, Value)> {
        let (writer, mut body) = self.writer_of(bytes).await?;
        let value = match &writer {
            Writer::Catalog(s) => prepared(s)?.reader.read_value(&mut body)?,
            Writer::Registry(s) => GenericDatumReader::builder(&s.schema)
                .build()?
                .read_value(&mut body)?,
        };
        ensure_consumed(body)?;
        let version = match &writer {
            Writer::Catalog(s) => s.version,
            Writer::Registry(_) => stamped_version(&value).unwrap_or(0),
        };
        Ok((writer.full_name().to_string(), version, value))
    }

    /// The event type of a single-object message, from its header alone (no body decoding).
    /// `None` for Confluent framing (the id means nothing without a registry) and for unknown
    /// fingerprints.
    pub fn peek_type(bytes: &[u8]) -> Option<String> {
        if Framing::detect(bytes)? != Framing::SingleObject
            || bytes.len() < SINGLE_OBJECT_HEADER_LEN
        {
            return None;
        }
        let fingerprint = u64::from_le_bytes(bytes[2..SINGLE_OBJECT_HEADER_LEN].try_into().ok()?);
        SchemaCatalog::embedded()
            .by_fingerprint(fingerprint)
            .map(|s| s.full_name.clone())
    }

    /// Kafka headers for an event: type, id and content type (framing).
    pub fn headers<E: Event>(&self, event: &E) -> Vec<(String, Vec<u8>)> {
        vec![
            (
                crate::HEADER_EVENT_TYPE.to_string(),
                E::FULL_NAME.as_bytes().to_vec(),
            ),
            (
                crate::HEADER_EVENT_ID.to_string(),
                event.meta().event_id.to_string().into_bytes(),
            ),
            (
                crate::HEADER_CONTENT_TYPE.to_string(),
                self.inner.framing.content_type().as_bytes().to_vec(),
            ),
        ]
    }

    fn schema_of<E: Event>(&self) -> Result<&'static RegisteredSchema> {
        self.inner
            .catalog
            .version(E::FULL_NAME, E::VERSION)
            .ok_or_else(|| Error::UnknownSchema {
                full_name: E::FULL_NAME.into(),
                version: E::VERSION,
            })
    }

    async fn confluent_id<E: Event>(&self, schema: &RegisteredSchema) -> Result<u32> {
        let key = (E::FULL_NAME, E::VERSION);
        if let Some(id) = self
            .inner
            .confluent_ids
            .read()
            .expect("codec cache lock")
            .get(&key)
        {
            return Ok(*id);
        }
        let registry = self
            .inner
            .registry
            .as_ref()
            .expect("Confluent framing is only built with a registry");
        let id = registry.register(E::FULL_NAME, &schema.json).await?;
        self.inner
            .confluent_ids
            .write()
            .expect("codec cache lock")
            .insert(key, id);
        Ok(id)
    }

    /// Splits the framing off and finds the writer schema.
    async fn writer_of<'b>(&self, bytes: &'b [u8]) -> Result<(Writer, &'b [u8])> {
        match Framing::detect(bytes) {
            Some(Framing::SingleObject) => {
                if bytes.len() < SINGLE_OBJECT_HEADER_LEN {
                    return Err(Error::Truncated {
                        framing: "single-object",
                        len: bytes.len(),
                    });
                }
                let fingerprint = u64::from_le_bytes(
                    bytes[2..SINGLE_OBJECT_HEADER_LEN]
                        .try_into()
                        .expect("8 header bytes"),
                );
                let schema = self
                    .inner
                    .catalog
                    .by_fingerprint(fingerprint)
                    .ok_or(Error::UnknownFingerprint(fingerprint))?;
                Ok((Writer::Catalog(schema), &bytes[SINGLE_OBJECT_HEADER_LEN..]))
            }
            Some(Framing::Confluent) => {
                if bytes.len() < CONFLUENT_HEADER_LEN {
                    return Err(Error::Truncated {
                        framing: "Confluent",
                        len: bytes.len(),
                    });
                }
                let id = u32::from_be_bytes(
                    bytes[1..CONFLUENT_HEADER_LEN]
                        .try_into()
                        .expect("4 header bytes"),
                );
                let registry = self.inner.registry.as_ref().ok_or(Error::NoRegistry(id))?;
                let fetched = registry.resolve_id(id).await?;
                // A registry schema that is one of ours is used through the catalog entry: same
                // layout (same canonical form), and it enables the direct-deserialize fast path.
                let writer = match self.inner.catalog.by_fingerprint(fetched.fingerprint) {
                    Some(known) if known.full_name == fetched.full_name => Writer::Catalog(known),
                    _ => Writer::Registry(fetched),
                };
                Ok((writer, &bytes[CONFLUENT_HEADER_LEN..]))
            }
            None => {
                let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
                Err(Error::UnknownFraming(head.join(" ")))
            }
        }
    }
}

fn ensure_consumed(rest: &[u8]) -> Result<()> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(Error::TrailingBytes(rest.len()))
    }
}

/// `meta.schema_version` of a decoded event value, if it has one.
fn stamped_version(value: &Value) -> Option<u32> {
    let Value::Record(fields) = value else {
        return None;
    };
    let (_, Value::Record(meta)) = fields.iter().find(|(name, _)| name == "meta")? else {
        return None;
    };
    match meta.iter().find(|(name, _)| name == "schema_version")? {
        (_, Value::Int(v)) => u32::try_from(*v).ok(),
        _ => None,
    }
}
