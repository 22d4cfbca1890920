//! The consumer's rules on the real embedded store and the real Redis, delivering records to the
//! handler directly (no broker), so the order of deliveries is exact: NAV date ordering, the
//! same transaction under a new event id, a redemption before its purchase, and the cache
//! refresh after each write.

mod common;

use std::sync::Arc;

use common::*;
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_events::{AvroCodec, Event, EventMeta, TransactionCompleted};
use nivesh_portfolio::handler::{NAV_TOPIC, PortfolioHandler, TRANSACTION_TOPIC};
use nivesh_portfolio::model::{
    LATEST_NAV_ID, PORTFOLIO, SCHEME_NAV, holding_id, holdings_cache_key, nav_cache_key,
};
use nivesh_portfolio::repo::{Repo, Source};
use nivesh_store::{Cache, DocumentStore, EmbeddedStore, IdRange};

const INV: &str = "INV0002";
const SCHEME: &str = "120503";

struct Fixture {
    handler: PortfolioHandler,
    repo: Repo,
    store: Arc<EmbeddedStore>,
    cache: Arc<dyn Cache>,
}

async fn fixture() -> Fixture {
    let store = Arc::new(EmbeddedStore::in_memory().unwrap());
    let (cache, _) = redis_cache().await;
    let cache: Arc<dyn Cache> = cache;
    let repo = Repo::new(
        store.clone(),
        cache.clone(),
        std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(60),
    );
    Fixture {
        handler: PortfolioHandler {
            store: store.clone(),
            repo: repo.clone(),
            codec: AvroCodec::single_object(),
            outbox_notify: Arc::new(tokio::sync::Notify::new()),
        },
        repo,
        store,
        cache,
    }
}

async fn message<E: Event>(topic: &str, key: &str, event: &E) -> InboundMessage {
    InboundMessage {
        topic: topic.into(),
        partition: 0,
        offset: 0,
        key: Some(key.as_bytes().to_vec()),
        payload: AvroCodec::single_object().encode(event).await.unwrap(),
        headers: vec![],
        timestamp_ms: None,
        attempt: 1,
    }
}

impl Fixture {
    async fn deliver<E: Event>(
        &self,
        topic: &str,
        key: &str,
        event: &E,
    ) -> Result<(), HandlerError> {
        self.handler.handle(&message(topic, key, event).await).await
    }

    async fn stored_nav(&self) -> serde_json::Value {
        self.store
            .get(SCHEME_NAV, SCHEME, LATEST_NAV_ID)
            .await
            .unwrap()
            .expect("a latest NAV")
            .body
    }

    async fn cached(&self, key: &str) -> Option<serde_json::Value> {
        self.cache
            .get(key)
            .await
            .unwrap()
            .map(|b| serde_json::from_slice(&b).unwrap())
    }
}

/// A newer date replaces the latest NAV, a correction of the same date replaces it, an older
/// date never does; the store and Redis agree after each.
#[tokio::test]
async fn nav_dates_never_go_backwards() {
    let f = fixture().await;
    let deliver = |nav: &str, on: &str, kind: &str| {
        let e = nav_published(SCHEME, nav, on, kind);
        let f = &f;
        async move { f.deliver(NAV_TOPIC, SCHEME, &e).await.unwrap() }
    };
    deliver("100.0000", "2025-02-24", "NEW").await;
    deliver("101.0000", "2025-02-25", "NEW").await;
    assert_eq!(f.stored_nav().await["nav"], "101.0000");
    deliver("99.0000", "2025-02-21", "NEW").await;
    assert_eq!(
        f.stored_nav().await["nav"],
        "101.0000",
        "older date ignored"
    );
    assert_eq!(f.stored_nav().await["navDate"], "2025-02-25");
    deliver("101.5000", "2025-02-25", "CORRECTION").await;
    assert_eq!(
        f.stored_nav().await["nav"],
        "101.5000",
        "correction replaces"
    );
    let cached = f.cached(&nav_cache_key(SCHEME)).await.expect("NAV cached");
    assert_eq!(cached["nav"], "101.5000");

    // The same NAV event redelivered after a correction does not bring the old value back.
    let e = nav_published(SCHEME, "102.0000", "2025-02-26", "NEW");
    f.deliver(NAV_TOPIC, SCHEME, &e).await.unwrap();
    let mut fix = nav_published(SCHEME, "102.2000", "2025-02-26", "CORRECTION");
    fix.meta = EventMeta::new::<nivesh_events::NavPublished>("nav-publisher", None);
    f.deliver(NAV_TOPIC, SCHEME, &fix).await.unwrap();
    f.deliver(NAV_TOPIC, SCHEME, &e).await.unwrap();
    assert_eq!(f.stored_nav().await["nav"], "102.2000");
}

