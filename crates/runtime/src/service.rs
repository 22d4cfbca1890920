//! The service lifecycle: [`connect`] → [`ServiceApp`] → [`run`].
//!
//! ```text
//! let ctx = connect(&settings).await?;                 // telemetry, store, cache, producer
//! let app = ServiceApp::new().routes(api::router(..)).openapi(api::ApiDoc::openapi())
//!     .consumer("nav-publisher", Arc::new(handler));
//! run(ctx, app).await                                    // until SIGTERM; Err if anything failed
//! ```
//!
//! Crash-only: a consumer, the outbox relay or a task that fails (or a consumer that stops on
//! its own) stops the whole service with an error, so the process exits non-zero and the
//! supervisor restarts it into a known state. Rejected: restarting pieces in-process, which
//! hides the failure and duplicates what the supervisor already does.

use nivesh_events::{AvroCodec, SchemaRegistryClient};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use metrics_exporter_prometheus::PrometheusHandle;
use nivesh_bus::{
    BusProducer, ConsumerSettings, KafkaSettings, MessageHandler, OutboxRelay, run_consumer,
};
use nivesh_store::{Cache, DocumentStore, EmbeddedStore, MemoryCache, RedisCache, RedisConfig};
use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use utoipa::openapi::OpenApi;

use crate::config::{Settings, StoreBackend};
use crate::health::{BrokerCheck, CacheCheck, ReadinessCheck, StoreCheck};
use crate::http::{RuntimeState, app_router};
use crate::telemetry::TelemetryGuard;
use crate::{Error, Result};

/// The final producer flush gets at least this long, even when draining used up the deadline:
/// undelivered records are only republished from the outbox later, so a flush is worth waiting for.
const MIN_FLUSH: Duration = Duration::from_secs(2);

/// What a service's library builds its handlers from. Made by [`connect`].
pub struct ServiceContext {
    /// The runtime's part of the settings (the service keeps its own `[service]` section).
    pub settings: Arc<Settings>,
    /// The service's own store: nobody else writes it.
    pub store: Arc<dyn DocumentStore>,
    /// Redis, or an in-process cache when Redis is absent (lossy by contract either way).
    pub cache: Arc<dyn Cache>,
    pub producer: BusProducer,
    /// `notify_one()` after committing a batch with outbox records: publishes them without
    /// waiting for the relay's next poll.
    pub outbox_notify: Arc<Notify>,
    /// Cancelled on SIGTERM/SIGINT (or when a task fails); long-running work of the service
    /// watches it. Cancelling it stops the service gracefully.
    pub shutdown: CancellationToken,
    pub kafka: KafkaSettings,
    pub metrics: PrometheusHandle,
    /// Avro codec: single-object framing, or the Confluent wire format when
    /// `kafka.schema_registry_url` is configured.
    pub codec: AvroCodec,
    relay: OutboxRelay,
    telemetry: Option<TelemetryGuard>,
}

impl fmt::Debug for ServiceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceContext")
            .field("service", &self.settings.service_name)
            .field("cache", &self.cache.kind())
            .field("kafka", &self.kafka)
            .finish_non_exhaustive()
    }
}

impl ServiceContext {
    /// A context from parts built elsewhere (tests, tools). [`connect`] is the usual way.
    pub fn new(
        settings: Settings,
        store: Arc<dyn DocumentStore>,
        cache: Arc<dyn Cache>,
        producer: BusProducer,
        kafka: KafkaSettings,
    ) -> Self {
        let relay = OutboxRelay::new(store.clone(), producer.clone());
        let codec = match settings
            .kafka
            .schema_registry_url
            .as_deref()
            .filter(|u| !u.is_empty())
        {
            Some(url) => AvroCodec::confluent(SchemaRegistryClient::new(url)),
            None => AvroCodec::single_object(),
        };
        ServiceContext {
            codec,
            settings: Arc::new(settings),
            outbox_notify: relay.notifier(),
            store,
            cache,
            producer,
            shutdown: CancellationToken::new(),
            kafka,
            metrics: crate::metrics::install(),
            relay,
            telemetry: None,
        }
    }
}

