//! nivesh-genai-gateway: answers investor, distributor and support questions from retrieved context only, with PII masking, policy filtering and quotas.
//!
//! Today it runs on the shared runtime, serves `/healthz`, `/readyz`, `/metrics` and
//! `/openapi.json`, and joins its consumer group (`genai-gateway`, topics from the catalog) with the
//! runtime's [`EventLedger`](nivesh_runtime::ledger::EventLedger): every event it receives is
//! decoded against the schema catalog, counted by type and recorded once in its own store, and an
//! undecodable event goes to `genai-gateway.dlq` with the reason. Its business behaviour arrives with its issue.

use nivesh_runtime::config::Settings;
use serde::Deserialize;

/// The consumer group (and service name) in the topic catalog.
pub const GROUP: &str = "genai-gateway";

/// `[service]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Config {}

/// Run the service until SIGTERM.
pub async fn run(settings: Settings<Config>) -> nivesh_runtime::Result<()> {
    nivesh_runtime::ledger::run_ledger_service(settings, GROUP).await
}
