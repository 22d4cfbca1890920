//! The sweeper: every `sweep_interval_ms` it looks at every waiting leg and
//! (a) executes those whose NAV is now in the table (a wakeup the NAV handler missed, e.g. a
//! crash between storing the NAV and releasing), and (b) fails those that have waited longer
//! than `nav_wait_limit_secs` on the business clock with `NAV_NOT_AVAILABLE`.
//!
//! It finds waiting legs by tailing the change feed of the wait index (all schemes) into memory
//! from the start of the feed, so a restarted process rebuilds its view; an entry leaves memory
//! once the leg it points at is no longer pending. Every replica may run a sweeper: the engine's
//! conflicts make two sweepers acting on one leg harmless.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use nivesh_bus::HandlerError;
use nivesh_store::Continuation;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, retryable};
use crate::model::{WAITS, WaitEntry};

const FEED_PAGE: usize = 500;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SweepReport {
    pub(crate) released: usize,
    pub(crate) failed: usize,
    pub(crate) waiting: usize,
}

pub(crate) struct Sweeper {
    engine: Arc<Engine>,
    interval: Duration,
    feed: Continuation,
    /// (scheme, wait id) → entry.
    entries: BTreeMap<(String, String), WaitEntry>,
}

impl Sweeper {
    pub(crate) fn new(engine: Arc<Engine>, interval: Duration) -> Self {
        Sweeper {
            engine,
            interval,
            feed: Continuation::default(),
            entries: BTreeMap::new(),
        }
    }

    /// Sweeps every interval until shutdown. A failed sweep is logged and retried next time:
    /// the sweeper is a safety net, and a store hiccup must not stop the service.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) -> Result<(), String> {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.interval) => {}
            }
            match self.sweep_once().await {
                Ok(r) if r.released + r.failed > 0 => {
                    tracing::info!(
                        released = r.released,
                        failed = r.failed,
                        waiting = r.waiting,
                        "sweep"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweep failed; retrying next interval"),
            }
        }
    }

    async fn tail_feed(&mut self) -> Result<(), HandlerError> {
        loop {
            let (docs, next) = self
                .engine
                .store
                .change_feed(WAITS, &self.feed, FEED_PAGE)
                .await
                .map_err(retryable)?;
            let n = docs.len();
            for d in docs {
                if let Ok(e) = serde_json::from_value::<WaitEntry>(d.body) {
                    self.entries.insert((d.partition_key, d.id), e);
                }
            }
            self.feed = next;
            if n < FEED_PAGE {
                return Ok(());
            }
        }
    }

    pub(crate) async fn sweep_once(&mut self) -> Result<SweepReport, HandlerError> {
        self.tail_feed().await?;
        let engine = &self.engine;
        let now = engine.clock.now();
        let mut report = SweepReport::default();
        let mut navs: HashMap<(String, NaiveDate), bool> = HashMap::new();
        let keys: Vec<(String, String)> = self.entries.keys().cloned().collect();
        for key in keys {
            let Some(e) = self.entries.get(&key).cloned() else {
                continue;
            };
            let outcome: Result<bool, HandlerError> = async {
                let Some((p, _)) = engine.pending(&e.investor_id, &e.transaction_id).await? else {
                    engine
                        .delete_wait(&e.scheme_code, e.nav_date, &e.transaction_id)
                        .await;
                    return Ok(true);
                };
                let i = &p.instruction;
                let nav_key = (i.scheme_code.clone(), i.nav_date);
                let has_nav = match navs.get(&nav_key) {
                    Some(b) => *b,
                    None => {
                        let b = engine.nav(&i.scheme_code, i.nav_date).await?.is_some();
                        navs.insert(nav_key, b);
                        b
                    }
                };
                if has_nav {
                    engine.ensure_waiting(p).await?;
                    report.released += 1;
                    Ok(true)
                } else if now.signed_duration_since(p.waiting_since) >= engine.rules.nav_wait_limit
                {
                    if engine
                        .fail_waiting(&e.investor_id, &e.transaction_id)
                        .await?
                    {
                        report.failed += 1;
                    }
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
            .await;
            match outcome {
                Ok(true) => {
                    self.entries.remove(&key);
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(error = %err, txn = %e.transaction_id, "sweeper could not settle a waiting allotment")
                }
            }
        }
        report.waiting = self.entries.len();
        metrics::gauge!("nivesh_allotment_waiting").set(report.waiting as f64);
        Ok(report)
    }
}