/// Install telemetry and metrics, log the effective configuration (secrets redacted), and open
/// the service's dependencies:
/// - the store: embedded at `<data_dir>/<service>.sqlite` (each service owns its data), or
///   Cosmos DB when `store.backend = "cosmos"` (builds with the `cosmos` feature), or the Cosmos
///   adapter over the SDK's in-process emulator when `"cosmos-emulator"` (chaos runs; builds with
///   the `cosmos-emulator` feature);
/// - the cache: Redis when `redis.url` is set and answers, else an in-process cache with a
///   warning (an error instead when `redis.required`);
/// - the idempotent producer (it does not wait for the broker: `/readyz` reports it).
///
/// Fails with a clear message when no Kafka broker is configured.
pub async fn connect<T: fmt::Debug>(settings: &Settings<T>) -> Result<ServiceContext> {
    let telemetry = crate::telemetry::init(&settings.telemetry, &settings.service_name)?;
    crate::config::log_effective(settings);
    let name = settings.service_name.as_str();
    // Before anything is opened: a missing broker is the most common local mistake.
    let kafka = settings.kafka.to_bus(name)?;
    let store = open_store(settings).await?;
    let cache = open_cache(settings).await?;
    let producer = BusProducer::new(&kafka)?;
    let mut ctx = ServiceContext::new(settings.common(), store, cache, producer, kafka);
    ctx.telemetry = Some(telemetry);
    Ok(ctx)
}

async fn open_store<T>(settings: &Settings<T>) -> Result<Arc<dyn DocumentStore>> {
    match settings.store.backend {
        StoreBackend::Embedded => {
            let path = settings.store.embedded_path(&settings.service_name);
            let store = EmbeddedStore::open(&path)?;
            tracing::info!(path = %path.display(), "embedded store opened");
            Ok(Arc::new(store))
        }
        StoreBackend::Cosmos => open_cosmos(&settings.store.cosmos).await,
        StoreBackend::CosmosEmulator => {
            crate::cosmos_emulator::refuse_in_production(
                &std::env::var(crate::config::ENVIRONMENT_VAR).unwrap_or_default(),
            )?;
            open_cosmos_emulator(settings).await
        }
    }
}

/// `store.backend = "cosmos-emulator"`: the Cosmos adapter over the SDK's in-process emulator
/// (chaos and load runs; see `crate::cosmos_emulator`), in builds with the `cosmos-emulator`
/// feature of nivesh-runtime.
#[cfg(feature = "cosmos-emulator")]
async fn open_cosmos_emulator<T>(settings: &Settings<T>) -> Result<Arc<dyn DocumentStore>> {
    crate::cosmos_emulator::open(&settings.store, &settings.service_name).await
}

#[cfg(not(feature = "cosmos-emulator"))]
async fn open_cosmos_emulator<T>(_settings: &Settings<T>) -> Result<Arc<dyn DocumentStore>> {
    Err(Error::Config(
        "store.backend = \"cosmos-emulator\" needs a build with the `cosmos-emulator` feature of \
         nivesh-runtime (CARGO_TARGET_DIR=~/.cache/nivesh/target-cosmos-emu cargo build --release \
         --workspace --bins --features nivesh-runtime/cosmos-emulator; docs/storage.md); \
         use store.backend = \"embedded\" locally"
            .into(),
    ))
}

/// `store.backend = "cosmos"`: the Cosmos DB adapter (nivesh-store-cosmos), in builds with the
/// `cosmos` feature of nivesh-runtime (the container image has it).
#[cfg(feature = "cosmos")]
async fn open_cosmos(cosmos: &crate::config::CosmosSettings) -> Result<Arc<dyn DocumentStore>> {
    let missing = |key: &str| {
        Error::Config(format!(
            "store.backend = \"cosmos\" needs store.cosmos.{key} (NIVESH__STORE__COSMOS__{})",
            key.to_uppercase()
        ))
    };
    let config = nivesh_store_cosmos::CosmosConfig {
        endpoint: cosmos.endpoint.clone().ok_or_else(|| missing("endpoint"))?,
        database: cosmos.database.clone().ok_or_else(|| missing("database"))?,
        key: cosmos.key.clone().ok_or_else(|| missing("key"))?,
        region: cosmos
            .region
            .clone()
            .unwrap_or_else(|| "centralindia".to_string()),
        retry: nivesh_store_cosmos::RetryPolicy::default(),
    };
    let store = nivesh_store_cosmos::CosmosStore::connect(&config).await?;
    tracing::info!(endpoint = %config.endpoint, database = %config.database, region = %config.region, "cosmos store opened");
    Ok(Arc::new(store))
}

