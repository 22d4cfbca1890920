//! nivesh-order: takes investor orders (purchase, redemption, switch, SIP) and follows each to
//! a terminal state. See `docs/services/order.md` and the contract in `docs/transactions.md`.
//!
//! - [`api`]: `POST /v1/orders` (idempotent under `Idempotency-Key`), order and SIP reads, the
//!   investor's order list, the SIP run endpoint, OpenAPI.
//! - `place`: placement — idempotency record + order + listing entry + position lock + the
//!   `order.placed` outbox record in ONE batch in the investor's partition; `idem_cache`: the
//!   Redis fast path in front of it (repeats answered from Redis, duplicates wait for the first).
//! - `validate`: the request shape per kind (pure); `status`: the status machine (pure).
//! - [`handler`]: the `order` consumer group — payment, transaction and portfolio events move
//!   the timeline (and emit `order.failed`); `nav.broadcast` feeds the scheme table; the
//!   onboarding service's identity events feed `identity`.
//! - `sip`: SIP schedule, instalment runner and the daily task.
//! - [`model`]: documents and the storage layout; [`registry`]: the seeded investor registry
//!   (the bootstrap); `identity`: investors learnt from `investor.onboarded`, `kyc.verified`
//!   and `investor.erased`, merged over the registry (who may transact, tenant, distributor).

pub mod api;
pub mod handler;
mod idem_cache;
mod identity;
pub mod model;
mod place;
pub mod registry;
mod service;
mod sip;
mod status;
mod validate;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nivesh_domain::time::Clock;
use nivesh_runtime::config::Settings;
use nivesh_runtime::service::{ServiceApp, ServiceContext, connect, run as run_service};
use nivesh_txn_rules::HolidaySet;
use serde::Deserialize;
use utoipa::OpenApi;

pub use place::IDEMPOTENT_REPLAYED;
pub use service::OrderService;
pub use sip::SipRunReport;
pub use validate::Limits;

/// The consumer group (and service name) in the topic catalog.
pub const GROUP: &str = "order";
pub const ORDER_PLACED_TOPIC: &str = "order.placed";
pub const ORDER_FAILED_TOPIC: &str = "order.failed";

/// `[service]` settings (env: `NIVESH__SERVICE__<KEY>`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The seeded investor registry (relative to the working directory).
    pub investor_registry: PathBuf,
    /// Scheme codes closed for purchases whatever their scheme type.
    pub closed_schemes: Vec<String>,
    /// Market holidays (ISO dates) for the expected applicable NAV date.
    pub holidays: HolidaySet,
    pub limits: Limits,
    /// How often the SIP task looks for due instalments (0: no task; `POST /v1/sips/run` only).
    pub sip_run_interval_secs: u64,
    /// How long idempotency records are kept (at least 24).
    pub idempotency_ttl_hours: u64,
    /// How long a placement's response stays in Redis to answer repeats of its key without
    /// reading the store's record (seconds; 0: off, the store alone). The store's record,
    /// kept `idempotency_ttl_hours`, decides either way.
    pub idempotency_cache_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            investor_registry: PathBuf::from("config/investors.json"),
            closed_schemes: Vec::new(),
            holidays: HolidaySet::new(),
            limits: Limits::default(),
            sip_run_interval_secs: 3600,
            idempotency_ttl_hours: 48,
            idempotency_cache_secs: 600,
        }
    }
}

/// Routes, OpenAPI, the consumer and the SIP task of the service, on `ctx`'s store and codec.
/// `clock` is the business clock (`settings.clock.clock()`; tests pass a fixed one).
pub fn build(
    ctx: &ServiceContext,
    config: Config,
    clock: Arc<dyn Clock>,
) -> nivesh_runtime::Result<(ServiceApp, Arc<OrderService>)> {
    if config.idempotency_ttl_hours < 24 {
        return Err(nivesh_runtime::Error::Config(format!(
            "[service] idempotency_ttl_hours = {} but keys must be kept at least 24 hours",
            config.idempotency_ttl_hours
        )));
    }
    let registry = registry::InvestorRegistry::load(&config.investor_registry)
        .map_err(nivesh_runtime::Error::Config)?;
    tracing::info!(investors = registry.len(), "investor registry loaded");
    let interval = config.sip_run_interval_secs;
    let idempotency_cache = Duration::from_secs(config.idempotency_cache_secs);
    let svc = Arc::new(
        OrderService::new(
            ctx.store.clone(),
            ctx.codec.clone(),
            ctx.outbox_notify.clone(),
            clock,
            registry,
            config,
        )
        .with_idempotency_cache(ctx.cache.clone(), idempotency_cache),
    );
    let authenticator = nivesh_auth::Authenticator::new(&ctx.settings.auth);
    let mut app = ServiceApp::new()
        .routes(api::router(svc.clone(), authenticator))
        .openapi(api::ApiDoc::openapi())
        .consumer(GROUP, Arc::new(handler::Consumer::new(svc.clone())));
    if interval > 0 {
        app = app.task(
            "sip-scheduler",
            sip::scheduler(
                svc.clone(),
                Duration::from_secs(interval),
                ctx.shutdown.clone(),
            ),
        );
    }
    Ok((app, svc))
}

/// Run the service until SIGTERM.
pub async fn run(settings: Settings<Config>) -> nivesh_runtime::Result<()> {
    let ctx = connect(&settings).await?;
    let (app, _) = build(&ctx, settings.service.clone(), settings.clock.clock())?;
    run_service(ctx, app).await
}
