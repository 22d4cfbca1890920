//! [`OrderService`]: what the API, the consumer and the SIP scheduler share (store, codec, clock,
//! registry, configuration), plus the small store helpers they all use.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use nivesh_domain::time::Clock;
use nivesh_events::{AvroCodec, Event};
use nivesh_runtime::outbox::outbox_message;
use nivesh_store::{Batch, Cache, DocumentStore, ETag, OutboxMessage, WriteOp};
use nivesh_txn_rules::{SchemeClass, classify};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::Config;
use crate::idem_cache::IdemCache;
use crate::model::{LOCATOR, Locator, SCHEME_DOC, SCHEMES, Scheme};
use crate::registry::InvestorRegistry;

/// How often a write that lost an ETag race is recomputed before giving up.
pub(crate) const MAX_ATTEMPTS: usize = 8;

/// Failures below the API and consumer layers.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("store: {0}")]
    Store(#[from] nivesh_store::Error),
    #[error("event codec: {0}")]
    Codec(#[from] nivesh_events::Error),
    #[error("stored document {id} is unreadable: {reason}")]
    Corrupt { id: String, reason: String },
}

/// The order service's shared state.
pub struct OrderService {
    pub(crate) store: Arc<dyn DocumentStore>,
    pub(crate) codec: AvroCodec,
    pub(crate) outbox_notify: Arc<Notify>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) registry: InvestorRegistry,
    pub(crate) config: Config,
    /// Redis' fast path in front of placement's idempotency records (off until
    /// [`OrderService::with_idempotency_cache`]).
    pub(crate) idem_cache: IdemCache,
    closed: HashSet<String>,
}

impl OrderService {
    pub fn new(
        store: Arc<dyn DocumentStore>,
        codec: AvroCodec,
        outbox_notify: Arc<Notify>,
        clock: Arc<dyn Clock>,
        registry: InvestorRegistry,
        config: Config,
    ) -> Self {
        let closed = config
            .closed_schemes
            .iter()
            .map(|s| s.trim().to_string())
            .collect();
        OrderService {
            store,
            codec,
            outbox_notify,
            clock,
            registry,
            config,
            idem_cache: IdemCache::disabled(),
            closed,
        }
    }

    /// Answer repeats of an `Idempotency-Key` from `cache` for `ttl` (zero: off) before the
    /// store's record is read (see `idem_cache`).
    pub fn with_idempotency_cache(mut self, cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        self.idem_cache = IdemCache::new(cache, ttl);
        self
    }

    /// A document's body as `T` with its ETag, or `None`.
    pub(crate) async fn load<T: DeserializeOwned>(
        &self,
        container: &str,
        partition: &str,
        id: &str,
    ) -> Result<Option<(T, ETag)>, Error> {
        let Some(doc) = self.store.get(container, partition, id).await? else {
            return Ok(None);
        };
        let value = serde_json::from_value(doc.body).map_err(|e| Error::Corrupt {
            id: format!("{container}/{partition}/{id}"),
            reason: e.to_string(),
        })?;
        Ok(Some((value, doc.etag)))
    }

    /// The scheme as `nav.broadcast` last told us, or `None` when no NAV was seen for it.
    pub(crate) async fn scheme(&self, code: &str) -> Result<Option<Scheme>, Error> {
        Ok(self
            .load::<Scheme>(SCHEMES, code, SCHEME_DOC)
            .await?
            .map(|(s, _)| s))
    }

    /// Open for purchase: open-ended (or of unknown type) and not listed in `closed_schemes`.
    pub(crate) fn is_open(&self, scheme: &Scheme) -> bool {
        !self.closed.contains(&scheme.scheme_code)
            && scheme_type_is_open(scheme.scheme_type.as_deref())
    }

    /// The investor a locator in `container` points to.
    pub(crate) async fn locate(&self, container: &str, id: &str) -> Result<Option<String>, Error> {
        Ok(self
            .load::<Locator>(container, id, LOCATOR)
            .await?
            .map(|(l, _)| l.investor_id))
    }

    /// Upserts the locator `container/{id}/locator → investor` (its own single-doc batch).
    pub(crate) async fn write_locator(
        &self,
        container: &str,
        id: &str,
        investor: &str,
    ) -> Result<(), Error> {
        let batch = Batch::new(container, id).op(WriteOp::Upsert {
            id: LOCATOR.into(),
            body: to_value(&Locator {
                investor_id: investor.to_string(),
            }),
            ttl: None,
        });
        self.store.commit(batch).await?;
        Ok(())
    }

    /// The outbox record of `event` on `topic`, keyed by the investor id.
    pub(crate) async fn outbox<E: Event>(
        &self,
        topic: &str,
        investor: &str,
        event: &E,
    ) -> Result<OutboxMessage, Error> {
        Ok(outbox_message(&self.codec, topic, investor, event).await?)
    }
}

/// `Open Ended Schemes` (any case) or unknown: open. `Close Ended`, `Interval Fund`: closed.
pub(crate) fn scheme_type_is_open(scheme_type: Option<&str>) -> bool {
    match scheme_type.map(str::trim).filter(|t| !t.is_empty()) {
        None => true,
        Some(t) => {
            let t = t.to_ascii_lowercase();
            t.contains("open ended") || t.contains("open-ended")
        }
    }
}

/// The cut-off family of a scheme from its AMFI category.
pub(crate) fn class_of(category: Option<&str>) -> SchemeClass {
    category.map(classify).unwrap_or(SchemeClass::Other)
}

/// Serialize a document body; our types always serialize.
pub(crate) fn to_value<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("order service documents serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Open-ended or unknown scheme types are open; close-ended and interval funds are not.
    #[test]
    fn scheme_types() {
        assert!(scheme_type_is_open(None));
        assert!(scheme_type_is_open(Some("")));
        assert!(scheme_type_is_open(Some("Open Ended Schemes")));
        assert!(scheme_type_is_open(Some("open-ended")));
        assert!(!scheme_type_is_open(Some("Close Ended Schemes")));
        assert!(!scheme_type_is_open(Some("Interval Fund Schemes")));
    }

    /// Categories pick the cut-off family; no category is the strict "other" family.
    #[test]
    fn classes() {
        assert_eq!(
            class_of(Some("Debt Scheme - Liquid Fund")),
            SchemeClass::Liquid
        );
        assert_eq!(class_of(None), SchemeClass::Other);
    }
}
