//! `store.backend = "cosmos-emulator"`: the production Cosmos adapter (`nivesh-store-cosmos`,
//! same retries, throttle gate, exactly-once commit) over the Azure SDK's in-process emulator,
//! for chaos and load runs of the whole fleet. Builds with the `cosmos-emulator` feature only.
//!
//! - The account is created at start, one per process, and holds the service's database
//!   (`store.cosmos.database`, else `nivesh-<service>`) with exactly the containers Terraform
//!   provisions for the service (`deploy/terraform/catalog.tf`, compiled in; `deploy-check`
//!   keeps it equal to the code), so a container the code uses but Terraform lacks fails here
//!   as it would in production. Data lives as long as the process: a restarted service starts
//!   empty.
//! - `store.cosmos_emulator.storm_file`: while that file exists, a 429 storm is on (see
//!   `nivesh_store_cosmos::testing::Storm`: the SDK's fault-injection rules, enabled and
//!   disabled at run time). Injected 429s are counted in `nivesh_store_injected_faults_total`;
//!   the adapter's `nivesh_cosmos_throttled_total` counts them as it sees them.
//! - Refused when `NIVESH_ENV` names a production-like environment, in every build.

use crate::{Error, Result};

/// Environments (`NIVESH_ENV`) in which the emulator backend is refused.
const PRODUCTION_ENVIRONMENTS: [&str; 3] = ["prod", "production", "staging"];

/// Refuse the emulator backend in a production-like `NIVESH_ENV` (`environment`).
pub(crate) fn refuse_in_production(environment: &str) -> Result<()> {
    let env = environment.trim().to_ascii_lowercase();
    if PRODUCTION_ENVIRONMENTS.contains(&env.as_str()) {
        return Err(Error::Config(format!(
            "store.backend = \"cosmos-emulator\" keeps data in process memory and injects faults: \
             refused with NIVESH_ENV={environment}; use store.backend = \"cosmos\""
        )));
    }
    Ok(())
}

/// Terraform's catalog of Cosmos databases and containers, compiled in.
#[cfg(any(feature = "cosmos-emulator", test))]
pub(crate) const CATALOG_TF: &str = include_str!("../../../deploy/terraform/catalog.tf");

/// The containers `catalog.tf` declares for `service` (`cosmos_databases."<service>"`), in file
/// order; `None` when the service has no database there.
#[cfg(any(feature = "cosmos-emulator", test))]
pub(crate) fn catalog_containers(catalog: &str, service: &str) -> Option<Vec<String>> {
    /// The line without its `#` comment (a `#` inside a string is kept), and its brace balance.
    fn code_and_balance(line: &str) -> (&str, i32) {
        let (mut in_string, mut balance) = (false, 0);
        for (i, c) in line.char_indices() {
            match c {
                '"' => in_string = !in_string,
                '#' if !in_string => return (&line[..i], balance),
                '{' if !in_string => balance += 1,
                '}' if !in_string => balance -= 1,
                _ => {}
            }
        }
        (line, balance)
    }
    let mut lines = catalog.lines();
    lines.find(|l| {
        let code = code_and_balance(l).0.trim();
        code.starts_with("cosmos_databases") && code.ends_with('{')
    })?;
    let mut depth = 1;
    let mut current: Option<String> = None;
    let mut found: Option<Vec<String>> = None;
    for line in lines {
        let (code, balance) = code_and_balance(line);
        let code = code.trim();
        if let Some((name, rest)) = code.split_once('=')
            && rest.trim_start().starts_with('{')
        {
            let name = name.trim();
            match depth {
                1 => {
                    current = Some(name.trim_matches('"').to_string());
                    if current.as_deref() == Some(service) {
                        found = Some(Vec::new());
                    }
                }
                2 if current.as_deref() == Some(service) => {
                    if let Some(containers) = found.as_mut() {
                        containers.push(name.to_string());
                    }
                }
                _ => {}
            }
        }
        depth += balance;
        if depth <= 0 {
            break;
        }
    }
    found
}