#[cfg(not(feature = "cosmos"))]
async fn open_cosmos(_cosmos: &crate::config::CosmosSettings) -> Result<Arc<dyn DocumentStore>> {
    Err(Error::Config(
        "store.backend = \"cosmos\" needs a build with the `cosmos` feature of nivesh-runtime \
         (cargo build --features nivesh-runtime/cosmos; the container image has it); \
         use store.backend = \"embedded\" locally"
            .into(),
    ))
}

async fn open_cache<T>(settings: &Settings<T>) -> Result<Arc<dyn Cache>> {
    let redis = &settings.redis;
    let Some(url) = &redis.url else {
        if redis.required {
            return Err(Error::Config(
                "redis.required is true but redis.url is empty (NIVESH__REDIS__URL)".into(),
            ));
        }
        tracing::info!("redis.url is empty: using an in-process cache");
        return Ok(Arc::new(MemoryCache::new()));
    };
    let config = RedisConfig {
        connect_timeout: redis.connect_timeout(),
        command_timeout: redis.command_timeout(),
    };
    match RedisCache::connect_with(url.expose_secret(), &redis.key_prefix, config).await {
        Ok(cache) => {
            tracing::info!(key_prefix = %redis.key_prefix, "redis cache connected");
            Ok(Arc::new(cache))
        }
        Err(e) if redis.required => Err(Error::Config(format!(
            "redis.required is true and Redis is unavailable: {e}"
        ))),
        Err(e) => {
            // For the life of this process: a later Redis recovery is picked up by the restart
            // the next deploy or crash brings, which keeps one process's answers consistent.
            tracing::warn!(error = %e, "Redis unavailable at start-up: using an in-process cache (per instance, lossy)");
            Ok(Arc::new(MemoryCache::new()))
        }
    }
}

/// Is a background task expected to run until shutdown?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Consumers and the relay: stopping early means the service silently stopped working.
    UntilShutdown,
    /// Extra tasks may be one-shot (a backfill, a warm-up): finishing `Ok` is fine.
    MayFinish,
}

type TaskFuture = BoxFuture<'static, Result<()>>;

/// What a service adds to the runtime: routes, OpenAPI, consumers, tasks, readiness checks.
pub struct ServiceApp {
    routes: Router,
    openapi: Option<OpenApi>,
    consumers: Vec<(String, Arc<dyn MessageHandler>)>,
    tasks: Vec<(String, TaskFuture)>,
    readiness: Vec<Arc<dyn ReadinessCheck>>,
}

impl Default for ServiceApp {
    fn default() -> Self {
        ServiceApp::new()
    }
}

impl fmt::Debug for ServiceApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceApp")
            .field(
                "consumers",
                &self.consumers.iter().map(|(g, _)| g).collect::<Vec<_>>(),
            )
            .field(
                "tasks",
                &self.tasks.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field(
                "readiness",
                &self
                    .readiness
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl ServiceApp {
    pub fn new() -> Self {
        ServiceApp {
            routes: Router::new(),
            openapi: None,
            consumers: Vec::new(),
            tasks: Vec::new(),
            readiness: Vec::new(),
        }
    }

    /// Merge routes (state already applied). May be called repeatedly.
    pub fn routes(mut self, routes: Router) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// Merge an OpenAPI document for the routes. May be called repeatedly.
    pub fn openapi(mut self, doc: OpenApi) -> Self {
        match &mut self.openapi {
            Some(existing) => existing.merge(doc),
            None => self.openapi = Some(doc),
        }
        self
    }

    /// Consume the catalog group `group` with `handler` (topics and retry tiers come from the
    /// catalog; an unknown group fails [`run`] before anything starts).
    pub fn consumer(mut self, group: impl Into<String>, handler: Arc<dyn MessageHandler>) -> Self {
        self.consumers.push((group.into(), handler));
        self
    }

    /// A background task; it should watch [`ServiceContext::shutdown`]. An `Err` (or a panic)
    /// stops the service with an error; finishing `Ok` early is allowed.
    pub fn task<F, E>(mut self, name: impl Into<String>, task: F) -> Self
    where
        F: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let name = name.into();
        let task_name = name.clone();
        let future = async move {
            task.await.map_err(|e| Error::Task {
                name: task_name,
                reason: e.to_string(),
            })
        };
        self.tasks.push((name, Box::pin(future)));
        self
    }

    /// An extra readiness check besides broker, store and cache.
    pub fn readiness(mut self, check: Arc<dyn ReadinessCheck>) -> Self {
        self.readiness.push(check);
        self
    }
}

/// Serve and process until shutdown, then drain.
///
/// Starts the outbox relay, one consumer per group and the extra tasks; serves HTTP (the
/// service's routes merged into the runtime's router) on `http.addr` and logs `service started`
/// with the bound address. On SIGTERM/SIGINT or `ctx.shutdown` being cancelled: stops accepting
/// connections, lets in-flight requests, consumers and the relay finish (bounded by
/// `http.shutdown_timeout_secs`), flushes the producer. Returns `Err` when a consumer, the
/// relay or a task failed, so `main` exits non-zero.
pub async fn run(ctx: ServiceContext, app: ServiceApp) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(ctx.settings.http.addr).await?;
    run_on(ctx, app, listener).await
}

