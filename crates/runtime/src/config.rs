//! Layered settings.
//!
//! Later layers win: built-in defaults (`config/default.toml` compiled in) →
//! `<dir>/default.toml` → `<dir>/<NIVESH_ENV or "local">.toml` → `<dir>/<service>.toml` →
//! `NIVESH__SECTION__KEY` environment variables. `<dir>` is `NIVESH_CONFIG_DIR`, else
//! `./config` when it exists; without a directory only the built-in defaults and the
//! environment apply.
//!
//! The compiled-in copy of `default.toml` is the one place defaults live: there is no second
//! list of defaults in Rust to drift from the documented file, and a binary copied out of the
//! repository still starts.
//!
//! Secrets are [`SecretString`]; `Debug` of every settings type redacts them, so
//! [`log_effective`] can log the whole effective configuration at start-up.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Environment, File, FileFormat};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::{Error, Result};

/// The built-in defaults: the repository's documented `config/default.toml`.
pub const BUILT_IN_DEFAULTS: &str = include_str!("../../../config/default.toml");

/// Environment variables starting with `NIVESH__` override settings (`__` separates levels).
pub const ENV_PREFIX: &str = "NIVESH";
/// Names the directory holding the config files.
pub const CONFIG_DIR_VAR: &str = "NIVESH_CONFIG_DIR";
/// Names the environment layer (`local`, `test`, `prod`, ...).
pub const ENVIRONMENT_VAR: &str = "NIVESH_ENV";

/// The `[service]` section of a service that has no settings of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EmptyConfig {}

/// Everything a service is configured with: the runtime's sections plus its own `[service]`.
/// Unknown sections and keys are errors (a misspelt key silently ignored is a setting that
/// silently does not apply); only the service's own section decides for itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    bound(deserialize = "T: DeserializeOwned + Default"),
    deny_unknown_fields
)]
pub struct Settings<T = EmptyConfig> {
    /// Set by [`load`] from the binary, never from files: it names the store file, the consumer
    /// client id and every log line, so a config file must not be able to change it.
    pub service_name: String,
    pub http: HttpSettings,
    pub kafka: KafkaSection,
    pub store: StoreSettings,
    pub redis: RedisSettings,
    pub telemetry: TelemetrySettings,
    /// `[clock]`: the business clock (absent: the wall clock).
    #[serde(default)]
    pub clock: ClockSettings,
    /// `[auth]`: the identity provider whose bearer tokens the API accepts (used through
    /// `nivesh_auth::Authenticator`, which re-exports this type).
    #[serde(default)]
    pub auth: AuthSettings,
    /// The service's own section; absent means `T::default()`.
    #[serde(default)]
    pub service: T,
}

