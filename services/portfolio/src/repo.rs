//! Reading holdings and NAVs: the store is the system of record, Redis a lossy cache in front.
//!
//! - Readers go through [`nivesh_store::CacheAside`]: Redis first; on a miss or a Redis error
//!   one load per key per process (concurrent misses await it: a popular investor's expired
//!   entry costs the store one read, not one per request), then `SET NX` with a TTL jittered
//!   ± 10 % (never overwriting what a writer put there; keys filled together do not expire
//!   together).
//! - Writers commit to the store first, then overwrite the cached value with a fresh read of the
//!   store (`SET`), or delete it when that fails. A reader that loaded an older state just before
//!   a commit cannot overwrite the writer's fresh copy (its `SET NX` finds the key present); the
//!   TTLs bound whatever race is left (e.g. a refresh lost in a Redis blip).
//! - A Redis outage only costs latency: every Redis error is counted
//!   (`nivesh_cache_errors_total{op}`) and answered from the store.
//! - When both the refresh and the delete fail (Redis down), the key is remembered as pending
//!   invalidation: reads of it skip Redis, and [`Repo::run_invalidations`] deletes it as soon as
//!   Redis answers again, so a copy that went stale during the outage is not served after it.
//!   (Process-local: another replica may serve such a copy until its TTL.)

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nivesh_store::{Cache, CacheAside, DocumentStore, IdRange};

use crate::model::{
    HOLDING_RANGE, Holding, HoldingsSnapshot, LATEST_NAV_ID, PORTFOLIO, SCHEME_NAV, SchemeNav,
    TXN_RANGE_END, TxnRecord, VERSION_ID, VersionDoc, holdings_cache_key, nav_cache_key,
    txn_record_id,
};

/// Store or decoding failure while reading.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("store: {0}")]
    Store(#[from] nivesh_store::Error),
    #[error("stored document {id} is malformed: {reason}")]
    Malformed { id: String, reason: String },
    /// A load another reader ran for the same key (single flight), failed for both.
    #[error(transparent)]
    Shared(Arc<RepoError>),
}

/// The error of a single-flight load: our own when nobody else waited for it.
fn unshare(e: Arc<RepoError>) -> RepoError {
    Arc::try_unwrap(e).unwrap_or_else(RepoError::Shared)
}

fn decode<T: serde::de::DeserializeOwned>(doc: &nivesh_store::StoredDoc) -> Result<T, RepoError> {
    serde_json::from_value(doc.body.clone()).map_err(|e| RepoError::Malformed {
        id: doc.id.clone(),
        reason: e.to_string(),
    })
}

/// Where a read was answered from (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Store,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cache => "cache",
            Source::Store => "store",
        }
    }
}

/// How often pending invalidations are retried.
pub const INVALIDATION_RETRY: Duration = Duration::from_secs(1);

/// Cache keys whose delete failed: to delete when Redis is back, and not to read until then.
#[derive(Clone, Default)]
pub struct PendingInvalidations(Arc<Mutex<BTreeSet<String>>>);

impl PendingInvalidations {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn add(&self, key: &str) {
        self.lock().insert(key.to_string());
    }
    fn remove(&self, key: &str) {
        self.lock().remove(key);
    }
    pub fn contains(&self, key: &str) -> bool {
        self.lock().contains(key)
    }
    pub fn len(&self) -> usize {
        self.lock().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn snapshot(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }
}

/// The service's data access: store + cache.
#[derive(Clone)]
pub struct Repo {
    pub store: Arc<dyn DocumentStore>,
    pub cache: Arc<dyn Cache>,
    /// Cache-aside reads of holdings (`holdings_ttl` ± 10 %).
    pub holdings_reads: CacheAside,
    /// Cache-aside reads of latest NAVs (`nav_ttl` ± 10 %).
    pub nav_reads: CacheAside,
    pub pending: PendingInvalidations,
}

fn cache_error(op: &'static str, e: &nivesh_store::Error) {
    metrics::counter!("nivesh_cache_errors_total", "op" => op).increment(1);
    tracing::debug!(error = %e, op, "cache error; answered from the store");
}

impl Repo {
    /// Store and cache, cached holdings living `holdings_ttl` and NAVs `nav_ttl` (each ± 10 %).
    pub fn new(
        store: Arc<dyn DocumentStore>,
        cache: Arc<dyn Cache>,
        holdings_ttl: Duration,
        nav_ttl: Duration,
    ) -> Self {
        Repo {
            store,
            holdings_reads: CacheAside::new(cache.clone(), "portfolio_holdings", holdings_ttl),
            nav_reads: CacheAside::new(cache.clone(), "portfolio_nav", nav_ttl),
            cache,
            pending: PendingInvalidations::default(),
        }
    }