/// [`run`] on a listener the caller bound (tests bind port 0 and keep the address; a
/// supervisor may hand over a socket).
pub async fn run_on(
    ctx: ServiceContext,
    app: ServiceApp,
    listener: tokio::net::TcpListener,
) -> Result<()> {
    let ServiceContext {
        settings,
        store,
        cache,
        producer,
        shutdown,
        kafka,
        metrics,
        relay,
        telemetry,
        ..
    } = ctx;

    let mut consumers = Vec::with_capacity(app.consumers.len());
    for (group, handler) in app.consumers {
        consumers.push((
            ConsumerSettings::from_catalog(&group, kafka.clone())?,
            handler,
        ));
    }

    let check_timeout = settings.http.readiness_timeout();
    let mut state = RuntimeState::new(settings.service_name.clone(), metrics)
        // The metadata request gets most of the check's budget, so a slow broker reports
        // librdkafka's reason instead of a bare timeout.
        .with_check(Arc::new(BrokerCheck::new(
            producer.clone(),
            check_timeout.mul_f64(0.75),
        )))
        .with_check(Arc::new(StoreCheck::new(store.clone())))
        .with_check(Arc::new(CacheCheck::new(cache)))
        .with_checks(app.readiness)
        .with_check_timeout(check_timeout)
        .with_body_limit(settings.http.body_limit_bytes)
        .with_limits(crate::limits::Limits::new(
            &settings.service_name,
            &settings.http.limits,
            settings.redis.url.as_ref().map(|u| u.expose_secret()),
            &settings.redis.key_prefix,
        ));
    if let Some(doc) = app.openapi {
        state = state.with_openapi(doc);
    }
    let router = app_router(state, app.routes);

    let addr = listener.local_addr()?;

    let mut tasks: JoinSet<(String, Role, Result<()>)> = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<_>, task_name: String, role: Role, future: TaskFuture| {
        tasks.spawn(async move {
            let outcome = match AssertUnwindSafe(future).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => Err(Error::Task {
                    name: task_name.clone(),
                    reason: format!("panicked: {}", crate::http::panic_message(&*panic)),
                }),
            };
            (task_name, role, outcome)
        });
    };
    let relay_token = shutdown.clone();
    spawn(
        &mut tasks,
        "outbox-relay".into(),
        Role::UntilShutdown,
        Box::pin(async move { relay.run(relay_token).await.map_err(Error::from) }),
    );
    for (consumer_settings, handler) in consumers {
        let task_name = format!("consumer {}", consumer_settings.group);
        let (producer, token) = (producer.clone(), shutdown.clone());
        let future = async move {
            run_consumer(consumer_settings, handler, producer, token)
                .await
                .map_err(Error::from)
        };
        spawn(&mut tasks, task_name, Role::UntilShutdown, Box::pin(future));
    }
    for (task_name, future) in app.tasks {
        spawn(&mut tasks, task_name, Role::MayFinish, future);
    }

    let signals = tokio::spawn(cancel_on_signal(shutdown.clone()));
    let server_token = shutdown.clone();
    let mut server = tokio::spawn(async move {
        // With the peer address: the rate limiter keys anonymous requests by it.
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(server_token.cancelled_owned())
        .await
    });
    tracing::info!(addr = %addr, "service started");

    let mut failure: Option<Error> = None;
    let mut server_done = false;
    loop {
        tokio::select! {
            // Shutdown first: a task that ends because shutdown began is not a failure.
            biased;
            _ = shutdown.cancelled() => break,
            served = &mut server => {
                server_done = true;
                let error = match served {
                    Ok(Ok(())) => Error::Task { name: "http server".into(), reason: "stopped before shutdown".into() },
                    Ok(Err(e)) => Error::Io(e),
                    Err(e) => Error::Task { name: "http server".into(), reason: e.to_string() },
                };
                tracing::error!(error = %error, "http server stopped; shutting down");
                failure.get_or_insert(error);
                break;
            }
            Some(joined) = tasks.join_next() => {
                if shutdown.is_cancelled() {
                    break;
                }
                match task_outcome(joined) {
                    None => continue,
                    Some(error) => {
                        tracing::error!(error = %error, "background task failed; shutting down");
                        failure.get_or_insert(error);
                        break;
                    }
                }
            }
        }
    }
    shutdown.cancel();
    signals.abort();
    tracing::info!("shutting down: draining requests, consumers and the outbox relay");

    let deadline = Instant::now() + settings.http.shutdown_timeout();
    if !server_done {
        match tokio::time::timeout_at(deadline, &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                failure.get_or_insert(Error::Io(e));
            }
            Ok(Err(e)) => {
                failure.get_or_insert(Error::Task {
                    name: "http server".into(),
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                tracing::warn!(
                    "in-flight requests did not finish within the shutdown timeout; dropping them"
                );
                server.abort();
            }
        }
    }
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(None) => break,
            Ok(Some(joined)) => {
                // During shutdown stopping is expected; only errors count.
                if let Some(error) = task_outcome(joined).filter(|e| !is_early_stop(e)) {
                    tracing::error!(error = %error, "background task failed while stopping");
                    failure.get_or_insert(error);
                }
            }
            Err(_) => {
                tracing::warn!(
                    remaining = tasks.len(),
                    "background tasks did not stop within the shutdown timeout; aborting them"
                );
                tasks.abort_all();
                break;
            }
        }
    }

    let flush_for = deadline
        .saturating_duration_since(Instant::now())
        .max(MIN_FLUSH);
    let flushing = producer.clone();
    match tokio::task::spawn_blocking(move || flushing.flush(flush_for)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "producer flush incomplete; unacknowledged outbox records are republished on restart")
        }
        Err(e) => tracing::warn!(error = %e, "producer flush task failed"),
    }
    match &failure {
        None => tracing::info!("stopped"),
        Some(e) => tracing::error!(error = %e, "stopped after a failure"),
    }
    drop(telemetry);
    failure.map_or(Ok(()), Err)
}

