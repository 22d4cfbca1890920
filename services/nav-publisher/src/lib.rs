//! nivesh-nav-publisher: makes validated NAVs readable and broadcasts them.
//!
//! - [`handler`]: the `nav.validated` consumer: history + latest + broadcast event in one batch,
//!   then the latest NAV into Redis.
//! - [`api`]: public NAV reads with store fallback, ETag and Cache-Control; search.
//! - [`directory`]: the in-memory scheme search index and its store-backed directory.
//! - [`projection`]: write-behind of the search directory and the Redis copy, batched.
//! - [`stream`]: `GET /v1/nav/stream`, Server-Sent Events from the change feed, resumable.
//! - [`model`]: the stored/served NAV document.
//!
//! Flow: `nav.validated` → [`handler::Publisher`] → store + outbox → `nav.broadcast`, Redis.

pub mod api;
pub mod directory;
pub mod handler;
pub mod model;
pub mod projection;
pub mod stream;

use std::sync::Arc;

use nivesh_runtime::config::Settings;
use nivesh_runtime::service::{ServiceApp, connect, run as run_service};
use serde::Deserialize;
use utoipa::OpenApi;

/// `[service]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Config {}

/// Run the service until SIGTERM.
pub async fn run(settings: Settings<Config>) -> nivesh_runtime::Result<()> {
    let ctx = connect(&settings).await?;
    let directory = directory::SchemeDirectory::load(&ctx.store).await?;
    let head = stream::FeedHead::default();
    head.initialise(&ctx.store).await?;
    tracing::info!(
        schemes = directory.len(),
        feed_head = head.get(),
        "NAV directory loaded"
    );
    let (projections, flusher) =
        projection::projections(ctx.store.clone(), ctx.cache.clone(), directory.clone());
    let publisher = handler::Publisher {
        projections,
        head: head.clone(),
        store: ctx.store.clone(),
        codec: ctx.codec.clone(),
        outbox_notify: ctx.outbox_notify.clone(),
    };
    let reads = api::NavReads {
        store: ctx.store.clone(),
        cache: nivesh_store::CacheAside::new(ctx.cache.clone(), "nav_latest", api::LATEST_FILL_TTL),
        directory,
    };
    let streams = stream::StreamState {
        store: ctx.store.clone(),
        head,
    };
    let shutdown = ctx.shutdown.clone();
    let app = ServiceApp::new()
        .task("projections", async move { flusher.run(shutdown).await })
        .routes(api::router(reads, streams))
        .openapi(api::ApiDoc::openapi())
        .consumer(handler::GROUP, Arc::new(publisher));
    run_service(ctx, app).await
}
