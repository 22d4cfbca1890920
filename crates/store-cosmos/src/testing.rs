//! The one test helper that touches the SDK's *internal* in-memory emulator
//! (`azure_data_cosmos_driver::in_memory_emulator`, behind `__internal_in_memory_emulator`, no
//! semver promise: both SDK crates are pinned with `=` in the root `Cargo.toml`). Everything
//! else (provisioning, the adapter, fault injection) goes through the public SDK API, so a
//! version bump breaks this file only.
//!
//! What the emulator does not cover (see `docs/storage.md`): TTL expiry (items are never
//! deleted; the adapter hides expired items itself, as the service does, and tests assert the
//! `ttl` property written), multi-region replication lag as seen by another client, physical
//! partition splits under load, and real RU accounting (it charges nominal RUs).

use std::sync::Arc;

use azure_data_cosmos::fault_injection::FaultInjectionRule;
use azure_data_cosmos::options::Region;
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosRuntimeBuilder, RoutingStrategy,
};
use azure_data_cosmos_driver::in_memory_emulator::{
    ConsistencyLevel, ContainerConfig, InMemoryEmulatorHttpClient, VirtualAccountConfig,
    VirtualRegion,
};
use azure_data_cosmos_driver::models::PartitionKeyDefinition;

use crate::{CosmosStore, RetryPolicy, client_builder, envelope::PK_FIELD};

const GATEWAY: &str = "https://centralindia.emulator.local";

/// One in-memory Cosmos account (one region, session consistency like Terraform's account).
pub struct Emulator {
    http: Arc<InMemoryEmulatorHttpClient>,
}

impl Default for Emulator {
    fn default() -> Self {
        Self::new()
    }
}

impl Emulator {
    pub fn new() -> Self {
        let config = VirtualAccountConfig::new(vec![VirtualRegion::new(
            "Central India",
            azure_core::http::Url::parse(GATEWAY).expect("emulator url"),
        )])
        .expect("emulator account config")
        .with_consistency(ConsistencyLevel::Session);
        Emulator {
            http: Arc::new(InMemoryEmulatorHttpClient::new(config)),
        }
    }

    /// A client of this account with the adapter's defaults and the given fault rules (the
    /// SDK's public `fault_injection` feature), evaluated before requests reach the emulator.
    pub async fn client(&self, rules: Vec<Arc<FaultInjectionRule>>) -> CosmosClient {
        let account = AccountReference::with_authentication_key(
            GATEWAY.parse::<AccountEndpoint>().expect("endpoint"),
            azure_core::credentials::Secret::new("ZW11bGF0b3Ita2V5"),
        );
        let runtime = CosmosRuntimeBuilder::from(self.http.runtime_builder())
            .build()
            .await
            .expect("emulator runtime");
        let mut builder = client_builder().with_runtime(runtime);
        if !rules.is_empty() {
            builder = builder
                .with_fault_injection_rules(rules)
                .expect("fault injection rules");
        }
        builder
            .build(account, RoutingStrategy::ProximityTo(Region::CENTRAL_INDIA))
            .await
            .expect("emulator client")
    }

    /// Create `database` and its containers with `partitions` physical partitions each (feed
    /// ranges), partitioned on `/partitionKey` like Terraform's. Once per database. (The
    /// containers' default TTL is not modelled: the emulator never expires items.)
    pub fn provision(&self, database: &str, containers: &[&str], partitions: u32) {
        let store = self.http.store();
        store.create_database(database);
        for name in containers {
            let pk: PartitionKeyDefinition = format!("/{PK_FIELD}").into();
            let config = ContainerConfig::new()
                .with_partition_count(partitions)
                .build()
                .expect("container config");
            store.create_container_with_config(database, name, pk, config);
        }
    }

    /// The adapter on this account.
    pub async fn store(
        &self,
        database: &str,
        rules: Vec<Arc<FaultInjectionRule>>,
        retry: RetryPolicy,
    ) -> CosmosStore {
        CosmosStore::from_client(&self.client(rules).await, database, retry)
    }
}