/// The same transaction re-sent under a new event id (an upstream republish) is applied once,
/// and so is the same event delivered again.
#[tokio::test]
async fn one_transaction_applies_once_whatever_the_event_id() {
    let f = fixture().await;
    let p = purchase(
        INV,
        "txn-1",
        SCHEME,
        "2024-01-01",
        "10",
        "100.000",
        "1000.00",
    );
    f.deliver(TRANSACTION_TOPIC, INV, &p).await.unwrap();
    f.deliver(TRANSACTION_TOPIC, INV, &p).await.unwrap();
    let mut again = p.clone();
    again.meta = EventMeta::new::<TransactionCompleted>("allotment", None);
    assert_ne!(again.meta.event_id, p.meta.event_id);
    f.deliver(TRANSACTION_TOPIC, INV, &again).await.unwrap();
    let snap = f.repo.holdings_from_store(INV).await.unwrap();
    assert_eq!(snap.version, 1);
    assert_eq!(snap.holdings[0].units, d("100.000"));
    assert_eq!(f.repo.all_txns(INV).await.unwrap().len(), 1);
    // A redemption redelivered after it emptied its lot is a duplicate, not an overdraw.
    let r = redemption(
        INV,
        "txn-2",
        SCHEME,
        "2024-02-01",
        "11",
        "1100.00",
        &[("txn-1", "100")],
    );
    f.deliver(TRANSACTION_TOPIC, INV, &r).await.unwrap();
    f.deliver(TRANSACTION_TOPIC, INV, &r).await.unwrap();
    let snap = f.repo.holdings_from_store(INV).await.unwrap();
    assert_eq!(snap.version, 2);
    assert!(snap.holdings[0].units.is_zero());
    // One outbox record per applied transaction.
    let pending = f.store.outbox_pending(100).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert!(
        pending
            .iter()
            .all(|p| p.message.topic == "portfolio.updated")
    );
}

/// A redemption whose lot has not arrived yet (its purchase is in a retry tier) is retryable,
/// not dead-lettered, and applies once the purchase is in; an overdraw of a lot is permanent.
#[tokio::test]
async fn redemption_before_its_purchase_is_retried() {
    let f = fixture().await;
    let r = redemption(
        INV,
        "txn-R",
        SCHEME,
        "2024-03-01",
        "12",
        "600.00",
        &[("txn-P", "50")],
    );
    let err = f.deliver(TRANSACTION_TOPIC, INV, &r).await.unwrap_err();
    assert!(matches!(err, HandlerError::Retryable(_)), "{err:?}");
    assert_eq!(f.repo.holdings_from_store(INV).await.unwrap().version, 0);
    let p = purchase(
        INV,
        "txn-P",
        SCHEME,
        "2024-01-01",
        "10",
        "100.000",
        "1000.00",
    );
    f.deliver(TRANSACTION_TOPIC, INV, &p).await.unwrap();
    f.deliver(TRANSACTION_TOPIC, INV, &r).await.unwrap();
    let snap = f.repo.holdings_from_store(INV).await.unwrap();
    assert_eq!(snap.version, 2);
    assert_eq!(snap.holdings[0].units, d("50.000"));
    assert_eq!(snap.holdings[0].invested, d("500.00"));

    let over = redemption(
        INV,
        "txn-X",
        SCHEME,
        "2024-04-01",
        "12",
        "1200.00",
        &[("txn-P", "100")],
    );
    let err = f.deliver(TRANSACTION_TOPIC, INV, &over).await.unwrap_err();
    assert!(matches!(err, HandlerError::Permanent(_)), "{err:?}");
    assert_eq!(f.repo.holdings_from_store(INV).await.unwrap().version, 2);
}

/// Reads populate Redis; each write commits to the store and then refreshes the cached
/// holdings, so the next read from Redis already sees it.
#[tokio::test]
async fn writes_refresh_the_cached_holdings() {
    let f = fixture().await;
    let (empty, source) = f.repo.holdings(INV).await.unwrap();
    assert_eq!((empty.version, source), (0, Source::Store));
    let (_, source) = f.repo.holdings(INV).await.unwrap();
    assert_eq!(source, Source::Cache);
    let p = purchase(
        INV,
        "txn-1",
        SCHEME,
        "2024-01-01",
        "10",
        "100.000",
        "1000.00",
    );
    f.deliver(TRANSACTION_TOPIC, INV, &p).await.unwrap();
    let cached = f.cached(&holdings_cache_key(INV)).await.unwrap();
    assert_eq!(cached["version"], 1);
    let (snap, source) = f.repo.holdings(INV).await.unwrap();
    assert_eq!(source, Source::Cache);
    assert_eq!(snap.holdings[0].units, d("100.000"));
    // The store holds the same thing (it was written first).
    let docs = f
        .store
        .query_partition(
            PORTFOLIO,
            INV,
            IdRange {
                from: Some(holding_id(SCHEME, "FOLIO1")),
                to: Some(holding_id(SCHEME, "FOLIO1")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(docs[0].body["units"], "100.000");
}
