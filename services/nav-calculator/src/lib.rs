//! nivesh-nav-calculator: validates raw NAVs and publishes them as validated or rejected.
//!
//! - [`validate`]: the rules (positive, not in the future in IST, staleness, duplicate vs
//!   correction, day-over-day anomaly thresholds per category) as one pure function.
//! - [`handler`]: the `nav.raw-feeds` consumer: state, inbox marker and outgoing event in one batch.
//!
//! Flow: `nav.raw-feeds` → [`handler::Calculator`] → outbox → `nav.validated` | `nav.rejected`.
//! Stateless across instances: the previous NAV comes from the store, so it scales by partitions.

pub mod handler;
pub mod validate;

use std::sync::Arc;

use nivesh_runtime::config::Settings;
use nivesh_runtime::service::{ServiceApp, connect, run as run_service};
use serde::Deserialize;

/// `[service]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub rules: validate::Rules,
}

/// Run the service until SIGTERM.
pub async fn run(settings: Settings<Config>) -> nivesh_runtime::Result<()> {
    let ctx = connect(&settings).await?;
    let calculator = handler::Calculator {
        store: ctx.store.clone(),
        codec: ctx.codec.clone(),
        outbox_notify: ctx.outbox_notify.clone(),
        rules: settings.service.rules.clone(),
        clock: settings.clock.clock(),
    };
    let app = ServiceApp::new().consumer(handler::GROUP, Arc::new(calculator));
    run_service(ctx, app).await
}
