//! nivesh-notification: tells investors what happened to their orders, payments and allotments.
//!
//! - [`template`]: the message templates as data (subject, email body, short text) with named
//!   placeholders and optional sections.
//! - [`compose`]: which template an event becomes and its exact figures ([`format`]: ₹ with
//!   Indian digit grouping, units to 3 dp, IST dates).
//! - [`channel`]: the [`channel::Channel`] adapter trait; email through lettre (SMTP, or `.eml`
//!   files in `mail_dir`), SMS and push through an HTTP provider.
//! - [`registry`]: investor contacts from `config/investors.json`.
//! - [`handler`]: the `notification` consumer: send at most once per (event id, channel).
//! - [`api`]: `GET /v1/investors/{investorId}/notifications`.
//!
//! Flow: `order.placed`, `payment.failed`, `payment.refunded`, `transaction.completed`,
//! `order.failed` → [`handler::Notifier`] → email / SMS / push + a notification record.

pub mod api;
pub mod channel;
pub mod compose;
pub mod format;
pub mod handler;
pub mod model;
pub mod registry;
pub mod template;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nivesh_domain::time::Clock;
use nivesh_runtime::config::Settings;
use nivesh_runtime::service::{ServiceApp, ServiceContext, connect, run as run_service};
use nivesh_txn_rules::HolidaySet;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use utoipa::OpenApi;

use crate::channel::{Channel, EmailChannel, HttpChannel, HttpKind};
use crate::registry::InvestorRegistry;

/// The consumer group (and service name) in the topic catalog.
pub const GROUP: &str = handler::GROUP;

/// `[service]` settings. Empty strings mean "not set".
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The seeded investor registry (contacts). Relative to the working directory.
    pub investor_registry: PathBuf,
    /// `smtp://…` / `smtps://…` (lettre's URL form, credentials inside): email goes over SMTP.
    /// Unset: email is written as `.eml` files into `mail_dir`.
    #[serde(deserialize_with = "optional_secret")]
    pub smtp_url: Option<SecretString>,
    /// Where `.eml` files go without SMTP. Default `<store.data_dir>/mail`.
    #[serde(deserialize_with = "optional_path")]
    pub mail_dir: Option<PathBuf>,
    /// The sender, `Name <address>`; its domain is the Message-ID's right-hand side.
    pub mail_from: String,
    /// SMS provider endpoint (JSON POST). Unset: no SMS.
    #[serde(deserialize_with = "optional_string")]
    pub sms_url: Option<String>,
    /// Bearer token for the SMS provider.
    #[serde(deserialize_with = "optional_secret")]
    pub sms_api_key: Option<SecretString>,
    /// Push provider endpoint (JSON POST, addressed by investor id). Unset: no push.
    #[serde(deserialize_with = "optional_string")]
    pub push_url: Option<String>,
    #[serde(deserialize_with = "optional_secret")]
    pub push_api_key: Option<SecretString>,
    /// Bound on one provider request (connect and response), milliseconds.
    pub provider_timeout_ms: u64,
    /// Redemption proceeds are expected this many business days after the NAV date.
    pub redemption_credit_days: u32,
    /// Bank/AMC holidays besides weekends, for the expected credit date (`["2025-03-14"]`).
    pub holidays: HolidaySet,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            investor_registry: PathBuf::from("config/investors.json"),
            smtp_url: None,
            mail_dir: None,
            mail_from: "Nivesh <notifications@nivesh.example>".into(),
            sms_url: None,
            sms_api_key: None,
            push_url: None,
            push_api_key: None,
            provider_timeout_ms: 5000,
            redemption_credit_days: 3,
            holidays: HolidaySet::new(),
        }
    }
}

fn optional_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()))
}

fn optional_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(optional_string(d)?.map(SecretString::from))
}

fn optional_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(optional_string(d)?.map(PathBuf::from))
}

/// Startup errors of this service's own wiring.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    #[error("{0}")]
    Channel(String),
}

impl From<SetupError> for nivesh_runtime::Error {
    fn from(e: SetupError) -> Self {
        nivesh_runtime::Error::Config(e.to_string())
    }
}

/// The channels `settings` enable: email always, SMS and push when their URLs are set.
pub fn channels(settings: &Settings<Config>) -> Result<Vec<Arc<dyn Channel>>, SetupError> {
    let cfg = &settings.service;
    let email = match &cfg.smtp_url {
        Some(url) => EmailChannel::smtp(url, &cfg.mail_from),
        None => EmailChannel::files(
            cfg.mail_dir
                .clone()
                .unwrap_or_else(|| settings.store.data_dir.join("mail")),
            &cfg.mail_from,
        ),
    }
    .map_err(SetupError::Channel)?;
    tracing::info!(channel = ?email, "email channel");
    let mut all: Vec<Arc<dyn Channel>> = vec![Arc::new(email)];
    let timeout = Duration::from_millis(cfg.provider_timeout_ms.max(1));
    for (kind, url, key) in [
        (HttpKind::Sms, &cfg.sms_url, &cfg.sms_api_key),
        (HttpKind::Push, &cfg.push_url, &cfg.push_api_key),
    ] {
        if let Some(url) = url {
            let ch = HttpChannel::new(kind, url.clone(), key.clone(), timeout)
                .map_err(SetupError::Channel)?;
            tracing::info!(channel = ?ch, "provider channel");
            all.push(Arc::new(ch));
        }
    }
    Ok(all)
}

/// The service's routes, OpenAPI and consumer on an opened context, with `clock` as "now".
/// [`run`] uses it with the business clock; tests call it directly.
pub fn app(
    ctx: &ServiceContext,
    settings: &Settings<Config>,
    clock: Arc<dyn Clock>,
) -> Result<ServiceApp, SetupError> {
    let registry = InvestorRegistry::load(&settings.service.investor_registry)?;
    tracing::info!(investors = registry.len(), path = %settings.service.investor_registry.display(), "investor registry loaded");
    let notifier = handler::Notifier {
        store: ctx.store.clone(),
        codec: ctx.codec.clone(),
        registry: Arc::new(registry),
        channels: channels(settings)?,
        rules: compose::Rules {
            redemption_credit_days: settings.service.redemption_credit_days,
            holidays: settings.service.holidays.clone(),
        },
        clock,
    };
    let reads = api::NotificationReads {
        store: ctx.store.clone(),
    };
    Ok(ServiceApp::new()
        .routes(api::router(
            reads,
            nivesh_auth::Authenticator::new(&ctx.settings.auth),
        ))
        .openapi(api::ApiDoc::openapi())
        .consumer(GROUP, Arc::new(notifier)))
}

/// Run the service until SIGTERM.
pub async fn run(settings: Settings<Config>) -> nivesh_runtime::Result<()> {
    let ctx = connect(&settings).await?;
    let app = app(&ctx, &settings, settings.clock.clock())?;
    run_service(ctx, app).await
}