    /// An investor's holdings and version from the store. The version is read first, so a
    /// commit landing between the two reads can only make the version look older than the
    /// holdings (the next read corrects it), never newer; each holding carries its own version
    /// and the larger wins.
    pub async fn holdings_from_store(&self, investor: &str) -> Result<HoldingsSnapshot, RepoError> {
        let version = match self.store.get(PORTFOLIO, investor, VERSION_ID).await? {
            Some(doc) => decode::<VersionDoc>(&doc)?.version,
            None => 0,
        };
        let docs = self
            .store
            .query_partition(
                PORTFOLIO,
                investor,
                IdRange {
                    from: Some(HOLDING_RANGE.0.into()),
                    to: Some(HOLDING_RANGE.1.into()),
                    limit: None,
                    descending: false,
                },
            )
            .await?;
        let holdings = docs
            .iter()
            .map(decode::<Holding>)
            .collect::<Result<Vec<_>, _>>()?;
        let version = holdings.iter().map(|h| h.version).fold(version, i64::max);
        Ok(HoldingsSnapshot { version, holdings })
    }

    /// Holdings, cache first.
    pub async fn holdings(&self, investor: &str) -> Result<(HoldingsSnapshot, Source), RepoError> {
        let key = holdings_cache_key(investor);
        if self.pending.contains(&key) {
            return Ok((self.holdings_from_store(investor).await?, Source::Store));
        }
        let (repo, owner) = (self.clone(), investor.to_string());
        let fetched = self
            .holdings_reads
            .get_or_load(&key, move || async move {
                repo.holdings_from_store(&owner).await.map(Some)
            })
            .await
            .map_err(unshare)?;
        let source = if fetched.origin.is_cache() {
            Source::Cache
        } else {
            Source::Store
        };
        match fetched.value {
            Some(snapshot) => Ok((snapshot, source)),
            // The loader always finds a snapshot (an investor without holdings has an empty one).
            None => Ok((self.holdings_from_store(investor).await?, Source::Store)),
        }
    }

    /// After a commit: replace the cached holdings with the store's, or drop them.
    pub async fn refresh_holdings(&self, investor: &str) {
        let key = holdings_cache_key(investor);
        let fresh = match self.holdings_from_store(investor).await {
            Ok(s) => serde_json::to_vec(&s).ok(),
            Err(e) => {
                tracing::warn!(error = %e, investor, "cannot reload holdings for the cache");
                None
            }
        };
        let set = match fresh {
            Some(bytes) => {
                let ttl = self.holdings_reads.jittered_ttl();
                self.cache.set(&key, &bytes, Some(ttl)).await
            }
            None => Err(nivesh_store::Error::Invalid("no fresh holdings".into())),
        };
        self.settle(&key, set).await;
    }

    /// After a refresh attempt: done, or delete the key, or remember to delete it later.
    async fn settle(&self, key: &str, set: nivesh_store::Result<()>) {
        match set {
            Ok(()) => self.pending.remove(key),
            Err(e) => {
                cache_error("set", &e);
                match self.cache.delete(key).await {
                    Ok(()) => self.pending.remove(key),
                    Err(e) => {
                        cache_error("delete", &e);
                        self.pending.add(key);
                        metrics::gauge!("nivesh_portfolio_pending_invalidations")
                            .set(self.pending.len() as f64);
                    }
                }
            }
        }
    }

