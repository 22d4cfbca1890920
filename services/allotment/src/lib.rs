//! nivesh-allotment: the transaction engine (the registrar's unit ledger).
//!
//! Owns the NAV table it prices from (`nav.broadcast`), every investor's FIFO lots per scheme
//! and the allotment records. Paid purchases (`payment.success`) and accepted redemptions and
//! switches (`order.placed`) wait for their applicable NAV, then become `transaction.completed`
//! (or `transaction.failed` when no NAV arrives within the configured limit, when the units are
//! not there, or when the order cannot be executed).
//!
//! - [`config`]: the `[service]` section (holidays, NAV wait limit, sweep interval, exit loads
//!   and units rounding as data).
//! - [`ledger`]: pure lots arithmetic on top of `nivesh-txn-rules` (FIFO, cost basis, folio).
//! - [`model`]: the stored documents, containers, partition keys and deterministic ids.
//! - `engine`: executes legs effectively once (one batch per allotment in the investor's
//!   partition) and parks legs whose NAV is not there yet (pending + wait index).
//! - `handler`: the `allotment` consumer group (`nav.broadcast`, `payment.success`,
//!   `order.placed`).
//! - `sweeper`: the periodic safety net (late wakeups, `NAV_NOT_AVAILABLE`).
//! - [`api`]: internal reads (an order's allotment, an investor's lots).
//!
//! See `docs/services/allotment.md`.

pub mod api;
pub mod config;
mod engine;
mod handler;
pub mod ledger;
pub mod model;
mod sweeper;

use std::sync::Arc;

use nivesh_domain::time::Clock;
use nivesh_runtime::config::Settings;
use nivesh_runtime::service::{ServiceApp, ServiceContext, connect, run as run_service};
use utoipa::OpenApi;

pub use config::Config;

/// The consumer group (and service name) in the topic catalog.
pub const GROUP: &str = engine::GROUP;

/// The service's consumers, sweeper task and routes on `ctx`, with `clock` as the business
/// clock. Split from [`run`] so tests run the real service in-process (with their own clock).
pub fn app(ctx: &ServiceContext, config: &Config, clock: Arc<dyn Clock>) -> ServiceApp {
    let engine = Arc::new(engine::Engine {
        store: ctx.store.clone(),
        codec: ctx.codec.clone(),
        outbox_notify: ctx.outbox_notify.clone(),
        clock,
        rules: engine::Rules::from_config(config),
    });
    let sweeper = sweeper::Sweeper::new(engine.clone(), config.sweep_interval());
    let shutdown = ctx.shutdown.clone();
    ServiceApp::new()
        .consumer(GROUP, Arc::new(handler::Handler { engine }))
        .task("nav-wait-sweeper", sweeper.run(shutdown))
        .routes(api::router(
            api::ApiState {
                store: ctx.store.clone(),
            },
            nivesh_auth::Authenticator::new(&ctx.settings.auth),
        ))
        .openapi(api::ApiDoc::openapi())
}

/// Run the service until SIGTERM.
pub async fn run(settings: Settings<Config>) -> nivesh_runtime::Result<()> {
    let ctx = connect(&settings).await?;
    let app = app(&ctx, &settings.service, settings.clock.clock());
    run_service(ctx, app).await
}
