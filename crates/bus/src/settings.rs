//! Connection settings shared by producers and consumers.

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::ClientConfig;

/// Where the brokers are and how to talk to them.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct KafkaSettings {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    /// Shows up in broker logs and quotas; the service name is a good choice.
    #[serde(default)]
    pub client_id: String,
    /// Passed to librdkafka as is (e.g. `security.protocol`, `sasl.mechanism`, `sasl.username`,
    /// `sasl.password` for Event Hubs' Kafka endpoint). Applied after our defaults, so it can tune
    /// them; the properties the delivery guarantees depend on are forced afterwards and cannot be
    /// overridden (see the producer and consumer).
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

impl KafkaSettings {
    pub fn new(bootstrap_servers: impl Into<String>, client_id: impl Into<String>) -> Self {
        KafkaSettings {
            bootstrap_servers: bootstrap_servers.into(),
            client_id: client_id.into(),
            extra: BTreeMap::new(),
        }
    }

    /// Builder-style passthrough property.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// Base client config: bootstrap, client id, then the caller's defaults, then `extra`.
    pub(crate) fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap_servers);
        if !self.client_id.is_empty() {
            cfg.set("client.id", &self.client_id);
        }
        for (k, v) in defaults {
            cfg.set(*k, *v);
        }
        for (k, v) in &self.extra {
            cfg.set(k, v);
        }
        cfg
    }
}

/// Secrets travel in `extra` (SASL passwords, OAuth configs), and settings get logged at startup,
/// so Debug prints those values redacted.
impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extra: BTreeMap<&str, &str> = self
            .extra
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if is_secret(k) {
                        "[REDACTED]"
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        f.debug_struct("KafkaSettings")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("client_id", &self.client_id)
            .field("extra", &extra)
            .finish()
    }
}

fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "oauthbearer.config",
        "key.pem",
        "keystore",
        "credentials",
    ]
    .iter()
    .any(|s| k.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debug output hides secret-looking passthrough values but keeps the others.
    #[test]
    fn debug_redacts_secrets() {
        let s = KafkaSettings::new("b:9093", "svc")
            .with("sasl.password", "Endpoint=sb://x;SharedAccessKey=abc")
            .with("security.protocol", "SASL_SSL");
        let out = format!("{s:?}");
        assert!(!out.contains("SharedAccessKey"), "{out}");
        assert!(out.contains("SASL_SSL"), "{out}");
    }

    /// `extra` overrides the caller's defaults.
    #[test]
    fn extra_overrides_defaults() {
        let s = KafkaSettings::new("b:1", "c").with("linger.ms", "50");
        let cfg = s.client_config(&[("linger.ms", "5"), ("acks", "all")]);
        assert_eq!(cfg.get("linger.ms"), Some("50"));
        assert_eq!(cfg.get("acks"), Some("all"));
        assert_eq!(cfg.get("client.id"), Some("c"));
    }
}
