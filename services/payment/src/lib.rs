//! nivesh-payment: collects payment for purchase and SIP orders through the payment gateway,
//! reports the outcome, and refunds failed orders. See `docs/services/payment.md`.
//!
//! - [`handler`]: consumer group `payment`: `order.placed` → gateway → `payment.initiated` |
//!   `payment.failed`; `order.failed` with a refund → gateway refund → `payment.refunded`.
//! - [`api`]: `POST /v1/payments/webhook` (HMAC-authenticated) → `payment.success` |
//!   `payment.failed`; `GET /v1/payments/{orderId}?investorId=`.
//! - [`reconcile`]: polls the gateway for payments whose webhook is late or lost, expires the
//!   ones that never complete, and finishes requested refunds.
//! - [`record`]: the payment record and its state machine (pure).
//! - [`flow`]: record + event + inbox marker in one ETag-guarded batch; event building.
//! - [`gateway`]: the HTTP adapter (timeouts, retries with [`backoff`], [`breaker`]).
//! - [`signature`]: webhook HMAC-SHA256 verification with replay tolerance.
//! - [`config`]: the `[service]` section.
//!
//! State: container `payments`, partition = investor id (the order-flow topics are keyed by it,
//! so a consumer's inbox marker, the record and its outbox event share one partition).

pub mod api;
pub mod backoff;
pub mod breaker;
pub mod config;
pub mod flow;
pub mod gateway;
pub mod handler;
pub mod reconcile;
pub mod record;
pub mod signature;

use std::sync::Arc;

use nivesh_domain::time::{Clock, SystemClock};
use nivesh_runtime::config::Settings;
use nivesh_runtime::service::{ServiceApp, ServiceContext, connect, run as run_service};
use utoipa::OpenApi;

pub use config::Config;

/// The consumer group (and service name) in the topic catalog.
pub const GROUP: &str = handler::GROUP;

/// Everything the service adds to the runtime, built from a connected context.
/// `clock` is the business clock (`settings.clock.clock()`).
pub fn build(
    ctx: &ServiceContext,
    config: &Config,
    clock: Arc<dyn Clock>,
) -> nivesh_runtime::Result<ServiceApp> {
    let secret = config.secret().map_err(nivesh_runtime::Error::Config)?;
    let gateway =
        gateway::GatewayClient::new(&config.gateway).map_err(nivesh_runtime::Error::Config)?;
    let payments = flow::Payments {
        store: ctx.store.clone(),
        codec: ctx.codec.clone(),
        outbox_notify: ctx.outbox_notify.clone(),
        gateway: Arc::new(gateway),
        clock,
        gateway_name: config.gateway.name.clone(),
    };
    let handler = handler::PaymentHandler {
        payments: payments.clone(),
        final_attempt: handler::final_attempt(),
    };
    let api_state = api::ApiState {
        payments: payments.clone(),
        secret,
        tolerance: config.webhook_tolerance(),
        wall_clock: Arc::new(SystemClock),
    };
    let mut app = ServiceApp::new()
        .routes(api::router(
            api_state,
            nivesh_auth::Authenticator::new(&ctx.settings.auth),
        ))
        .openapi(api::ApiDoc::openapi())
        .consumer(GROUP, Arc::new(handler));
    if config.reconcile.enabled {
        let reconciler = reconcile::Reconciler::new(payments, config.reconcile.clone());
        let shutdown = ctx.shutdown.clone();
        app = app.task("reconciler", reconciler.run(shutdown));
    }
    Ok(app)
}

/// Run the service until SIGTERM.
pub async fn run(settings: Settings<Config>) -> nivesh_runtime::Result<()> {
    // Checked before connecting: a missing secret is a configuration error, not a crash later.
    settings
        .service
        .secret()
        .map_err(nivesh_runtime::Error::Config)?;
    let ctx = connect(&settings).await?;
    let app = build(&ctx, &settings.service, settings.clock.clock())?;
    run_service(ctx, app).await
}
