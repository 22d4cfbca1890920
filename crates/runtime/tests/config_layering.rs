//! Layered configuration: built-in defaults → default.toml → <env>.toml → <service>.toml →
//! NIVESH__* variables, typed service sections, passthrough Kafka properties, and secrets that
//! never show in Debug output.

use std::fs;
use std::path::Path;

use nivesh_runtime::config::{ConfigSources, LogFormat, Settings, StoreBackend, load_from};
use secrecy::ExposeSecret;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
struct ShopConfig {
    greeting: String,
    retries: u32,
    payment_gateway_url: String,
}

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

fn sources(dir: &Path, environment: &str, vars: &[(&str, &str)]) -> ConfigSources {
    ConfigSources {
        dir: Some(dir.to_path_buf()),
        environment: environment.to_string(),
        vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Each layer overrides the one before it, keys no layer sets keep the built-in default, and
/// the typed `[service]` section takes file values and variable overrides alike.
#[test]
fn files_then_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "default.toml",
        r#"
[http]
addr = "127.0.0.1:7001"
[redis]
key_prefix = "from-default:"
[telemetry]
log_level = "info"
"#,
    );
    write(
        dir.path(),
        "staging.toml",
        r#"
[redis]
key_prefix = "from-env-file:"
[telemetry]
log_level = "debug"
log_format = "pretty"
"#,
    );
    write(
        dir.path(),
        "shop.toml",
        r#"
[telemetry]
log_level = "trace"
[service]
greeting = "namaste"
retries = 2
"#,
    );
    // A file for another environment must not apply.
    write(dir.path(), "prod.toml", "[http]\naddr = \"0.0.0.0:80\"\n");

    let vars = [
        ("NIVESH__TELEMETRY__LOG_LEVEL", "warn"),
        ("NIVESH__SERVICE__RETRIES", "7"),
        (
            "NIVESH__SERVICE__PAYMENT_GATEWAY_URL",
            "https://pg.example/api",
        ),
        ("UNRELATED__HTTP__ADDR", "0.0.0.0:1"),
    ];
    let s: Settings<ShopConfig> =
        load_from("shop", &sources(dir.path(), "staging", &vars)).unwrap();

    assert_eq!(s.service_name, "shop");
    assert_eq!(
        s.http.addr.to_string(),
        "127.0.0.1:7001",
        "default.toml on disk beats the built-in default"
    );
    assert_eq!(
        s.redis.key_prefix, "from-env-file:",
        "<env>.toml beats default.toml"
    );
    assert_eq!(s.telemetry.log_format, LogFormat::Pretty);
    assert_eq!(
        s.telemetry.log_level, "warn",
        "variables beat every file (service file said trace)"
    );
    assert_eq!(
        s.http.body_limit_bytes,
        2 * 1024 * 1024,
        "unset everywhere: built-in default"
    );
    assert_eq!(
        s.service,
        ShopConfig {
            greeting: "namaste".into(),
            retries: 7,
            payment_gateway_url: "https://pg.example/api".into()
        }
    );
}

/// Without a service file the service file layer is skipped; without the variable, the
/// service file's value stands.
#[test]
fn service_file_beats_environment_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "default.toml", "");
    write(
        dir.path(),
        "local.toml",
        "[telemetry]\nlog_level = \"debug\"\n",
    );
    write(
        dir.path(),
        "shop.toml",
        "[telemetry]\nlog_level = \"trace\"\n",
    );
    let shop: Settings<ShopConfig> = load_from("shop", &sources(dir.path(), "", &[])).unwrap();
    assert_eq!(shop.telemetry.log_level, "trace");
    let other: Settings = load_from("other", &sources(dir.path(), "", &[])).unwrap();
    assert_eq!(
        other.telemetry.log_level, "debug",
        "NIVESH_ENV defaults to local"
    );
    assert_eq!(shop.service, ShopConfig::default());
}

/// The repository's own config/default.toml loads and matches the documented local defaults.
#[test]
fn repository_default_toml_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let s: Settings = load_from("nav-ingestor", &sources(&dir, "local", &[])).unwrap();
    assert_eq!(s.http.addr.to_string(), "127.0.0.1:0");
    assert!(s.kafka.bootstrap_servers.is_empty(), "no default broker");
    assert_eq!(s.store.backend, StoreBackend::Embedded);
    assert_eq!(s.store.data_dir, Path::new(".nivesh/data"));
    assert_eq!(
        s.store.embedded_path("nav-ingestor"),
        Path::new(".nivesh/data/nav-ingestor.sqlite")
    );
    assert_eq!(
        s.redis
            .url
            .as_ref()
            .map(|u| u.expose_secret().to_string())
            .as_deref(),
        Some("redis://127.0.0.1:6379")
    );
    assert_eq!(s.telemetry.log_format, LogFormat::Json);
}

