//! Write-behind for the read-side projections of a published NAV: the scheme directory (search)
//! and the Redis copy of the latest NAV.
//!
//! Both are derived from the store, which already holds the NAV when they are queued, so they
//! need not be in the NAV's transaction. Batching them is what keeps the publisher at one store
//! commit per NAV: the flusher writes everything queued as one directory batch and one pipelined
//! Redis write. A crash loses at most the queue; the scheme's next NAV repairs both, and reads
//! fall back to the store on a cache miss in the meantime.

use std::sync::Arc;
use std::time::Duration;

use nivesh_store::{Cache, DocumentStore};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::directory::SchemeDirectory;
use crate::handler::cache_key;
use crate::model::SchemeNav;

/// Queue side, held by the handler.
#[derive(Clone)]
pub struct Projections {
    tx: mpsc::Sender<SchemeNav>,
}

/// Flusher side, run as a service task.
pub struct ProjectionFlusher {
    rx: mpsc::Receiver<SchemeNav>,
    store: Arc<dyn DocumentStore>,
    cache: Arc<dyn Cache>,
    directory: SchemeDirectory,
}

const MAX_BATCH: usize = 2000;

pub fn projections(
    store: Arc<dyn DocumentStore>,
    cache: Arc<dyn Cache>,
    directory: SchemeDirectory,
) -> (Projections, ProjectionFlusher) {
    // Bounded: a stalled flusher slows the handler (backpressure) instead of growing memory.
    let (tx, rx) = mpsc::channel(10_000);
    (
        Projections { tx },
        ProjectionFlusher {
            rx,
            store,
            cache,
            directory,
        },
    )
}

impl Projections {
    pub async fn publish(&self, nav: SchemeNav) {
        // Only fails once the flusher has stopped, i.e. during shutdown: nothing to do then.
        let _ = self.tx.send(nav).await;
    }
}

impl ProjectionFlusher {
    pub async fn run(
        mut self,
        shutdown: CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        let mut buf = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                n = self.rx.recv_many(&mut buf, MAX_BATCH) => {
                    if n == 0 {
                        return Ok(());
                    }
                    self.flush(&mut buf).await;
                }
                _ = shutdown.cancelled() => {
                    while let Ok(nav) = self.rx.try_recv() {
                        buf.push(nav);
                    }
                    self.flush(&mut buf).await;
                    return Ok(());
                }
            }
        }
    }

    async fn flush(&self, buf: &mut Vec<SchemeNav>) {
        if buf.is_empty() {
            return;
        }
        let mut attempt = 0;
        while let Err(e) = self.directory.upsert_many(&self.store, buf).await {
            attempt += 1;
            tracing::warn!(error = %e, attempt, "scheme directory write failed; retrying");
            if attempt >= 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
        }
        let entries: Vec<(String, Vec<u8>)> = buf
            .iter()
            .map(|n| {
                (
                    cache_key(&n.scheme_code),
                    serde_json::to_vec(n).expect("serializable"),
                )
            })
            .collect();
        if let Err(e) = self.cache.set_many(&entries, None).await {
            metrics::counter!("nivesh_cache_errors_total", "op" => "set_many").increment(1);
            tracing::debug!(error = %e, "cache refresh skipped");
        }
        buf.clear();
    }
}
