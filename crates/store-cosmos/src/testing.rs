//! The one test helper that touches the SDK's *internal* in-memory emulator
//! (`azure_data_cosmos_driver::in_memory_emulator`, behind `__internal_in_memory_emulator`, no
//! semver promise: both SDK crates are pinned with `=` in the root `Cargo.toml`). Everything
//! else (provisioning, the adapter, fault injection) goes through the public SDK API, so a
//! version bump breaks this file only.
//!
//! [`Storm`] is a switchable 429 storm built from the SDK's public fault-injection rules; the
//! runtime's `store.backend = "cosmos-emulator"` (chaos runs) turns it on and off while a file
//! exists.
//!
//! What the emulator does not cover (see `docs/storage.md`): TTL expiry (items are never
//! deleted; the adapter hides expired items itself, as the service does, and tests assert the
//! `ttl` property written), multi-region replication lag as seen by another client, physical
//! partition splits under load, and real RU accounting (it charges nominal RUs).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use azure_core::http::StatusCode;
use azure_data_cosmos::fault_injection::{
    CustomResponseBuilder, FaultInjectionConditionBuilder, FaultInjectionResultBuilder,
    FaultInjectionRule, FaultInjectionRuleBuilder, FaultOperationType,
};
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

/// The document operations a [`Storm`] throttles: every data-plane request the adapter sends
/// (metadata requests, i.e. account, container and partition-key-range reads, are left alone, as
/// Cosmos meters them separately from the container's RU budget).
pub const STORM_OPERATIONS: [FaultOperationType; 9] = [
    FaultOperationType::ReadItem,
    FaultOperationType::QueryItem,
    FaultOperationType::CreateItem,
    FaultOperationType::UpsertItem,
    FaultOperationType::ReplaceItem,
    FaultOperationType::DeleteItem,
    FaultOperationType::PatchItem,
    FaultOperationType::BatchItem,
    FaultOperationType::ChangeFeedItem,
];

/// A switchable 429 storm: one SDK fault-injection rule per document operation
/// ([`STORM_OPERATIONS`]), each answering a fraction `rate` of matching requests with
/// `429` (sub-status 3200, "request rate too large"), `x-ms-retry-after-ms` and a request
/// charge, like an account over its provisioned RUs. Created switched off; [`Storm::set_active`]
/// (or [`Storm::follow_file`]) enables and disables all rules at once, so the storm can start
/// and stop while the client keeps running. The rules count what they injected
/// ([`Storm::injected`]).
#[derive(Debug)]
pub struct Storm {
    rules: Vec<(FaultOperationType, Arc<FaultInjectionRule>)>,
    rate: f32,
    retry_after: Duration,
}

/// The metric of injected faults (a counter, labels `fault` and `operation`).
pub const INJECTED_FAULTS_METRIC: &str = "nivesh_store_injected_faults_total";
/// 1 while a storm is switched on, else 0 (a gauge).
pub const STORM_ACTIVE_METRIC: &str = "nivesh_store_storm_active";

impl Storm {
    /// A storm (switched off) throttling `rate` (0 < rate <= 1) of document requests with the
    /// given retry-after. Errs on a rate outside that range.
    pub fn new(rate: f64, retry_after: Duration) -> Result<Self, String> {
        if rate.is_nan() || rate <= 0.0 || rate > 1.0 {
            return Err(format!(
                "the storm rate must be in (0, 1] (a fraction of requests), got {rate}"
            ));
        }
        let rate = rate as f32;
        let rules = STORM_OPERATIONS
            .iter()
            .map(|&op| {
                let response = CustomResponseBuilder::new(StatusCode::TooManyRequests)
                    .with_sub_status(3200)
                    .with_header("x-ms-retry-after-ms", retry_after.as_millis().to_string())
                    .with_header("x-ms-request-charge", "0.5")
                    .build();
                let result = FaultInjectionResultBuilder::new()
                    .with_custom_response(response)
                    .with_probability(rate)
                    .build();
                let rule = FaultInjectionRuleBuilder::new(format!("storm-{}", op.as_str()), result)
                    .with_condition(
                        FaultInjectionConditionBuilder::new()
                            .with_operation_type(op)
                            .build(),
                    )
                    .build();
                rule.disable();
                (op, Arc::new(rule))
            })
            .collect();
        Ok(Storm {
            rules,
            rate,
            retry_after,
        })
    }

    /// The rules to hand to the client ([`Emulator::client`] / [`Emulator::store`]).
    pub fn rules(&self) -> Vec<Arc<FaultInjectionRule>> {
        self.rules.iter().map(|(_, r)| Arc::clone(r)).collect()
    }

    /// Switch the storm on or off (every rule at once).
    pub fn set_active(&self, on: bool) {
        for (_, rule) in &self.rules {
            if on {
                rule.enable();
            } else {
                rule.disable();
            }
        }
    }

    pub fn is_active(&self) -> bool {
        self.rules.iter().any(|(_, r)| r.is_enabled())
    }

    /// The fraction of matching requests throttled while active.
    pub fn rate(&self) -> f64 {
        f64::from(self.rate)
    }

    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// 429s injected so far, all operations.
    pub fn injected(&self) -> u64 {
        self.rules
            .iter()
            .map(|(_, r)| u64::from(r.hit_count()))
            .sum()
    }

    /// 429s injected so far per operation (`BatchItem`, `ReadItem`, ...), zeros included.
    pub fn injected_by_operation(&self) -> Vec<(&'static str, u64)> {
        self.rules
            .iter()
            .map(|(op, r)| (op.as_str(), u64::from(r.hit_count())))
            .collect()
    }

    /// Export the counts as `nivesh_store_injected_faults_total{fault="429",operation}` and the
    /// switch as `nivesh_store_storm_active`.
    pub fn publish_metrics(&self) {
        for (op, hits) in self.injected_by_operation() {
            metrics::counter!(INJECTED_FAULTS_METRIC, "fault" => "429", "operation" => op)
                .absolute(hits);
        }
        metrics::gauge!(STORM_ACTIVE_METRIC).set(if self.is_active() { 1.0 } else { 0.0 });
    }

    /// Keep the storm on while `path` exists and off while it does not, checking every `poll`
    /// (and publishing the metrics each time). Runs until the task is dropped or aborted.
    pub async fn follow_file(self: Arc<Self>, path: PathBuf, poll: Duration) {
        let mut on = false;
        self.set_active(false);
        loop {
            // An unreadable directory counts as "no storm": the switch must fail safe.
            let exists = tokio::fs::try_exists(&path).await.unwrap_or(false);
            if exists != on {
                on = exists;
                self.set_active(on);
                if on {
                    tracing::warn!(
                        file = %path.display(),
                        rate = self.rate(),
                        retry_after_ms = self.retry_after.as_millis() as u64,
                        "cosmos emulator: 429 storm ON"
                    );
                } else {
                    tracing::warn!(
                        file = %path.display(),
                        injected = self.injected(),
                        "cosmos emulator: 429 storm OFF"
                    );
                }
            }
            self.publish_metrics();
            tokio::time::sleep(poll).await;
        }
    }
}
