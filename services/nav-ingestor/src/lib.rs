//! nivesh-nav-ingestor: NAV files in, raw NAV events out.
//!
//! - [`parse`]: streaming parsers for AMFI `NAVAll.txt` (6- and 8-column layouts) and registrar
//!   CSV feeds, behind one trait; every line is a NAV row or a rejected line with its reason.
//! - [`ingest`]: a file becomes chunks, each committed with its outbox events in one batch; the
//!   SHA-256 makes re-delivery a no-op; a crash mid-file resumes after the last chunk.
//! - [`api`]: `POST /v1/nav/files` and `GET /v1/nav/files/{fileId}`.
//! - [`landing`]: polls the landing zone (local directory or Azure Blob via `object_store`).
//! - [`rejections`]: `nav.rejected` → the file report, so validation rejections show there too.
//!
//! Flow: upload → [`ingest::Ingestor::ingest`] → outbox → `nav.raw-feeds` (key: scheme code).

pub mod api;
pub mod ingest;
pub mod landing;
pub mod parse;
pub mod rejections;

use nivesh_runtime::config::Settings;
use nivesh_runtime::service::{ServiceApp, connect, run as run_service};
use serde::Deserialize;
use utoipa::OpenApi;

/// The ingestor's own settings (`[service]` section).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub landing: landing::LandingSettings,
}

/// Run the service until SIGTERM.
pub async fn run(settings: Settings<Config>) -> nivesh_runtime::Result<()> {
    let ctx = connect(&settings).await?;
    let codec = ctx.codec.clone();
    let ingestor =
        ingest::Ingestor::new(ctx.store.clone(), codec.clone(), ctx.outbox_notify.clone());
    let recorder = rejections::RejectionRecorder {
        store: ctx.store.clone(),
        codec: codec.clone(),
    };
    let mut app = ServiceApp::new();
    if !settings.service.landing.url.is_empty() {
        let zone = landing::LandingZone::open(
            &settings.service.landing,
            ingestor.clone(),
            ctx.store.clone(),
        )
        .map_err(|e| nivesh_runtime::Error::Config(e.to_string()))?;
        tracing::info!(url = %settings.service.landing.url, "polling the NAV landing zone");
        let shutdown = ctx.shutdown.clone();
        app = app.task("landing-zone", async move { zone.run(shutdown).await });
    }
    let app = app
        .routes(api::router(
            ingestor,
            nivesh_auth::Authenticator::new(&ctx.settings.auth),
        ))
        .openapi(api::ApiDoc::openapi())
        .consumer(rejections::GROUP, std::sync::Arc::new(recorder));
    run_service(ctx, app).await
}