impl<T> Settings<T> {
    /// The runtime's part only (what [`crate::service::ServiceContext`] keeps).
    pub fn common(&self) -> Settings {
        Settings {
            service_name: self.service_name.clone(),
            http: self.http.clone(),
            kafka: self.kafka.clone(),
            store: self.store.clone(),
            redis: self.redis.clone(),
            telemetry: self.telemetry.clone(),
            clock: self.clock.clone(),
            auth: self.auth.clone(),
            service: EmptyConfig {},
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Port 0 binds a free port; the bound address is logged.
    pub addr: SocketAddr,
    pub body_limit_bytes: usize,
    pub shutdown_timeout_secs: u64,
    pub readiness_timeout_ms: u64,
    /// Load shedding, deadlines and rate limits (see [`crate::limits`]).
    #[serde(default)]
    pub limits: crate::limits::HttpLimits,
}

impl HttpSettings {
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    pub fn readiness_timeout(&self) -> Duration {
        Duration::from_millis(self.readiness_timeout_ms)
    }
}

/// `[kafka]`: where the brokers are. Turned into the bus's settings by [`KafkaSection::to_bus`].
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    /// Empty in the defaults on purpose; [`KafkaSection::to_bus`] refuses it with a clear message.
    pub bootstrap_servers: String,
    /// Empty: the service name.
    #[serde(default, deserialize_with = "optional_string")]
    pub client_id: Option<String>,
    /// Set: Confluent framing through this registry. May carry credentials in the userinfo.
    #[serde(default, deserialize_with = "optional_string")]
    pub schema_registry_url: Option<String>,
    /// librdkafka properties, flattened to dotted keys (`security.protocol`), whether they came
    /// from a TOML table with quoted dotted keys or from `NIVESH__KAFKA__EXTRA__SECURITY__PROTOCOL`
    /// (which the environment layer nests as `security → protocol`).
    #[serde(default, deserialize_with = "dotted_properties")]
    pub extra: BTreeMap<String, String>,
}

impl KafkaSection {
    /// The bus's connection settings, or a configuration error naming the variable to set when
    /// no broker is configured (an empty bootstrap would make librdkafka retry forever silently).
    pub fn to_bus(&self, service_name: &str) -> Result<nivesh_bus::KafkaSettings> {
        let bootstrap = self.bootstrap_servers.trim();
        if bootstrap.is_empty() {
            return Err(Error::Config(format!(
                "no Kafka broker configured for {service_name}: set NIVESH__KAFKA__BOOTSTRAP_SERVERS \
                 (e.g. the address the dev broker prints as NIVESH_BOOTSTRAP=..., or run the fleet with \
                 `cargo run -p nivesh-fleet -- up`) or kafka.bootstrap_servers in a config file"
            )));
        }
        let client_id = self
            .client_id
            .clone()
            .unwrap_or_else(|| service_name.to_string());
        let mut settings = nivesh_bus::KafkaSettings::new(bootstrap, client_id);
        settings.extra = self.extra.clone();
        Ok(settings)
    }
}

impl fmt::Debug for KafkaSection {
    // Not derived: `extra` carries SASL passwords and the registry URL may carry credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extra: BTreeMap<&str, &str> = self
            .extra
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if is_secret_property(k) {
                        REDACTED
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        f.debug_struct("KafkaSection")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("client_id", &self.client_id)
            .field(
                "schema_registry_url",
                &self.schema_registry_url.as_deref().map(redact_userinfo),
            )
            .field("extra", &extra)
            .finish()
    }
}

const REDACTED: &str = "[REDACTED]";

/// Property names whose values are credentials. Broad on purpose: hiding a harmless value from
/// a log costs nothing, leaking a key costs a rotation.
fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "credential",
        "oauthbearer.config",
        ".pem",
        "keystore",
        "key",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// `https://user:pass@host/x` → `https://[REDACTED]@host/x`.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{REDACTED}{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    /// The embedded backend keeps `<data_dir>/<service>.sqlite`.
    pub data_dir: PathBuf,
    #[serde(default)]
    pub cosmos: CosmosSettings,
    /// `[store.cosmos_emulator]`: only read when `backend = "cosmos-emulator"`.
    #[serde(default)]
    pub cosmos_emulator: CosmosEmulatorSettings,
}