    /// Delete the pending keys whenever Redis answers, until `shutdown`.
    pub async fn run_invalidations(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(INVALIDATION_RETRY) => {}
            }
            self.retry_invalidations().await;
        }
    }

    /// One pass over the pending keys.
    pub async fn retry_invalidations(&self) {
        for key in self.pending.snapshot() {
            match self.cache.delete(&key).await {
                Ok(()) => self.pending.remove(&key),
                Err(_) => break,
            }
        }
        metrics::gauge!("nivesh_portfolio_pending_invalidations").set(self.pending.len() as f64);
    }

    /// The latest NAV of one scheme from the store.
    async fn nav_from_store(&self, code: &str) -> Result<Option<SchemeNav>, RepoError> {
        match self.store.get(SCHEME_NAV, code, LATEST_NAV_ID).await? {
            Some(doc) => Ok(Some(decode(&doc)?)),
            None => Ok(None),
        }
    }

    /// Latest NAV of each scheme in `codes` that has one: Redis in one round trip (`MGET`), the
    /// misses through the NAV single flight (a scheme many portfolios hold is loaded once
    /// however many valuations miss it at the same moment). When the `MGET` itself failed Redis
    /// is away: the misses are read from the store without trying to fill Redis (one timeout
    /// per valuation, not one per scheme).
    pub async fn navs(&self, codes: &[String]) -> Result<HashMap<String, SchemeNav>, RepoError> {
        let mut out = HashMap::with_capacity(codes.len());
        if codes.is_empty() {
            return Ok(out);
        }
        let keys: Vec<String> = codes.iter().map(|c| nav_cache_key(c)).collect();
        let (cached, redis_up) = match self.cache.get_many(&keys).await {
            Ok(v) if v.len() == codes.len() => (v, true),
            Ok(_) => (vec![None; codes.len()], true),
            Err(e) => {
                cache_error("get_many", &e);
                (vec![None; codes.len()], false)
            }
        };
        for ((code, key), hit) in codes.iter().zip(&keys).zip(cached) {
            let hit = hit.filter(|_| !self.pending.contains(key));
            if let Some(nav) = hit.and_then(|b| serde_json::from_slice::<SchemeNav>(&b).ok()) {
                metrics::counter!("nivesh_portfolio_nav_reads_total", "source" => "cache")
                    .increment(1);
                out.insert(code.clone(), nav);
                continue;
            }
            metrics::counter!("nivesh_portfolio_nav_reads_total", "source" => "store").increment(1);
            let nav = if redis_up {
                let (repo, scheme) = (self.clone(), code.clone());
                self.nav_reads
                    .load(
                        key,
                        move || async move { repo.nav_from_store(&scheme).await },
                    )
                    .await
                    .map_err(unshare)?
                    .value
            } else {
                self.nav_from_store(code).await?
            };
            if let Some(nav) = nav {
                out.insert(code.clone(), nav);
            }
        }
        Ok(out)
    }

    /// After a NAV commit: put the new latest NAV in Redis, or drop the old one.
    pub async fn refresh_nav(&self, nav: &SchemeNav) {
        let key = nav_cache_key(&nav.scheme_code);
        let set = match serde_json::to_vec(nav) {
            Ok(bytes) => {
                let ttl = self.nav_reads.jittered_ttl();
                self.cache.set(&key, &bytes, Some(ttl)).await
            }
            Err(e) => Err(nivesh_store::Error::Invalid(e.to_string())),
        };
        self.settle(&key, set).await;
    }

    /// Transaction records with version > `after`, oldest first, at most `limit`.
    pub async fn txn_page(
        &self,
        investor: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<TxnRecord>, RepoError> {
        let docs = self
            .store
            .query_partition(
                PORTFOLIO,
                investor,
                IdRange {
                    from: Some(txn_record_id(after.saturating_add(1))),
                    to: Some(TXN_RANGE_END.into()),
                    limit: Some(limit),
                    descending: false,
                },
            )
            .await?;
        docs.iter().map(decode).collect()
    }

    /// Every transaction record of the investor, in pages.
    pub async fn all_txns(&self, investor: &str) -> Result<Vec<TxnRecord>, RepoError> {
        const PAGE: usize = 500;
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self.txn_page(investor, after, PAGE).await?;
            let full = page.len() == PAGE;
            if let Some(last) = page.last() {
                after = last.version;
            }
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }
}
