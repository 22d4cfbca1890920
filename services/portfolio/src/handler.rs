//! The `portfolio` consumer group: `transaction.completed` and `nav.broadcast`, effectively once.
//!
//! **`transaction.completed`** (key: investor id). Everything it changes lives in the investor's
//! partition of [`PORTFOLIO`] and commits in ONE batch: the inbox marker, the applied-transaction
//! key `x:{transaction id}`, the holding (Create, or Replace with its ETag), the transaction
//! record `t:{version}`, the version counter (Create, or Replace with its ETag) and the
//! `portfolio.updated` outbox record. Then the relay is woken and the investor's cached holdings
//! are refreshed from the store. A redelivered event (same event id) or the same transaction
//! under a new event id (same transaction id) is acknowledged without effect; both are checked
//! before applying (a repeated redemption would otherwise look like an overdraw) and again by the
//! `Create`s in the batch (a concurrent duplicate conflicts). Two writers racing on one investor
//! (a rebalance, a retry tier) conflict on an ETag; the loser re-reads and re-applies.
//!
//! **`nav.broadcast`** (key: scheme code). The latest NAV per scheme in [`SCHEME_NAV`]
//! (partition: scheme code) with the inbox marker in one batch: a newer date or a correction of
//! the same date replaces it, an older date never does. Then Redis gets the new value. Holdings
//! are not touched: valuations join them with the latest NAV at read time.
//!
//! **`investor.onboarded`, `investor.erased`** (key: investor id). The investor's owner (tenant,
//! onboarding distributor) for access control, document `investor` in the investor's partition
//! of [`PORTFOLIO`], with the inbox marker in one batch (ETag-guarded; see [`crate::access`]).
//!
//! Errors: undecodable or self-contradicting events are [`HandlerError::Permanent`] (straight to
//! `portfolio.dlq`); store failures and a redemption whose lots have not arrived yet are
//! [`HandlerError::Retryable`] (retry tiers, then the DLQ).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_domain::{InvestorId, Nav, SchemeCode};
use nivesh_events::{AvroCodec, EventMeta, NavPublished};
use nivesh_events::{PortfolioUpdated, TransactionCompleted};
use nivesh_runtime::outbox::outbox_message;
use nivesh_store::{
    Batch, DocumentStore, Error as StoreError, WriteOp, inbox_marker, inbox_marker_id,
    is_inbox_conflict,
};
use tokio::sync::Notify;

use crate::access::{InvestorOwner, OWNER_DOC, OwnerEvent};
use crate::ledger::{ApplyError, Txn, apply};
use crate::model::{
    Holding, LATEST_NAV_ID, PORTFOLIO, SCHEME_NAV, SchemeNav, TxnRecord, VERSION_ID, VersionDoc,
    holding_id, txn_key_id, txn_record_id,
};
use crate::repo::Repo;

pub const GROUP: &str = "portfolio";
pub const TRANSACTION_TOPIC: &str = "transaction.completed";
pub const NAV_TOPIC: &str = "nav.broadcast";
pub const UPDATED_TOPIC: &str = "portfolio.updated";
pub const ONBOARDED_TOPIC: &str = "investor.onboarded";
pub const ERASED_TOPIC: &str = "investor.erased";

/// Attempts within one delivery when another writer changed the investor's documents between
/// our read and our commit.
const MAX_ETAG_ATTEMPTS: usize = 5;

/// The group's handler.
pub struct PortfolioHandler {
    pub store: Arc<dyn DocumentStore>,
    pub repo: Repo,
    pub codec: AvroCodec,
    pub outbox_notify: Arc<Notify>,
}

fn retryable(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retryable(e.to_string())
}

/// How one commit attempt ended.
enum Outcome {
    Applied {
        version: i64,
    },
    Duplicate(&'static str),
    /// Someone else wrote first: read again.
    Raced,
}

#[async_trait]
impl MessageHandler for PortfolioHandler {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        match msg.topic.as_str() {
            TRANSACTION_TOPIC => self.on_transaction(msg).await,
            NAV_TOPIC => self.on_nav(msg).await,
            ONBOARDED_TOPIC | ERASED_TOPIC => self.on_identity(msg).await,
            other => Err(HandlerError::Permanent(format!(
                "group {GROUP} does not consume topic {other}"
            ))),
        }
    }
}

