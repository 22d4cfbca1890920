//! A Confluent Schema Registry client (REST over reqwest) with caches in both directions.
//!
//! Subject naming is RecordNameStrategy: subject = the record's full name (e.g.
//! `nivesh.nav.RawNavReceived`), not TopicNameStrategy's `<topic>-value`. Several event types
//! may share one topic (`audit.events`, retry and dead-letter topics carry whatever failed), and
//! the default strategy would force every type on a topic into one subject whose compatibility
//! rules then compare unrelated records. With the record name, each event type evolves under its
//! own BACKWARD_TRANSITIVE history, exactly mirroring `schemas/avro/<full name>/`.
//!
//! Schemas are immutable once an id is assigned, so both caches are never invalidated.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apache_avro::Schema;
use serde::Deserialize;

use crate::canonical::fingerprint_of;
use crate::{Error, Result};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A writer schema fetched from (or registered in) the registry, parsed once.
#[derive(Debug)]
pub(crate) struct RegistrySchema {
    pub(crate) full_name: String,
    pub(crate) schema: Schema,
    pub(crate) fingerprint: u64,
}

/// Client for the Confluent Schema Registry REST API. Cheap to clone (shared caches).
#[derive(Clone)]
pub struct SchemaRegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    base_url: String,
    http: reqwest::Client,
    /// (subject, schema text) -> id.
    ids: RwLock<HashMap<(String, String), u32>>,
    /// id -> parsed schema.
    schemas: RwLock<HashMap<u32, Arc<RegistrySchema>>>,
}

impl std::fmt::Debug for SchemaRegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistryClient")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct IdResponse {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaResponse {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
}

impl SchemaRegistryClient {
    /// A client for the registry at `base_url` (e.g. `http://127.0.0.1:8081`), with a 10 s
    /// per-request timeout so a hung registry surfaces as an error instead of a stalled consumer.
    pub fn new(base_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self::with_http_client(base_url, http)
    }

    /// Same, with a caller-configured HTTP client (auth headers, TLS roots, timeouts).
    pub fn with_http_client(base_url: &str, http: reqwest::Client) -> Self {
        SchemaRegistryClient {
            inner: Arc::new(Inner {
                base_url: base_url.trim_end_matches('/').to_string(),
                http,
                ids: RwLock::default(),
                schemas: RwLock::default(),
            }),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Registers `schema_json` under `subject` (idempotent in the registry: the same schema
    /// gets the same id) and returns its global id. Cached, so only the first call per
    /// subject/schema goes over the network.
    pub async fn register(&self, subject: &str, schema_json: &str) -> Result<u32> {
        let key = (subject.to_string(), schema_json.to_string());
        if let Some(id) = self
            .inner
            .ids
            .read()
            .expect("registry cache lock")
            .get(&key)
        {
            return Ok(*id);
        }
        // Parse before sending: a schema we cannot read back is a bug on our side, not the
        // registry's, and we want the parsed form cached for decoding our own messages.
        let parsed = parse_registry_schema(schema_json, subject)?;
        let url = self.url(&["subjects", subject, "versions"])?;
        let body = serde_json::json!({ "schema": schema_json }).to_string();
        let request = self
            .inner
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(body);
        let IdResponse { id } = self.send(request, &url).await?;
        tracing::debug!(subject, id, "schema registered");
        self.inner
            .schemas
            .write()
            .expect("registry cache lock")
            .entry(id)
            .or_insert_with(|| Arc::new(parsed));
        self.inner
            .ids
            .write()
            .expect("registry cache lock")
            .insert(key, id);
        Ok(id)
    }

    /// The schema with the given global id.
    pub async fn schema_by_id(&self, id: u32) -> Result<Schema> {
        Ok(self.resolve_id(id).await?.schema.clone())
    }

    /// Cached id -> parsed schema; the codec's hot path (no clone of the schema).
    pub(crate) async fn resolve_id(&self, id: u32) -> Result<Arc<RegistrySchema>> {
        if let Some(s) = self
            .inner
            .schemas
            .read()
            .expect("registry cache lock")
            .get(&id)
        {
            return Ok(Arc::clone(s));
        }
        let url = self.url(&["schemas", "ids", &id.to_string()])?;
        let request = self
            .inner
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, CONTENT_TYPE);
        let response: SchemaResponse = self.send(request, &url).await?;
        if let Some(kind) = response.schema_type.as_deref().filter(|k| *k != "AVRO") {
            return Err(Error::Schema {
                origin: url,
                message: format!("schema id {id} is {kind}, not AVRO"),
            });
        }
        let parsed = Arc::new(parse_registry_schema(
            &response.schema,
            &format!("registry id {id}"),
        )?);
        let mut cache = self.inner.schemas.write().expect("registry cache lock");
        Ok(Arc::clone(cache.entry(id).or_insert(parsed)))
    }

    fn url(&self, segments: &[&str]) -> Result<String> {
        let mut url = reqwest::Url::parse(&self.inner.base_url).map_err(|e| Error::Schema {
            origin: self.inner.base_url.clone(),
            message: format!("bad registry URL: {e}"),
        })?;
        url.path_segments_mut()
            .map_err(|()| Error::Schema {
                origin: self.inner.base_url.clone(),
                message: "registry URL cannot have a path".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url.to_string())
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T> {
        let http = |source| Error::Http {
            url: url.to_string(),
            source,
        };
        let response = request.send().await.map_err(http)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(Error::Registry {
                url: url.to_string(),
                status: status.as_u16(),
                body,
            });
        }
        response.json::<T>().await.map_err(http)
    }
}

fn parse_registry_schema(json: &str, origin: &str) -> Result<RegistrySchema> {
    let err = |message: String| Error::Schema {
        origin: origin.to_string(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| err(format!("not JSON: {e}")))?;
    let schema = Schema::parse(&value).map_err(|e| err(format!("not an Avro schema: {e}")))?;
    let full_name = match &schema {
        Schema::Record(r) => r.name.fullname(None),
        _ => return Err(err("not a record schema".into())),
    };
    Ok(RegistrySchema {
        full_name,
        schema,
        fingerprint: fingerprint_of(&value)?,
    })
}