impl StoreSettings {
    /// The embedded store file of one service: each service owns its data, so never shared.
    pub fn embedded_path(&self, service_name: &str) -> PathBuf {
        self.data_dir.join(format!("{service_name}.sqlite"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Embedded,
    Cosmos,
    /// The Cosmos adapter over the Azure SDK's in-process emulator, provisioned at start from
    /// `deploy/terraform/catalog.tf`; data lives as long as the process. Chaos and load runs
    /// only (builds with the `cosmos-emulator` feature; refused when `NIVESH_ENV` is
    /// production-like).
    #[serde(rename = "cosmos-emulator")]
    CosmosEmulator,
}

/// `[store.cosmos]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosmosSettings {
    #[serde(default, deserialize_with = "optional_string")]
    pub endpoint: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub database: Option<String>,
    #[serde(default, deserialize_with = "optional_secret")]
    pub key: Option<SecretString>,
    /// The Azure region the client routes to first (`centralindia`); empty: `centralindia`.
    #[serde(default, deserialize_with = "optional_string")]
    pub region: Option<String>,
}

/// `[store.cosmos_emulator]`: the in-process emulator of `backend = "cosmos-emulator"` and its
/// switchable 429 storm (the SDK's fault injection).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CosmosEmulatorSettings {
    /// Physical partitions (feed ranges) of every provisioned container.
    pub partitions: u32,
    /// While this file exists, a fraction `storm_rate` of document requests is answered with
    /// 429 and `x-ms-retry-after-ms: storm_retry_after_ms`. Empty: no storm rules at all.
    #[serde(deserialize_with = "optional_string")]
    pub storm_file: Option<String>,
    /// Fraction of document requests throttled during a storm, in (0, 1].
    pub storm_rate: f64,
    /// The retry-after every injected 429 advertises (milliseconds).
    pub storm_retry_after_ms: u64,
}

impl Default for CosmosEmulatorSettings {
    fn default() -> Self {
        CosmosEmulatorSettings {
            partitions: 1,
            storm_file: None,
            storm_rate: 0.5,
            storm_retry_after_ms: 100,
        }
    }
}

/// `[redis]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// A secret as a whole: the password sits inside the URL.
    #[serde(default, deserialize_with = "optional_secret")]
    pub url: Option<SecretString>,
    pub key_prefix: String,
    /// Refuse to start without Redis instead of falling back to an in-process cache.
    pub required: bool,
    pub connect_timeout_ms: u64,
    pub command_timeout_ms: u64,
}

impl RedisSettings {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms)
    }
}

/// `[clock]`: what "now" is for business rules (cut-offs, NAV dates, SIP schedules).
///
/// Production leaves it at the wall clock. `offset_seconds` shifts it, so the local fleet and
/// end-to-end tests can replay a past business day (the AMFI file of 2025-02-25) with time still
/// flowing; every service of one fleet gets the same offset from the launcher.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockSettings {
    /// Seconds added to the wall clock (negative: the past).
    pub offset_seconds: i64,
}

impl ClockSettings {
    /// The clock services read "now" from.
    pub fn clock(&self) -> std::sync::Arc<dyn nivesh_domain::time::Clock> {
        if self.offset_seconds == 0 {
            std::sync::Arc::new(nivesh_domain::time::SystemClock)
        } else {
            std::sync::Arc::new(nivesh_domain::time::OffsetClock::new(
                chrono::TimeDelta::seconds(self.offset_seconds),
            ))
        }
    }
}

/// `[auth]`: where bearer tokens come from and how they are checked (`nivesh_auth` verifies
/// them; the type lives here so that every service's [`Settings`] has the section without the
/// runtime depending on the auth crate). Defaults point at the local dev identity provider
/// `nivesh up` starts (tools/dev-idp on 127.0.0.1:8112).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Expected `iss` (exact match).
    pub issuer: String,
    /// Expected `aud` (one of the token's audiences).
    pub audience: String,
    /// The identity provider's JWKS document.
    pub jwks_url: String,
    /// Keys are refetched when the cached set is older than this (seconds).
    pub jwks_refresh_seconds: u64,
    /// Clock skew tolerated on `exp` and `nbf` (seconds).
    pub leeway_seconds: u64,
    /// A token with an unknown `kid` triggers a refetch at most once per this interval
    /// (seconds), so forged `kid`s cannot make a service hammer the identity provider.
    pub jwks_min_refetch_seconds: u64,
    /// Timeout of one JWKS request (seconds).
    pub jwks_timeout_seconds: u64,
}

/// Where the local dev identity provider listens under `nivesh up`.
pub const DEV_IDP_URL: &str = "http://127.0.0.1:8112";

/// The audience (`aud`) Nivesh APIs expect by default.
pub const DEFAULT_AUDIENCE: &str = "nivesh-api";

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            issuer: DEV_IDP_URL.to_string(),
            audience: DEFAULT_AUDIENCE.to_string(),
            jwks_url: format!("{DEV_IDP_URL}/.well-known/jwks.json"),
            jwks_refresh_seconds: 300,
            leeway_seconds: 30,
            jwks_min_refetch_seconds: 10,
            jwks_timeout_seconds: 5,
        }
    }
}