const EARLY_STOP: &str = "stopped before shutdown";

fn is_early_stop(e: &Error) -> bool {
    matches!(e, Error::Task { reason, .. } if reason == EARLY_STOP)
}

/// `None` when the task's end is acceptable, else the error that stops the service.
fn task_outcome(
    joined: std::result::Result<(String, Role, Result<()>), tokio::task::JoinError>,
) -> Option<Error> {
    match joined {
        Ok((name, Role::UntilShutdown, Ok(()))) => Some(Error::Task {
            name,
            reason: EARLY_STOP.into(),
        }),
        Ok((name, Role::MayFinish, Ok(()))) => {
            tracing::info!(task = %name, "task finished");
            None
        }
        Ok((_, _, Err(e))) => Some(e),
        Err(e) if e.is_cancelled() => None,
        Err(e) => Some(Error::Task {
            name: "background task".into(),
            reason: e.to_string(),
        }),
    }
}

/// Cancel `token` on SIGTERM (the orchestrator) or SIGINT (Ctrl-C).
async fn cancel_on_signal(token: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let signal = tokio::select! {
        _ = terminate => "SIGTERM",
        _ = interrupt => "SIGINT",
        _ = token.cancelled() => return,
    };
    tracing::info!(signal, "shutdown requested");
    token.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigSources, load_from};

    fn cosmos_settings(vars: &[(&str, &str)]) -> Settings {
        let mut all = vec![("NIVESH__STORE__BACKEND", "cosmos")];
        all.extend_from_slice(vars);
        load_from(
            "svc",
            &ConfigSources {
                vars: all
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn emulator_settings(service: &str, vars: &[(&str, &str)]) -> Settings {
        let mut all = vec![("NIVESH__STORE__BACKEND", "cosmos-emulator")];
        all.extend_from_slice(vars);
        load_from(service, &ConfigSources::with_vars(all.iter().copied())).unwrap()
    }

    /// The storm settings come from `[store.cosmos_emulator]` and the environment.
    #[test]
    fn emulator_settings_are_read() {
        let s = emulator_settings(
            "order",
            &[
                ("NIVESH__STORE__COSMOS_EMULATOR__STORM_FILE", "/tmp/storm"),
                ("NIVESH__STORE__COSMOS_EMULATOR__STORM_RATE", "0.25"),
                ("NIVESH__STORE__COSMOS_EMULATOR__STORM_RETRY_AFTER_MS", "40"),
                ("NIVESH__STORE__COSMOS_EMULATOR__PARTITIONS", "4"),
            ],
        );
        assert_eq!(s.store.backend, StoreBackend::CosmosEmulator);
        let e = &s.store.cosmos_emulator;
        assert_eq!(e.storm_file.as_deref(), Some("/tmp/storm"));
        assert_eq!(
            (e.storm_rate, e.storm_retry_after_ms, e.partitions),
            (0.25, 40, 4)
        );
        let defaults = emulator_settings("order", &[]).store.cosmos_emulator;
        assert_eq!(defaults, crate::config::CosmosEmulatorSettings::default());
    }

    /// Without the `cosmos-emulator` feature the error names the feature and the build command.
    #[cfg(not(feature = "cosmos-emulator"))]
    #[tokio::test]
    async fn cosmos_emulator_backend_needs_the_feature() {
        let err = open_store(&emulator_settings("order", &[]))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("nivesh-runtime/cosmos-emulator")),
            "{err}"
        );
    }

    /// With it: the service's containers from catalog.tf are there (a commit lands and is read
    /// back), a container Terraform does not declare is refused as in production, and a bad
    /// storm rate is a configuration error.
    #[cfg(feature = "cosmos-emulator")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cosmos_emulator_backend_provisions_the_catalog_containers() {
        use nivesh_store::{Batch, WriteOp};
        let store = open_store(&emulator_settings("payment", &[]))
            .await
            .unwrap();
        store.ping().await.unwrap();
        let docs = store
            .commit(Batch::new("payments", "INV0001").op(WriteOp::Create {
                id: "pay-1".into(),
                body: serde_json::json!({"amount": "10000.00"}),
                ttl: None,
            }))
            .await
            .unwrap();
        assert_eq!(
            store.get("payments", "INV0001", "pay-1").await.unwrap(),
            Some(docs[0].clone())
        );
        let err = store
            .commit(Batch::new("orders", "INV0001").op(WriteOp::Create {
                id: "o-1".into(),
                body: serde_json::json!({}),
                ttl: None,
            }))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, nivesh_store::Error::Invalid(m) if m.contains("not provisioned")),
            "{err}"
        );
        let err = open_store(&emulator_settings(
            "payment",
            &[
                ("NIVESH__STORE__COSMOS_EMULATOR__STORM_FILE", "/tmp/x"),
                ("NIVESH__STORE__COSMOS_EMULATOR__STORM_RATE", "1.5"),
            ],
        ))
        .await
        .err()
        .unwrap();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("storm_rate")),
            "{err}"
        );
        let err = open_store(&emulator_settings("no-such-service", &[]))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("catalog.tf")),
            "{err}"
        );
    }

    /// Without the `cosmos` feature the error says how to get a build that has it.
    #[cfg(not(feature = "cosmos"))]
    #[tokio::test]
    async fn cosmos_backend_needs_the_feature() {
        let err = open_store(&cosmos_settings(&[])).await.err().unwrap();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("nivesh-runtime/cosmos")),
            "{err}"
        );
    }

    /// With it, the settings are checked (each missing key is named) before connecting.
    #[cfg(feature = "cosmos")]
    #[tokio::test]
    async fn cosmos_backend_names_missing_settings() {
        let err = open_store(&cosmos_settings(&[])).await.err().unwrap();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("store.cosmos.endpoint")),
            "{err}"
        );
        let err = open_store(&cosmos_settings(&[
            (
                "NIVESH__STORE__COSMOS__ENDPOINT",
                "https://acct.documents.azure.com:443/",
            ),
            ("NIVESH__STORE__COSMOS__DATABASE", "nivesh-order"),
        ]))
        .await
        .err()
        .unwrap();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("store.cosmos.key")),
            "{err}"
        );
        let err = open_store(&cosmos_settings(&[
            ("NIVESH__STORE__COSMOS__ENDPOINT", "not a url"),
            ("NIVESH__STORE__COSMOS__DATABASE", "nivesh-order"),
            ("NIVESH__STORE__COSMOS__KEY", "a2V5"),
        ]))
        .await
        .err()
        .unwrap();
        assert!(
            matches!(&err, Error::Store(nivesh_store::Error::Invalid(m)) if m.contains("endpoint")),
            "{err}"
        );
    }
}