impl PortfolioHandler {
    async fn on_transaction(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let event: TransactionCompleted = self.codec.decode(&msg.payload).await.map_err(|e| {
            HandlerError::Permanent(format!("not a TransactionCompleted event: {e}"))
        })?;
        let txn = Txn::from_event(&event).map_err(|reason| {
            metrics::counter!("nivesh_portfolio_rejected_total").increment(1);
            HandlerError::Permanent(format!(
                "transaction {} cannot be applied: {reason}",
                event.transaction_id
            ))
        })?;
        if msg.key_str().is_some_and(|k| k != txn.investor_id) {
            tracing::warn!(key = ?msg.key_str(), investor = %txn.investor_id, "transaction.completed keyed by something other than its investor id");
        }
        for _ in 0..MAX_ETAG_ATTEMPTS {
            match self.try_apply(&event, &txn).await? {
                Outcome::Applied { version } => {
                    self.outbox_notify.notify_one();
                    metrics::counter!("nivesh_portfolio_transactions_applied_total", "leg" => txn.leg.as_str())
                        .increment(1);
                    tracing::info!(investor = %txn.investor_id, transaction = %txn.transaction_id, version, "transaction applied");
                    self.repo.refresh_holdings(&txn.investor_id).await;
                    return Ok(());
                }
                Outcome::Duplicate(reason) => {
                    metrics::counter!("nivesh_inbox_duplicates_total", "group" => GROUP, "reason" => reason)
                        .increment(1);
                    return Ok(());
                }
                Outcome::Raced => {
                    metrics::counter!("nivesh_portfolio_write_conflicts_total").increment(1);
                }
            }
        }
        Err(HandlerError::Retryable(format!(
            "investor {} kept changing under transaction {}",
            txn.investor_id, txn.transaction_id
        )))
    }