/// Kafka passthrough properties arrive as dotted librdkafka keys whether they come from a TOML
/// table (quoted dotted keys, any scalar type) or from `__`-nested variables, and reach the
/// bus settings with the service name as default client id.
#[test]
fn kafka_extra_properties_flatten_to_dotted_keys() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "default.toml",
        "[kafka.extra]\n\"sasl.mechanism\" = \"PLAIN\"\n\"socket.keepalive.enable\" = true\n\"linger.ms\" = 20\n",
    );
    let vars = [
        ("NIVESH__KAFKA__BOOTSTRAP_SERVERS", "b1:9093,b2:9093"),
        ("NIVESH__KAFKA__EXTRA__SECURITY__PROTOCOL", "SASL_SSL"),
    ];
    let s: Settings = load_from("shop", &sources(dir.path(), "", &vars)).unwrap();
    let extra = &s.kafka.extra;
    assert_eq!(
        extra.get("sasl.mechanism").map(String::as_str),
        Some("PLAIN")
    );
    assert_eq!(
        extra.get("socket.keepalive.enable").map(String::as_str),
        Some("true")
    );
    assert_eq!(extra.get("linger.ms").map(String::as_str), Some("20"));
    assert_eq!(
        extra.get("security.protocol").map(String::as_str),
        Some("SASL_SSL")
    );
    let bus = s.kafka.to_bus(&s.service_name).unwrap();
    assert_eq!(bus.bootstrap_servers, "b1:9093,b2:9093");
    assert_eq!(bus.client_id, "shop");
    assert_eq!(bus.extra, s.kafka.extra);
}

/// An empty bootstrap list is refused with a message naming the variable to set.
#[test]
fn empty_bootstrap_is_refused() {
    let s: Settings = load_from("shop", &ConfigSources::default()).unwrap();
    let err = s.kafka.to_bus("shop").unwrap_err().to_string();
    assert!(err.contains("NIVESH__KAFKA__BOOTSTRAP_SERVERS"), "{err}");
}

/// Debug output of the settings hides every secret but keeps the rest readable; the secrets
/// themselves are intact.
#[test]
fn secrets_are_redacted_in_debug() {
    let vars = [
        (
            "NIVESH__REDIS__URL",
            "rediss://:s3cret-redis@cache.example:6380",
        ),
        ("NIVESH__STORE__COSMOS__KEY", "s3cret-cosmos"),
        (
            "NIVESH__STORE__COSMOS__ENDPOINT",
            "https://acct.documents.azure.com:443/",
        ),
        ("NIVESH__KAFKA__EXTRA__SASL__PASSWORD", "s3cret-sasl"),
        ("NIVESH__KAFKA__EXTRA__SASL__USERNAME", "$ConnectionString"),
        (
            "NIVESH__KAFKA__SCHEMA_REGISTRY_URL",
            "https://reg-user:s3cret-reg@registry.example:8081",
        ),
    ];
    let s: Settings = load_from("shop", &ConfigSources::with_vars(vars)).unwrap();
    let debug = format!("{s:?}");
    assert!(!debug.contains("s3cret"), "secret in Debug output: {debug}");
    assert!(debug.contains("[REDACTED]"), "{debug}");
    assert!(debug.contains("$ConnectionString"), "{debug}");
    assert!(debug.contains("registry.example:8081"), "{debug}");
    assert!(debug.contains("acct.documents.azure.com"), "{debug}");
    assert_eq!(
        s.redis.url.as_ref().unwrap().expose_secret(),
        "rediss://:s3cret-redis@cache.example:6380"
    );
    assert_eq!(
        s.store.cosmos.key.as_ref().unwrap().expose_secret(),
        "s3cret-cosmos"
    );
    assert_eq!(s.kafka.extra["sasl.password"], "s3cret-sasl");
}

/// An empty value means "not set" (how the fleet switches Redis off), and `text` is accepted
/// as the human log format.
#[test]
fn empty_values_mean_unset() {
    let vars = [
        ("NIVESH__REDIS__URL", ""),
        ("NIVESH__TELEMETRY__OTLP_ENDPOINT", ""),
        ("NIVESH__TELEMETRY__LOG_FORMAT", "text"),
        ("NIVESH__KAFKA__CLIENT_ID", ""),
    ];
    let s: Settings = load_from("shop", &ConfigSources::with_vars(vars)).unwrap();
    assert!(s.redis.url.is_none());
    assert!(s.telemetry.otlp_endpoint.is_none());
    assert!(s.kafka.client_id.is_none());
    assert_eq!(s.telemetry.log_format, LogFormat::Pretty);
}

/// A misspelt key in a runtime section is an error naming it, not a silently ignored setting.
#[test]
fn unknown_runtime_keys_are_rejected() {
    let err = load_from::<nivesh_runtime::config::EmptyConfig>(
        "shop",
        &ConfigSources::with_vars([("NIVESH__HTTP__ADRR", "0.0.0.0:80")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("adrr"), "{err}");
}

/// A named config directory that does not exist, or one without default.toml, is an error
/// rather than a silent fall-back to defaults.
#[test]
fn missing_directory_or_default_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("nope");
    assert!(
        load_from::<nivesh_runtime::config::EmptyConfig>("shop", &sources(&gone, "", &[])).is_err()
    );
    let err =
        load_from::<nivesh_runtime::config::EmptyConfig>("shop", &sources(dir.path(), "", &[]))
            .unwrap_err()
            .to_string();
    assert!(err.contains("default.toml"), "{err}");
}

/// Environment and service names become file names; ones that could leave the directory are refused.
#[test]
fn path_like_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "default.toml", "");
    assert!(
        load_from::<nivesh_runtime::config::EmptyConfig>("../shop", &sources(dir.path(), "", &[]))
            .is_err()
    );
    assert!(
        load_from::<nivesh_runtime::config::EmptyConfig>("shop", &sources(dir.path(), "../x", &[]))
            .is_err()
    );
}