#[cfg(feature = "cosmos-emulator")]
pub(crate) async fn open(
    store: &crate::config::StoreSettings,
    service: &str,
) -> Result<std::sync::Arc<dyn nivesh_store::DocumentStore>> {
    use std::sync::Arc;
    use std::time::Duration;

    use nivesh_store_cosmos::RetryPolicy;
    use nivesh_store_cosmos::testing::{Emulator, Storm};

    /// How often the storm file is looked at (one `stat` per tick).
    const STORM_POLL: Duration = Duration::from_millis(100);

    let settings = &store.cosmos_emulator;
    let containers = catalog_containers(CATALOG_TF, service).ok_or_else(|| {
        Error::Config(format!(
            "store.backend = \"cosmos-emulator\": deploy/terraform/catalog.tf declares no Cosmos \
             database for service {service:?} (cosmos_databases)"
        ))
    })?;
    if settings.partitions == 0 {
        return Err(Error::Config(
            "store.cosmos_emulator.partitions must be at least 1".into(),
        ));
    }
    let database = store
        .cosmos
        .database
        .clone()
        .unwrap_or_else(|| format!("nivesh-{service}"));
    let storm = match &settings.storm_file {
        Some(file) => {
            let storm = Storm::new(
                settings.storm_rate,
                Duration::from_millis(settings.storm_retry_after_ms),
            )
            .map_err(|e| Error::Config(format!("store.cosmos_emulator.storm_rate: {e}")))?;
            Some((Arc::new(storm), std::path::PathBuf::from(file)))
        }
        None => None,
    };
    let emulator = Emulator::new();
    let names: Vec<&str> = containers.iter().map(String::as_str).collect();
    emulator.provision(&database, &names, settings.partitions);
    let rules = storm
        .as_ref()
        .map(|(storm, _)| storm.rules())
        .unwrap_or_default();
    let cosmos = emulator
        .store(&database, rules, RetryPolicy::default())
        .await;
    if let Some((storm, file)) = storm {
        storm.publish_metrics();
        tracing::info!(
            file = %file.display(),
            rate = storm.rate(),
            retry_after_ms = settings.storm_retry_after_ms,
            "cosmos emulator: 429 storm switch armed (on while the file exists)"
        );
        // For the life of the process, like the store it throttles.
        tokio::spawn(storm.follow_file(file, STORM_POLL));
    }
    tracing::warn!(
        database = %database,
        containers = ?containers,
        partitions = settings.partitions,
        "cosmos-emulator store opened: the Cosmos adapter over the SDK's in-process emulator; \
         data lives only as long as this process"
    );
    Ok(Arc::new(cosmos))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every service of the fleet has a database in the real catalog, with the runtime's
    /// `event_ledger` container, and the parser does not leak containers between services.
    #[test]
    fn the_real_catalog_lists_each_services_containers() {
        let services = [
            "nav-ingestor",
            "nav-calculator",
            "nav-publisher",
            "order",
            "payment",
            "portfolio",
            "notification",
            "genai-gateway",
            "allotment",
            "onboarding",
            "compliance",
        ];
        for service in services {
            let containers = catalog_containers(CATALOG_TF, service)
                .unwrap_or_else(|| panic!("{service} has no database in catalog.tf"));
            assert!(
                containers.iter().any(|c| c == "event_ledger"),
                "{service}: {containers:?}"
            );
        }
        assert_eq!(
            catalog_containers(CATALOG_TF, "order").unwrap(),
            [
                "orders",
                "order_locators",
                "sip_locators",
                "sip_index",
                "schemes",
                "ops",
                "event_ledger"
            ]
        );
        assert_eq!(
            catalog_containers(CATALOG_TF, "payment").unwrap(),
            ["payments", "event_ledger"]
        );
        assert_eq!(catalog_containers(CATALOG_TF, "no-such-service"), None);
    }

    /// Comments, strings with braces or `#`, and nested values do not confuse the parser.
    #[test]
    fn catalog_parser_ignores_comments_and_strings() {
        let tf = r#"
locals {
  topics = { "a" = { partitions = 1 } }
  cosmos_databases = {
    # "fake" = {
    "svc" = {
      # not = { a container }
      first  = { key = "a { b # c", default_ttl = -1 }
      second = {
        key = "x"
      }
    }
    "other" = {
      third = { key = "y" }
    }
  }
  after = { z = { } }
}
"#;
        assert_eq!(catalog_containers(tf, "svc").unwrap(), ["first", "second"]);
        assert_eq!(catalog_containers(tf, "other").unwrap(), ["third"]);
        assert_eq!(catalog_containers(tf, "fake"), None);
        assert_eq!(catalog_containers(tf, "after"), None);
    }

    #[test]
    fn production_like_environments_are_refused() {
        for env in ["prod", "production", "Production", "staging"] {
            let err = refuse_in_production(env).unwrap_err();
            assert!(
                matches!(&err, Error::Config(m) if m.contains("cosmos-emulator") && m.contains(env)),
                "{err}"
            );
        }
        for env in ["", "local", "test", "chaos"] {
            refuse_in_production(env).unwrap();
        }
    }
}