    async fn try_apply(
        &self,
        event: &TransactionCompleted,
        txn: &Txn,
    ) -> Result<Outcome, HandlerError> {
        let investor = txn.investor_id.as_str();
        let event_id = event.meta.event_id.to_string();
        let marker = inbox_marker_id(GROUP, &event_id);
        let txn_key = txn_key_id(&txn.transaction_id);
        if self
            .store
            .get(PORTFOLIO, investor, &marker)
            .await
            .map_err(retryable)?
            .is_some()
        {
            return Ok(Outcome::Duplicate("event"));
        }
        if self
            .store
            .get(PORTFOLIO, investor, &txn_key)
            .await
            .map_err(retryable)?
            .is_some()
        {
            return Ok(Outcome::Duplicate("transaction"));
        }
        let version_doc = self
            .store
            .get(PORTFOLIO, investor, VERSION_ID)
            .await
            .map_err(retryable)?;
        let current = match &version_doc {
            Some(doc) => {
                serde_json::from_value::<VersionDoc>(doc.body.clone())
                    .map_err(|e| retryable(format!("version document is malformed: {e}")))?
                    .version
            }
            None => 0,
        };
        let version = current + 1;
        let hid = holding_id(&txn.scheme_code, &txn.folio);
        let holding_doc = self
            .store
            .get(PORTFOLIO, investor, &hid)
            .await
            .map_err(retryable)?;
        let existing: Option<Holding> = match &holding_doc {
            Some(doc) => Some(
                serde_json::from_value(doc.body.clone())
                    .map_err(|e| retryable(format!("holding {hid} is malformed: {e}")))?,
            ),
            None => None,
        };
        let applied = apply(existing, txn, version).map_err(|e| match e {
            ApplyError::NotYet(r) => HandlerError::Retryable(r),
            ApplyError::Invalid(r) => {
                metrics::counter!("nivesh_portfolio_rejected_total").increment(1);
                HandlerError::Permanent(format!(
                    "transaction {} cannot be applied: {r}",
                    txn.transaction_id
                ))
            }
        })?;
        if applied.holding.units != event.balance_units {
            // The registrar's balance is per scheme (and may count a purchase still in our retry
            // tier), so a difference is reported, not fatal; reconciliation checks our own sums.
            metrics::counter!("nivesh_portfolio_balance_differences_total").increment(1);
            tracing::warn!(investor, transaction = %txn.transaction_id, ours = %applied.holding.units,
                registrar = %event.balance_units, "holding differs from the registrar's balance");
        }
        let now = Utc::now();
        let record = TxnRecord {
            version,
            transaction_id: txn.transaction_id.clone(),
            order_id: txn.order_id.clone(),
            event_id: event_id.clone(),
            investor_id: investor.to_string(),
            folio: txn.folio.clone(),
            scheme_code: txn.scheme_code.clone(),
            leg: txn.leg.as_str().to_string(),
            order_kind: event.order_kind.clone(),
            nav: txn.nav,
            nav_date: txn.nav_date,
            gross_amount: event.gross_amount,
            stamp_duty: event.stamp_duty,
            exit_load: event.exit_load,
            net_amount: event.net_amount,
            units: txn.units,
            units_delta: applied.units_delta,
            invested_delta: applied.invested_delta,
            cash_flow: applied.cash_flow.amount,
            balance_units: event.balance_units,
            lots: applied.lots.clone(),
            allotted_at: event.allotted_at,
            applied_at: now,
            sip_id: event.sip_id.clone(),
            instalment_no: event.instalment_no,
        };
        let holding_body = serde_json::to_value(&applied.holding).map_err(retryable)?;
        let update = PortfolioUpdated {
            meta: EventMeta::new::<PortfolioUpdated>(GROUP, Some(event_id.clone())),
            investor_id: investor.to_string(),
            order_id: txn.order_id.clone(),
            transaction_id: Some(txn.transaction_id.clone()),
            scheme_code: txn.scheme_code.clone(),
            units: applied.holding.units,
            invested: applied.holding.invested,
            version,
        };
        let batch = Batch::new(PORTFOLIO, investor)
            .op(inbox_marker(GROUP, &event_id))
            .op(WriteOp::Create {
                id: txn_key.clone(),
                body: serde_json::json!({
                    "kind": "applied-transaction",
                    "transactionId": txn.transaction_id,
                    "version": version,
                    "eventId": event_id,
                }),
                ttl: None,
            })
            .op(match holding_doc {
                Some(doc) => WriteOp::Replace {
                    id: hid,
                    body: holding_body,
                    if_match: doc.etag,
                    ttl: None,
                },
                None => WriteOp::Create {
                    id: hid,
                    body: holding_body,
                    ttl: None,
                },
            })
            .op(WriteOp::Create {
                id: txn_record_id(version),
                body: serde_json::to_value(&record).map_err(retryable)?,
                ttl: None,
            })
            .op({
                let body = serde_json::to_value(VersionDoc { version }).map_err(retryable)?;
                match version_doc {
                    Some(doc) => WriteOp::Replace {
                        id: VERSION_ID.into(),
                        body,
                        if_match: doc.etag,
                        ttl: None,
                    },
                    None => WriteOp::Create {
                        id: VERSION_ID.into(),
                        body,
                        ttl: None,
                    },
                }
            })
            .emit(
                outbox_message(&self.codec, UPDATED_TOPIC, investor, &update)
                    .await
                    .map_err(retryable)?,
            );
        match self.store.commit(batch).await {
            Ok(_) => Ok(Outcome::Applied { version }),
            Err(e) if is_inbox_conflict(&e, GROUP, &event_id) => Ok(Outcome::Duplicate("event")),
            Err(StoreError::Conflict { id }) if id == txn_key => {
                Ok(Outcome::Duplicate("transaction"))
            }
            Err(StoreError::Conflict { .. } | StoreError::PreconditionFailed { .. }) => {
                Ok(Outcome::Raced)
            }
            Err(e) => Err(retryable(e)),
        }
    }

