//! nivesh-compliance: the audit ledger, investor traces, access grants and SEBI exports. See
//! `docs/services/compliance.md`.
//!
//! - [`ledger`]: the immutable, hash-chained (per partition) ledger; append serialized by the
//!   partition head's ETag, dedupe by event id, verify, (partition, occurred_at) range reads.
//! - [`crypto`]: per-investor AES-256-GCM keys for the PII fields of ledger payloads, and
//!   crypto-shredding on erasure.
//! - [`canonical`]: Avro events as readable JSON; canonical JSON the hashes cover.
//! - [`handler`]: the `compliance` consumer group: every business event into the ledger.
//! - [`access`]: who may call the API (admin; compliance role + active time-boxed grant).
//! - [`export`]: SEBI transaction exports: facts, validation, layout, manifest, delivery through
//!   `object_store` (local directory or Azure Blob), and resuming jobs a restart interrupted.
//! - [`api`]: the HTTP API; every call is authorised and audited.

pub mod access;
pub mod api;
pub mod canonical;
pub mod crypto;
pub mod export;
pub mod handler;
pub mod ledger;
mod service;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nivesh_auth::Authenticator;
use nivesh_domain::time::{Clock, SystemClock};
use nivesh_runtime::config::Settings;
use nivesh_runtime::service::{ServiceApp, ServiceContext, connect, run as run_service};
use serde::Deserialize;
use utoipa::OpenApi;

pub use service::{
    ACCESS_EVENT, ComplianceService, ERASURE_EVENT, access_partition, is_investor_partition,
    scheme_partition, trace_id_of,
};

/// The consumer group (and service name) in the topic catalog.
pub const GROUP: &str = "compliance";

/// Seven years (SEBI record keeping), in days.
const SEVEN_YEARS_DAYS: u64 = 7 * 365 + 2;

/// `[service]` settings (env: `NIVESH__SERVICE__<KEY>`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How long ledger records are kept (store TTL), in days. Default: 7 years.
    pub retention_days: u64,
    /// The tenant of investors whose events do not state one (order-flow events carry none).
    pub default_tenant: String,
    /// Payload fields (at any depth) that identify a person: encrypted per investor.
    pub pii_fields: Vec<String>,
    /// The key-encryption key file (32 bytes, base64); created when missing. Default:
    /// `<store.data_dir>/compliance-kek.b64`.
    pub kek_file: Option<PathBuf>,
    /// The CSV layout of SEBI transaction exports. Default:
    /// `<config dir>/compliance/sebi-transactions.toml` (`NIVESH_CONFIG_DIR`, else `config`).
    pub export_layout: Option<PathBuf>,
    /// Where export files are delivered when `export_url` is empty: a local directory
    /// (created when missing). Default: `<store.data_dir>/compliance-exports`.
    pub export_dir: Option<PathBuf>,
    /// An object-store URL export files are delivered to instead of `export_dir`:
    /// `az://<container>/<prefix>` (Azure Blob, production; account and workload identity from
    /// the `AZURE_*` environment) or `file:///<dir>`. Empty: `export_dir`.
    pub export_url: String,
    /// How long a running export job's lease lasts (seconds; renewed at each status change).
    /// A `Pending`/`Validated` job whose lease ran out was interrupted and is resumed.
    pub export_lease_secs: u64,
    /// How often the resumer looks for interrupted export jobs (seconds; also once at start-up).
    pub export_resume_interval_secs: u64,
    /// Delivery attempts before NeedsRetry + alert.
    pub delivery_attempts: u32,
    /// Backoff before the second attempt (doubles each time), in milliseconds.
    pub delivery_backoff_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            retention_days: SEVEN_YEARS_DAYS,
            default_tenant: nivesh_auth::DEFAULT_TENANT.to_string(),
            pii_fields: [
                "name",
                "full_name",
                "pan",
                "pan_masked",
                "email",
                "phone",
                "mobile",
                "address",
                "date_of_birth",
                "payment_instrument",
                "bank_account_number",
                "recipient",
            ]
            .map(String::from)
            .to_vec(),
            kek_file: None,
            export_layout: None,
            export_dir: None,
            export_url: String::new(),
            export_lease_secs: 300,
            export_resume_interval_secs: 60,
            delivery_attempts: 3,
            delivery_backoff_ms: 2000,
        }
    }
}

impl Config {
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_days * 24 * 3600)
    }

    pub fn delivery_backoff(&self) -> Duration {
        Duration::from_millis(self.delivery_backoff_ms)
    }

    pub fn export_lease(&self) -> Duration {
        Duration::from_secs(self.export_lease_secs)
    }

    pub fn export_resume_interval(&self) -> Duration {
        Duration::from_secs(self.export_resume_interval_secs.max(1))
    }
}

/// Routes, OpenAPI and the consumer of the service, on `ctx`'s store and codec. `clock` is the
/// WALL clock (grants are checked against it and access records stamped with it), never the
/// business clock `nivesh up` shifts to a demo date: access control must follow real time.
pub fn build(
    ctx: &ServiceContext,
    config: Config,
    clock: Arc<dyn Clock>,
) -> nivesh_runtime::Result<(ServiceApp, Arc<ComplianceService>)> {
    if config.retention_days == 0 {
        return Err(nivesh_runtime::Error::Config(
            "[service] retention_days must be positive".into(),
        ));
    }
    let data_dir = &ctx.settings.store.data_dir;
    let layout_file = config.export_layout.clone().unwrap_or_else(|| {
        std::env::var_os(nivesh_runtime::config::CONFIG_DIR_VAR)
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from("config"), PathBuf::from)
            .join("compliance/sebi-transactions.toml")
    });
    let layout = export::Layout::load(&layout_file).map_err(nivesh_runtime::Error::Config)?;
    let kek_file = config
        .kek_file
        .clone()
        .unwrap_or_else(|| data_dir.join("compliance-kek.b64"));
    let keys = crypto::KeyRing::open_file(ctx.store.clone(), &kek_file)
        .map_err(|e| nivesh_runtime::Error::Config(e.to_string()))?;
    if config.export_lease_secs == 0 {
        return Err(nivesh_runtime::Error::Config(
            "[service] export_lease_secs must be positive".into(),
        ));
    }
    let delivery = if config.export_url.trim().is_empty() {
        let export_dir = config
            .export_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("compliance-exports"));
        export::ObjectStoreDelivery::local_dir(export_dir)
    } else {
        export::ObjectStoreDelivery::url(config.export_url.trim())
            .map_err(nivesh_runtime::Error::Config)?
    };
    let delivery = Arc::new(delivery);
    // `[auth]` (the runtime's section): the identity provider whose bearer tokens we accept.
    let authenticator = Authenticator::new(&ctx.settings.auth);
    let svc = Arc::new(ComplianceService::new(
        ctx.store.clone(),
        keys,
        ctx.codec.clone(),
        ctx.outbox_notify.clone(),
        clock,
        config,
        layout,
        delivery,
    ));
    let app = ServiceApp::new()
        .routes(api::router(svc.clone(), authenticator))
        .openapi(api::ApiDoc::openapi())
        .consumer(GROUP, Arc::new(handler::Consumer::new(svc.clone())))
        .task(
            "export-resumer",
            svc.clone().run_resumer(ctx.shutdown.clone()),
        );
    Ok((app, svc))
}

/// Run the service until SIGTERM.
pub async fn run(settings: Settings<Config>) -> nivesh_runtime::Result<()> {
    let ctx = connect(&settings).await?;
    let (app, _) = build(&ctx, settings.service.clone(), Arc::new(SystemClock))?;
    run_service(ctx, app).await
}
