//! nivesh-onboarding: distributors onboard investors; KYC through the KRA; the PII vault;
//! distributor commissions; DPDP erasure. See `docs/services/onboarding.md`.
//!
//! - [`api`]: `POST /v1/leads`, `POST /v1/investors`, `GET /v1/investors/{id}` (masked),
//!   `POST /v1/investors/{id}/kyc`, `POST /v1/investors/{id}/erasure`,
//!   `GET /v1/distributors/{id}/investors|leads|commissions`, `GET /v1/commission/rates`
//!   (bearer tokens, [`access`]) and `POST /v1/kyc/callback` (HMAC, [`signature`]).
//! - [`claims`]: one investor per PAN per tenant (a claim under a keyed hash of the PAN), which
//!   makes `POST /v1/investors` idempotent.
//! - [`flow`]: onboard → vault → KRA → verdict → events, erasure; outbox events
//!   `investor.onboarded`, `kyc.verified`, `investor.erased`.
//! - [`model`]: requests, validation (every field error at once), records, masked views.
//! - [`aadhaar`]: the Aadhaar type (Verhoeff; masked only); [`vault`]: envelope encryption with
//!   a per-investor AES-256-GCM data key wrapped by a KMS (local key file or Azure Key Vault).
//! - [`kra`]: the KRA HTTP adapter; [`provisioner`]: the credential hook on VALIDATED.
//! - [`commission`] + [`handler`]: consumer group `onboarding` (`transaction.completed`,
//!   `nav.broadcast`): upfront and trail accruals per distributor, idempotent (inbox).
//! - [`config`]: the `[service]` section.

pub mod aadhaar;
pub mod access;
pub mod api;
pub mod claims;
pub mod commission;
pub mod config;
pub mod flow;
pub mod handler;
pub mod kra;
pub mod model;
pub mod provisioner;
pub mod signature;
pub mod vault;

use std::sync::Arc;
use std::time::Duration;

use nivesh_auth::{Authenticator, require_auth};
use nivesh_domain::time::{Clock, SystemClock};
use nivesh_runtime::config::Settings;
use nivesh_runtime::service::{ServiceApp, ServiceContext, connect, run as run_service};
use utoipa::OpenApi;

pub use config::Config;

/// The consumer group (and service name) in the topic catalog.
pub const GROUP: &str = handler::GROUP;

/// The KMS the configuration asks for (the local key file defaults to the store's data dir).
pub fn kms(config: &Config, data_dir: &std::path::Path) -> Result<Arc<dyn vault::Kms>, String> {
    Ok(match config.vault.kms {
        config::KmsKind::LocalFile => {
            let path = config
                .vault
                .local_key_file
                .clone()
                .unwrap_or_else(|| vault::LocalKeyFileKms::default_path(data_dir));
            Arc::new(vault::LocalKeyFileKms::open_or_create(&path).map_err(|e| e.to_string())?)
        }
        config::KmsKind::AzureKeyVault => {
            Arc::new(vault::AzureKeyVaultKms::new(&config.vault.azure)?)
        }
    })
}

/// Everything the service adds to the runtime, built from a connected context.
/// `clock` is the business clock (`settings.clock.clock()`). Async: the PAN index key is
/// loaded (or created) and unwrapped through the KMS here, so a KMS that cannot unwrap it
/// stops the start-up instead of failing every onboarding later.
pub async fn build(
    ctx: &ServiceContext,
    config: &Config,
    clock: Arc<dyn Clock>,
) -> nivesh_runtime::Result<ServiceApp> {
    let secret = config.secret().map_err(nivesh_runtime::Error::Config)?;
    let kms = kms(config, &ctx.settings.store.data_dir).map_err(nivesh_runtime::Error::Config)?;
    let kra = kra::KraClient::new(&config.kra).map_err(nivesh_runtime::Error::Config)?;
    let pan_index = claims::PanIndex::load_or_create(ctx.store.as_ref(), kms.as_ref(), clock.now())
        .await
        .map_err(|e| nivesh_runtime::Error::Config(format!("the PAN index key: {e}")))?;
    let vault = vault::Vault::new(ctx.store.clone(), kms);
    tracing::info!(kms = vault.kms_kind(), kra = %config.kra.base_url, "onboarding configured");
    let onboarding = flow::Onboarding {
        store: ctx.store.clone(),
        cache: ctx.cache.clone(),
        codec: ctx.codec.clone(),
        outbox_notify: ctx.outbox_notify.clone(),
        vault,
        pan_index,
        kra,
        provisioner: Arc::new(provisioner::RecordingProvisioner {
            store: ctx.store.clone(),
            container: flow::INVESTORS,
        }),
        clock: clock.clone(),
        adult_age_years: config.adult_age_years,
        view_ttl: (config.view_cache_ttl_secs > 0)
            .then(|| Duration::from_secs(config.view_cache_ttl_secs)),
    };
    let commissions = commission::Commissions {
        store: ctx.store.clone(),
        config: Arc::new(config.commission.clone()),
    };
    let handler = handler::OnboardingHandler {
        commissions: commissions.clone(),
        codec: ctx.codec.clone(),
        clock,
    };
    let state = api::ApiState {
        onboarding,
        commissions,
        callback_secret: secret,
        callback_tolerance: config.callback_tolerance(),
        wall_clock: Arc::new(SystemClock),
    };
    let routes = api::protected_router(state.clone())
        .route_layer(require_auth(Authenticator::new(&ctx.settings.auth)))
        .merge(api::callback_router(state));
    Ok(ServiceApp::new()
        .routes(routes)
        .openapi(api::ApiDoc::openapi())
        .consumer(GROUP, Arc::new(handler)))
}

/// Run the service until SIGTERM.
pub async fn run(settings: Settings<Config>) -> nivesh_runtime::Result<()> {
    // Checked before connecting: a missing secret is a configuration error, not a crash later.
    settings
        .service
        .secret()
        .map_err(nivesh_runtime::Error::Config)?;
    let ctx = connect(&settings).await?;
    let app = build(&ctx, &settings.service, settings.clock.clock()).await?;
    run_service(ctx, app).await
}