impl AuthSettings {
    /// Settings for an issuer whose JWKS sits at the conventional `/.well-known/jwks.json`.
    pub fn for_issuer(issuer: &str) -> Self {
        let issuer = issuer.trim_end_matches('/').to_string();
        AuthSettings {
            jwks_url: format!("{issuer}/.well-known/jwks.json"),
            issuer,
            ..AuthSettings::default()
        }
    }
}

/// `[telemetry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    /// EnvFilter directives; `RUST_LOG` wins when set.
    pub log_level: String,
    /// OTLP/HTTP collector base URL; unset: no span export.
    #[serde(default, deserialize_with = "optional_string")]
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            log_format: LogFormat::Json,
            log_level: "info".into(),
            otlp_endpoint: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, with `trace_id` and `span_id`.
    Json,
    /// One human-readable line per event (`text` is accepted too: the fleet launcher says so).
    #[serde(alias = "text")]
    Pretty,
}

/// Where [`load_from`] reads its layers from. [`ConfigSources::from_process_env`] is what
/// [`load`] uses; tests build one by hand instead of mutating the process environment.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// Directory of `default.toml` (required inside it), `<environment>.toml` and
    /// `<service>.toml` (both optional). `None`: built-in defaults and variables only.
    pub dir: Option<PathBuf>,
    /// The environment layer's name; empty means `local`.
    pub environment: String,
    /// Variables to apply; only `NIVESH__*` ones are considered.
    pub vars: Vec<(String, String)>,
}

impl ConfigSources {
    /// `NIVESH_CONFIG_DIR` (must exist when set) or `./config` (when it exists), `NIVESH_ENV`,
    /// and the process's `NIVESH__*` variables.
    pub fn from_process_env() -> Result<Self> {
        let dir = match std::env::var_os(CONFIG_DIR_VAR) {
            Some(dir) if !dir.is_empty() => {
                let dir = PathBuf::from(dir);
                if !dir.is_dir() {
                    return Err(Error::Config(format!(
                        "{CONFIG_DIR_VAR}={} is not a directory",
                        dir.display()
                    )));
                }
                Some(dir)
            }
            _ => Some(PathBuf::from("config")).filter(|d| d.is_dir()),
        };
        let environment = std::env::var(ENVIRONMENT_VAR).unwrap_or_default();
        let prefix = format!("{ENV_PREFIX}__");
        let vars = std::env::vars()
            .filter(|(k, _)| k.to_ascii_uppercase().starts_with(&prefix))
            .collect();
        Ok(ConfigSources {
            dir,
            environment,
            vars,
        })
    }

    /// Only the built-in defaults plus `vars` (no files).
    pub fn with_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        ConfigSources {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            ..Default::default()
        }
    }
}

/// Load the settings of `service_name` from the process environment and the config directory.
pub fn load<T: DeserializeOwned + Default>(service_name: &str) -> Result<Settings<T>> {
    load_from(service_name, &ConfigSources::from_process_env()?)
}

