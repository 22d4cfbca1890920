//! nivesh-genai-gateway: answers investor, distributor and support questions from retrieved
//! context only, with PII masking, policy filtering, quotas and a response cache.
//!
//! - [`handler`]: the `genai-gateway` consumer group builds the read model (schemes, NAV history
//!   and anomalies from `nav.broadcast`/`nav.validated`; holdings and folios from
//!   `portfolio.updated`/`transaction.completed`) in this service's own store.
//! - [`context`]: retrieval (the caller's own portfolio, BM25 over fund facts and documents via
//!   [`bm25`], anomaly facts); [`prompt`]: the fixed prompt layout.
//! - [`mask`]: PII → tokens before anything leaves, restored for the authorised caller.
//! - [`llm`]: the provider port (OpenAI-compatible/Azure with timeout, retry, circuit breaker;
//!   the local extractive provider).
//! - [`policy`]: the answer filter and the grounding score.
//! - [`quota`]: budgets in Redis (Lua), in-process when Redis is down.
//! - [`gateway`]: the pipeline (cache, single-flight, quota, LLM, policy, escalation, metering,
//!   audit); [`api`]: the routes; [`access`]: who may call what.
//!
//! See docs/services/genai-gateway.md.

pub mod access;
pub mod api;
pub mod bm25;
pub mod context;
pub mod gateway;
pub mod handler;
pub mod llm;
pub mod mask;
pub mod model;
pub mod policy;
pub mod prompt;
pub mod quota;

use std::sync::Arc;
use std::time::Duration;

use nivesh_auth::{Authenticator, DEFAULT_TENANT, require_auth};
use nivesh_runtime::config::Settings;
use nivesh_runtime::service::{ServiceApp, ServiceContext, connect, run as run_service};
use nivesh_store::{RedisCache, RedisConfig};
use rust_decimal::Decimal;
use secrecy::ExposeSecret;
use serde::Deserialize;
use utoipa::OpenApi;

use crate::gateway::{Gateway, PipelineSettings, SingleFlight};

/// The consumer group (and service name) in the topic catalog.
pub const GROUP: &str = handler::GROUP;

/// `[service]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The tenant events are filed under (events carry no tenant yet).
    pub default_tenant: String,
    /// `[service.llm]`
    pub llm: llm::LlmSettings,
    /// `[service.quotas]`
    pub quotas: quota::QuotaSettings,
    /// Answers whose grounding score is below this are escalated (0 to 1).
    pub min_grounding: Decimal,
    /// How long a cached answer is served.
    pub cache_ttl_secs: u64,
    /// Passages BM25 adds to a prompt.
    pub top_k: usize,
    /// Largest accepted document (characters).
    pub max_document_chars: usize,
    /// Cost estimate per 1000 input / output tokens (INR).
    pub price_per_1k_input_tokens: Decimal,
    pub price_per_1k_output_tokens: Decimal,
    /// Mixed into the hashed user id of audit records and tickets.
    pub user_hash_salt: String,
    /// One quota alert per window per this long.
    pub alert_ttl_secs: u64,
    /// How often the retrieval index catches up with the store (it also does on every query).
    pub index_refresh_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_tenant: DEFAULT_TENANT.to_string(),
            llm: llm::LlmSettings::default(),
            quotas: quota::QuotaSettings::default(),
            min_grounding: Decimal::new(6, 1),
            cache_ttl_secs: 3600,
            top_k: 4,
            max_document_chars: 200_000,
            price_per_1k_input_tokens: Decimal::new(125, 4),
            price_per_1k_output_tokens: Decimal::new(5, 2),
            user_hash_salt: "nivesh-genai".into(),
            alert_ttl_secs: 3600,
            index_refresh_ms: 2000,
        }
    }
}

/// The service's routes, consumer and index task on an existing context. `quota_redis` is the
/// Redis the quota script runs on (None: in-process quotas, degraded).
pub fn app(
    ctx: &ServiceContext,
    config: &Config,
    quota_redis: Option<RedisCache>,
) -> Result<ServiceApp, String> {
    let llm = llm::provider(&config.llm)?;
    let redis_timeout = ctx.settings.redis.command_timeout();
    let gateway = Arc::new(Gateway {
        store: ctx.store.clone(),
        cache: ctx.cache.clone(),
        quotas: quota::Quotas::new(quota_redis, redis_timeout),
        llm,
        codec: ctx.codec.clone(),
        outbox_notify: ctx.outbox_notify.clone(),
        settings: PipelineSettings {
            min_grounding: config.min_grounding,
            cache_ttl: Duration::from_secs(config.cache_ttl_secs.max(1)),
            quotas: config.quotas.clone(),
            max_tokens: config.llm.max_tokens,
            price_per_1k_input: config.price_per_1k_input_tokens,
            price_per_1k_output: config.price_per_1k_output_tokens,
            user_hash_salt: config.user_hash_salt.clone(),
            alert_ttl: Duration::from_secs(config.alert_ttl_secs.max(1)),
        },
        flights: SingleFlight::default(),
    });
    let retriever = Arc::new(context::Retriever::new(ctx.store.clone()));
    let handler = handler::GenAiHandler {
        store: ctx.store.clone(),
        codec: ctx.codec.clone(),
        tenant: config.default_tenant.clone(),
    };
    let routes = api::router(api::GenAiApi {
        gateway,
        retriever: retriever.clone(),
        top_k: config.top_k.max(1),
        max_document_chars: config.max_document_chars.max(1),
    })
    .route_layer(require_auth(Authenticator::new(&ctx.settings.auth)));
    let (shutdown, every) = (
        ctx.shutdown.clone(),
        Duration::from_millis(config.index_refresh_ms.max(100)),
    );
    Ok(ServiceApp::new()
        .routes(routes)
        .openapi(api::ApiDoc::openapi())
        .consumer(GROUP, Arc::new(handler))
        .task("retrieval-index", async move {
            loop {
                if let Err(e) = retriever.catch_up().await {
                    tracing::warn!(error = %e, "retrieval index catch-up failed");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok::<(), String>(()),
                    _ = tokio::time::sleep(every) => {}
                }
            }
        }))
}

/// Redis for the quota script, when configured and answering.
pub async fn quota_redis<T>(settings: &Settings<T>) -> Option<RedisCache> {
    let url = settings.redis.url.as_ref()?;
    let config = RedisConfig {
        connect_timeout: settings.redis.connect_timeout(),
        command_timeout: settings.redis.command_timeout(),
    };
    match RedisCache::connect_with(url.expose_secret(), &settings.redis.key_prefix, config).await {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "Redis unavailable: GenAI quotas are enforced in-process (per instance)");
            None
        }
    }
}

/// Run the service until SIGTERM.
pub async fn run(settings: Settings<Config>) -> nivesh_runtime::Result<()> {
    let ctx = connect(&settings).await?;
    let redis = quota_redis(&settings).await;
    let app = app(&ctx, &settings.service, redis).map_err(nivesh_runtime::Error::Config)?;
    run_service(ctx, app).await
}
