//! The landing zone: registrars and AMFI drop files into object storage; the ingestor polls it.
//!
//! One code path for every backend through `object_store`: a local directory by default
//! (`file:///…` or a plain path), Azure Blob in production (`az://container/prefix`, built with
//! the `azure` feature). The first path segment under the prefix names the source
//! (`amfi/NAVAll.txt`, `cams/2025-02-25.csv`, `kfintech/…`). Each object is ingested once per
//! version: a marker keyed by path and ETag/last-modified is committed after a successful ingest,
//! and the ingest itself is idempotent by content hash, so a crash between the two only costs a
//! harmless duplicate report.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use nivesh_store::{Batch, DocumentStore, WriteOp};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::ingest::{IngestOutcome, Ingestor};
use crate::parse::NavSource;

const LANDING: &str = "landing";
const PARTITION: &str = "objects";

/// `[service.landing]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LandingSettings {
    /// Where files land. Empty disables polling.
    pub url: String,
    pub poll_interval_ms: u64,
}

impl Default for LandingSettings {
    fn default() -> Self {
        LandingSettings {
            url: String::new(),
            poll_interval_ms: 1000,
        }
    }
}

pub struct LandingZone {
    objects: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    ingestor: Ingestor,
    store: Arc<dyn DocumentStore>,
    interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LandingError {
    #[error("landing zone url {url}: {reason}")]
    Config { url: String, reason: String },
    #[error("landing zone: {0}")]
    ObjectStore(#[from] object_store::Error),
}

impl LandingZone {
    /// Open the landing zone at `settings.url` (a local path is created if missing).
    pub fn open(
        settings: &LandingSettings,
        ingestor: Ingestor,
        store: Arc<dyn DocumentStore>,
    ) -> Result<Self, LandingError> {
        let config = |reason: String| LandingError::Config {
            url: settings.url.clone(),
            reason,
        };
        let url = if settings.url.contains("://") {
            url_parse(&settings.url).map_err(config)?
        } else {
            let dir = std::path::Path::new(&settings.url);
            std::fs::create_dir_all(dir).map_err(|e| config(e.to_string()))?;
            let abs = std::fs::canonicalize(dir).map_err(|e| config(e.to_string()))?;
            url_parse(&format!("file://{}", abs.display())).map_err(config)?
        };
        let (objects, prefix) = object_store::parse_url(&url)?;
        Ok(LandingZone {
            objects: Arc::from(objects),
            prefix,
            ingestor,
            store,
            interval: Duration::from_millis(settings.poll_interval_ms.max(50)),
        })
    }

    /// Poll until shutdown.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), LandingError> {
        loop {
            if let Err(e) = self.poll_once().await {
                // A listing failure (storage briefly away) is retried next round, not fatal.
                tracing::warn!(error = %e, "landing zone poll failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// One pass: ingest every object not ingested before (in this version). Returns how many.
    pub async fn poll_once(&self) -> Result<usize, LandingError> {
        let listed: Vec<object_store::ObjectMeta> =
            self.objects.list(Some(&self.prefix)).try_collect().await?;
        let mut ingested = 0;
        for meta in listed {
            let relative: Vec<String> = meta
                .location
                .prefix_match(&self.prefix)
                .map(|p| p.map(|s| s.as_ref().to_string()).collect())
                .unwrap_or_default();
            let Some(source) = relative
                .first()
                .and_then(|dir| dir.parse::<NavSource>().ok())
                .filter(|_| relative.len() >= 2)
            else {
                continue;
            };
            let version = meta
                .e_tag
                .clone()
                .unwrap_or_else(|| meta.last_modified.timestamp_millis().to_string());
            let marker_id = format!("{}@{}", meta.location, version);
            if self
                .store
                .get(LANDING, PARTITION, &marker_id)
                .await
                .map_err(store_err)?
                .is_some()
            {
                continue;
            }
            let bytes = self.objects.get(&meta.location).await?.bytes().await?;
            let outcome = self.ingestor.ingest(source, bytes).await;
            let (file_id, note) = match &outcome {
                Ok(IngestOutcome::Accepted(r)) => (r.file_id.clone(), "accepted"),
                Ok(IngestOutcome::Duplicate(r)) => (r.file_id.clone(), "duplicate"),
                Err(e) => {
                    tracing::warn!(object = %meta.location, error = %e, "landing file not ingested");
                    (String::new(), "failed")
                }
            };
            // An unreadable file is marked too (its failure is in the log and, when it got that far,
            // in its file report): re-reading it every second would not make it readable.
            let body = serde_json::json!({ "path": meta.location.to_string(), "version": version, "fileId": file_id, "outcome": note });
            self.store
                .commit(Batch::new(LANDING, PARTITION).op(WriteOp::Upsert {
                    id: marker_id,
                    body,
                    ttl: None,
                }))
                .await
                .map_err(store_err)?;
            tracing::info!(object = %meta.location, %source, file_id, outcome = note, "landing file processed");
            ingested += 1;
        }
        Ok(ingested)
    }
}

fn url_parse(s: &str) -> Result<url::Url, String> {
    url::Url::parse(s).map_err(|e| e.to_string())
}

fn store_err(e: nivesh_store::Error) -> LandingError {
    LandingError::ObjectStore(object_store::Error::Generic {
        store: "landing markers",
        source: Box::new(e),
    })
}