/// Load the settings of `service_name` from explicit sources (see [`ConfigSources`]).
pub fn load_from<T: DeserializeOwned + Default>(
    service_name: &str,
    sources: &ConfigSources,
) -> Result<Settings<T>> {
    let environment = if sources.environment.is_empty() {
        "local"
    } else {
        sources.environment.as_str()
    };
    // Both names become file names: refuse anything that could walk out of the directory.
    check_name("service name", service_name)?;
    check_name(ENVIRONMENT_VAR, environment)?;

    let mut builder =
        config::Config::builder().add_source(File::from_str(BUILT_IN_DEFAULTS, FileFormat::Toml));
    if let Some(dir) = &sources.dir {
        if !dir.is_dir() {
            return Err(Error::Config(format!(
                "config directory {} does not exist",
                dir.display()
            )));
        }
        builder = builder
            .add_source(toml_file(&dir.join("default.toml"), true))
            .add_source(toml_file(&dir.join(format!("{environment}.toml")), false))
            .add_source(toml_file(&dir.join(format!("{service_name}.toml")), false));
    }
    let vars: config::Map<String, String> = sources.vars.iter().cloned().collect();
    builder = builder
        .add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .source(Some(vars)),
        )
        .set_override("service_name", service_name)
        .map_err(|e| Error::Config(e.to_string()))?;
    let settings: Settings<T> = builder
        .build()
        .map_err(|e| Error::Config(e.to_string()))?
        .try_deserialize()
        .map_err(|e| Error::Config(format!("{e} (check config files and NIVESH__* variables)")))?;
    Ok(settings)
}

/// Log the effective configuration (secrets redacted by the types' `Debug`).
pub fn log_effective<T: fmt::Debug>(settings: &Settings<T>) {
    tracing::info!(config = ?settings, "effective configuration");
}

fn toml_file(path: &Path, required: bool) -> File<config::FileSourceFile, FileFormat> {
    File::from(path).format(FileFormat::Toml).required(required)
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{what} {name:?} must be non-empty [A-Za-z0-9_-]"
        )))
    }
}

/// An empty string is "not set" (TOML has no null; `NIVESH__X=` must be able to switch off).
fn optional_string<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()))
}

fn optional_secret<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<SecretString>, D::Error> {
    Ok(optional_string(d)?.map(SecretString::from))
}

/// A property value as TOML or the environment layer may hand it over: nested tables (from
/// `__`-separated variable names) or scalars of any type (`"enable.idempotence" = true`).
#[derive(Deserialize)]
#[serde(untagged)]
enum PropertyValue {
    Nested(HashMap<String, PropertyValue>),
    Text(String),
    Bool(bool),
    Int(i64),
    Float(f64),
}

fn dotted_properties<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, String>, D::Error> {
    fn flatten(prefix: &str, value: PropertyValue, out: &mut BTreeMap<String, String>) {
        let text = match value {
            PropertyValue::Nested(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
                return;
            }
            PropertyValue::Text(s) => s,
            PropertyValue::Bool(b) => b.to_string(),
            PropertyValue::Int(i) => i.to_string(),
            PropertyValue::Float(f) => f.to_string(),
        };
        out.insert(prefix.to_string(), text);
    }
    let raw = Option::<HashMap<String, PropertyValue>>::deserialize(d)?.unwrap_or_default();
    let mut out = BTreeMap::new();
    flatten("", PropertyValue::Nested(raw), &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compiled-in defaults alone deserialize, with the documented local values.
    #[test]
    fn built_in_defaults_are_complete() {
        let s: Settings = load_from("svc", &ConfigSources::default()).unwrap();
        assert_eq!(s.service_name, "svc");
        assert_eq!(s.http.addr, "127.0.0.1:0".parse::<SocketAddr>().unwrap());
        assert_eq!(s.kafka.bootstrap_servers, "");
        assert_eq!(s.store.backend, StoreBackend::Embedded);
        assert_eq!(s.store.data_dir, PathBuf::from(".nivesh/data"));
        assert!(s.redis.url.is_some());
        assert_eq!(s.telemetry.log_format, LogFormat::Json);
        assert_eq!(s.telemetry.otlp_endpoint, None);
    }

    /// Userinfo in a URL is hidden, the rest of the URL stays readable.
    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_userinfo("https://u:p@reg:8081/x@y"),
            "https://[REDACTED]@reg:8081/x@y"
        );
        assert_eq!(redact_userinfo("https://reg:8081/a"), "https://reg:8081/a");
    }

    /// Names that could escape the config directory are refused.
    #[test]
    fn names_are_checked() {
        assert!(check_name("x", "nav-ingestor").is_ok());
        assert!(check_name("x", "../etc").is_err());
        assert!(check_name("x", "").is_err());
    }
}