    /// `investor.onboarded` / `investor.erased`: the investor's owner, with the inbox marker.
    async fn on_identity(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let event = if msg.topic == ONBOARDED_TOPIC {
            OwnerEvent::Onboarded(self.codec.decode(&msg.payload).await.map_err(|e| {
                HandlerError::Permanent(format!("not an InvestorOnboarded event: {e}"))
            })?)
        } else {
            OwnerEvent::Erased(self.codec.decode(&msg.payload).await.map_err(|e| {
                HandlerError::Permanent(format!("not an InvestorErased event: {e}"))
            })?)
        };
        let investor = event.investor_id().to_string();
        if InvestorId::parse(&investor).is_err() {
            return Err(HandlerError::Permanent(format!(
                "{} carries a malformed investor id",
                msg.topic
            )));
        }
        let event_id = event.event_id();
        for _ in 0..MAX_ETAG_ATTEMPTS {
            let current = self
                .store
                .get(PORTFOLIO, &investor, OWNER_DOC)
                .await
                .map_err(retryable)?;
            let (owner, write) = match current {
                Some(doc) => {
                    let before: InvestorOwner = serde_json::from_value(doc.body)
                        .map_err(|e| retryable(format!("owner of {investor} is malformed: {e}")))?;
                    let after = InvestorOwner::apply(Some(before.clone()), &event);
                    let write = (after != before).then(|| WriteOp::Replace {
                        id: OWNER_DOC.into(),
                        body: serde_json::to_value(&after).expect("owner serializes"),
                        if_match: doc.etag,
                        ttl: None,
                    });
                    (after, write)
                }
                None => {
                    let after = InvestorOwner::apply(None, &event);
                    let write = WriteOp::Create {
                        id: OWNER_DOC.into(),
                        body: serde_json::to_value(&after).expect("owner serializes"),
                        ttl: None,
                    };
                    (after, Some(write))
                }
            };
            let mut batch = Batch::new(PORTFOLIO, &investor).op(inbox_marker(GROUP, &event_id));
            if let Some(op) = write {
                batch = batch.op(op);
            }
            match self.store.commit(batch).await {
                Ok(_) => {
                    tracing::info!(investor = %investor, distributor = ?owner.distributor_id,
                        erased = owner.erased_at.is_some(), "investor owner updated");
                    return Ok(());
                }
                Err(e) if is_inbox_conflict(&e, GROUP, &event_id) => {
                    metrics::counter!("nivesh_inbox_duplicates_total", "group" => GROUP, "reason" => "event")
                        .increment(1);
                    return Ok(());
                }
                Err(StoreError::PreconditionFailed { .. }) | Err(StoreError::Conflict { .. }) => {
                    continue;
                }
                Err(e) => return Err(retryable(e)),
            }
        }
        Err(HandlerError::Retryable(format!(
            "the owner of investor {investor} kept changing"
        )))
    }

    async fn on_nav(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let event: NavPublished = self
            .codec
            .decode(&msg.payload)
            .await
            .map_err(|e| HandlerError::Permanent(format!("not a NavPublished event: {e}")))?;
        let scheme = SchemeCode::parse(&event.scheme_code)
            .map_err(|e| HandlerError::Permanent(format!("scheme_code: {e}")))?
            .to_string();
        Nav::new(event.nav).map_err(|e| HandlerError::Permanent(format!("nav: {e}")))?;
        let event_id = event.meta.event_id.to_string();
        let nav = SchemeNav {
            scheme_code: scheme.clone(),
            scheme_name: event.scheme_name.clone(),
            nav: event.nav,
            nav_date: event.nav_date,
            change_kind: event.change_kind.clone(),
            event_id: event_id.clone(),
        };
        let body = serde_json::to_value(&nav).map_err(retryable)?;
        for _ in 0..MAX_ETAG_ATTEMPTS {
            let latest = self
                .store
                .get(SCHEME_NAV, &scheme, LATEST_NAV_ID)
                .await
                .map_err(retryable)?;
            let latest_date = match &latest {
                Some(doc) => Some(
                    serde_json::from_value::<SchemeNav>(doc.body.clone())
                        .map_err(|e| {
                            retryable(format!("latest NAV of {scheme} is malformed: {e}"))
                        })?
                        .nav_date,
                ),
                None => None,
            };
            // A correction of the same date replaces; an older date never does.
            if latest_date.is_some_and(|d| nav.nav_date < d) {
                metrics::counter!("nivesh_portfolio_nav_updates_total", "outcome" => "older")
                    .increment(1);
                return Ok(());
            }
            let batch = Batch::new(SCHEME_NAV, &scheme)
                .op(inbox_marker(GROUP, &event_id))
                .op(match latest {
                    Some(doc) => WriteOp::Replace {
                        id: LATEST_NAV_ID.into(),
                        body: body.clone(),
                        if_match: doc.etag,
                        ttl: None,
                    },
                    None => WriteOp::Create {
                        id: LATEST_NAV_ID.into(),
                        body: body.clone(),
                        ttl: None,
                    },
                });
            match self.store.commit(batch).await {
                Ok(_) => {
                    metrics::counter!("nivesh_portfolio_nav_updates_total", "outcome" => "applied")
                        .increment(1);
                    self.repo.refresh_nav(&nav).await;
                    return Ok(());
                }
                Err(e) if is_inbox_conflict(&e, GROUP, &event_id) => {
                    metrics::counter!("nivesh_inbox_duplicates_total", "group" => GROUP, "reason" => "event")
                        .increment(1);
                    return Ok(());
                }
                Err(StoreError::Conflict { .. } | StoreError::PreconditionFailed { .. }) => {
                    metrics::counter!("nivesh_portfolio_write_conflicts_total").increment(1);
                }
                Err(e) => return Err(retryable(e)),
            }
        }
        Err(HandlerError::Retryable(format!(
            "latest NAV of {scheme} kept changing"
        )))
    }
}
