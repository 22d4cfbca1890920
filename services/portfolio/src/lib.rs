//! nivesh-portfolio: every investor's holdings per folio and scheme, valued at the latest NAV.
//!
//! - [`handler`]: the `portfolio` consumer group. `transaction.completed` → FIFO lots, units,
//!   cost basis, cash flows and the investor's version, with the inbox marker and a
//!   `portfolio.updated` outbox record in one batch in the investor's partition;
//!   `nav.broadcast` → the latest NAV per scheme; `investor.onboarded` / `investor.erased` →
//!   the investor's owner (tenant, distributor) for [`access`].
//! - [`ledger`]: applying one transaction to a holding (pure).
//! - [`valuation`]: current value, gain, XIRR and the ETag (pure).
//! - [`reconcile`]: holdings vs the sum of their transactions (pure).
//! - [`repo`]: store (system of record) and Redis (cache-aside) access.
//! - [`api`]: `GET /v1/investors/{investorId}/portfolio`, `.../transactions`, `.../reconciliation`.
//! - [`model`]: stored documents, ids and cache keys.
//! - [`access`]: who may read whose portfolio (bearer token + the investor owner learnt from
//!   `investor.onboarded` / `investor.erased`, over the seeded investor registry).
//!
//! Flow: `transaction.completed` → [`handler::PortfolioHandler`] → store + outbox →
//! `portfolio.updated` (the order service marks the order COMPLETED), then Redis.

pub mod access;
pub mod api;
pub mod handler;
pub mod ledger;
pub mod model;
pub mod reconcile;
pub mod repo;
pub mod valuation;

use std::sync::Arc;
use std::time::Duration;

use nivesh_domain::time::Clock;
use nivesh_runtime::config::Settings;
use nivesh_runtime::service::{ServiceApp, ServiceContext, connect, run as run_service};
use serde::Deserialize;
use utoipa::OpenApi;

/// The consumer group (and service name) in the topic catalog.
pub const GROUP: &str = handler::GROUP;

/// `[service]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// How long an investor's cached holdings live in Redis (a bound on staleness if a refresh
    /// after a write was lost).
    pub holdings_cache_ttl_secs: u64,
    /// How long a scheme's cached latest NAV lives in Redis.
    pub nav_cache_ttl_secs: u64,
    /// The seeded investor registry: tenant and onboarding distributor per investor, for
    /// access control (see [`access`]).
    pub investor_registry: std::path::PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            holdings_cache_ttl_secs: 600,
            nav_cache_ttl_secs: 3600,
            investor_registry: std::path::PathBuf::from("config/investors.json"),
        }
    }
}

/// The service's routes, OpenAPI and consumer on an existing context, valuing with `clock`
/// (the business clock in production; tests pass a fixed one).
pub fn app(ctx: &ServiceContext, config: &Config, clock: Arc<dyn Clock>) -> ServiceApp {
    let repo = repo::Repo::new(
        ctx.store.clone(),
        ctx.cache.clone(),
        Duration::from_secs(config.holdings_cache_ttl_secs.max(1)),
        Duration::from_secs(config.nav_cache_ttl_secs.max(1)),
    );
    let handler = handler::PortfolioHandler {
        store: ctx.store.clone(),
        repo: repo.clone(),
        codec: ctx.codec.clone(),
        outbox_notify: ctx.outbox_notify.clone(),
    };
    let (invalidations, shutdown) = (repo.clone(), ctx.shutdown.clone());
    ServiceApp::new()
        .task("cache-invalidations", async move {
            invalidations.run_invalidations(shutdown).await
        })
        .routes(api::router(
            api::PortfolioApi {
                repo,
                clock,
                directory: Arc::new(access::InvestorDirectory::load(&config.investor_registry)),
            },
            nivesh_auth::Authenticator::new(&ctx.settings.auth),
        ))
        .openapi(api::ApiDoc::openapi())
        .consumer(GROUP, Arc::new(handler))
}

/// Run the service until SIGTERM.
pub async fn run(settings: Settings<Config>) -> nivesh_runtime::Result<()> {
    let ctx = connect(&settings).await?;
    let app = app(&ctx, &settings.service, settings.clock.clock());
    run_service(ctx, app).await
}
