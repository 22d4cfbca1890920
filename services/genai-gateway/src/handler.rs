//! The `genai-gateway` consumer group: the read model retrieval works from, effectively once.
//!
//! - `nav.broadcast` (key: scheme code): the NAV point `nav:{date}` and, for the newest date,
//!   the scheme's `facts`, with the inbox marker in one batch in the scheme's partition. A NAV
//!   with the anomaly flag is also listed in [`ANOMALIES`] (an idempotent upsert written first,
//!   so a redelivery repeats it harmlessly).
//! - `nav.validated`: only anomalies matter here: their reason and previous NAV (`reason:{date}`).
//! - `portfolio.updated` (key: investor id): the holding `h:{scheme}`, unless a newer portfolio
//!   version is already stored.
//! - `transaction.completed`: `t:{transactionId}` (folio, NAV, units, amount).
//! - `investor.onboarded`: the investor's `profile` (name, onboarding distributor) in the
//!   partition of the event's tenant.
//! - `investor.erased`: everything of the investor in the read model is deleted (holdings,
//!   transactions, profile) in one batch with the inbox marker. Audit records keep only hashed
//!   user ids and masked text.
//!
//! Undecodable events are permanent failures (dead letter); store failures are retryable.

use std::sync::Arc;

use async_trait::async_trait;
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_events::{
    AvroCodec, InvestorErased, InvestorOnboarded, NavPublished, NavValidated, PortfolioUpdated,
    TransactionCompleted,
};
use nivesh_store::{Batch, DocumentStore, IdRange, WriteOp, inbox_marker, is_inbox_conflict};

use crate::model::{
    ANOMALIES, ANOMALY_PARTITION, Anomaly, AnomalyReason, FACTS_ID, Holding, INVESTORS, NavPoint,
    PROFILE_ID, Profile, SCHEMES, SchemeFacts, TxnSummary, anomaly_api_id, anomaly_doc_id,
    holding_id, investor_partition, nav_id, reason_id, txn_id,
};

pub const GROUP: &str = "genai-gateway";

pub struct GenAiHandler {
    pub store: Arc<dyn DocumentStore>,
    pub codec: AvroCodec,
    /// Events carry no tenant yet; the read model files them here.
    pub tenant: String,
}

fn retryable(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retryable(e.to_string())
}

fn json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, HandlerError> {
    serde_json::to_value(v).map_err(retryable)
}

/// The event's investor id, validated; a malformed one can never succeed.
fn investor_id(raw: &str) -> Result<String, HandlerError> {
    nivesh_domain::InvestorId::parse(raw)
        .map(|id| id.to_string())
        .map_err(|err| HandlerError::Permanent(format!("investor_id: {err}")))
}

#[async_trait]
impl MessageHandler for GenAiHandler {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        match msg.topic.as_str() {
            "nav.broadcast" => self.on_nav(msg).await,
            "nav.validated" => self.on_validated(msg).await,
            "portfolio.updated" => self.on_portfolio(msg).await,
            "transaction.completed" => self.on_transaction(msg).await,
            "investor.onboarded" => self.on_onboarded(msg).await,
            "investor.erased" => self.on_erased(msg).await,
            other => Err(HandlerError::Permanent(format!(
                "group {GROUP} does not consume topic {other}"
            ))),
        }
    }
}

impl GenAiHandler {
    /// Decode the record as `E`; anything else is permanent (dead-lettered with the reason).
    async fn decode<E: nivesh_events::Event>(
        &self,
        msg: &InboundMessage,
    ) -> Result<E, HandlerError> {
        self.codec
            .decode(&msg.payload)
            .await
            .map_err(|e| HandlerError::Permanent(format!("not a {} event: {e}", E::FULL_NAME)))
    }

    /// Commit; an inbox conflict means "already applied".
    async fn commit(&self, batch: Batch, event_id: &str) -> Result<(), HandlerError> {
        match self.store.commit(batch).await {
            Ok(_) => Ok(()),
            Err(e) if is_inbox_conflict(&e, GROUP, event_id) => {
                metrics::counter!("nivesh_inbox_duplicates_total", "group" => GROUP, "reason" => "event")
                    .increment(1);
                Ok(())
            }
            Err(e) => Err(retryable(e)),
        }
    }

    async fn on_nav(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let e: NavPublished = self.decode(msg).await?;
        let code = nivesh_domain::SchemeCode::parse(&e.scheme_code)
            .map_err(|err| HandlerError::Permanent(format!("scheme_code: {err}")))?
            .to_string();
        let event_id = e.meta.event_id.to_string();
        if e.anomaly {
            let anomaly = Anomaly {
                anomaly_id: anomaly_api_id(&code, e.nav_date),
                scheme_code: code.clone(),
                scheme_name: e.scheme_name.clone(),
                nav: e.nav,
                nav_date: e.nav_date,
                flagged_at: e.meta.occurred_at,
            };
            self.store
                .commit(
                    Batch::new(ANOMALIES, ANOMALY_PARTITION).op(WriteOp::Upsert {
                        id: anomaly_doc_id(&code, e.nav_date),
                        body: json(&anomaly)?,
                        ttl: None,
                    }),
                )
                .await
                .map_err(retryable)?;
        }
        let facts = self
            .store
            .get(SCHEMES, &code, FACTS_ID)
            .await
            .map_err(retryable)?;
        let newer = match &facts {
            Some(doc) => serde_json::from_value::<SchemeFacts>(doc.body.clone())
                .map(|f| e.nav_date >= f.latest_nav_date)
                .unwrap_or(true),
            None => true,
        };
        let point = NavPoint {
            nav: e.nav,
            nav_date: e.nav_date,
            anomaly: e.anomaly,
            change_kind: e.change_kind.clone(),
        };
        let mut batch = Batch::new(SCHEMES, &code)
            .op(inbox_marker(GROUP, &event_id))
            .op(WriteOp::Upsert {
                id: nav_id(e.nav_date),
                body: json(&point)?,
                ttl: None,
            });
        if newer {
            let f = SchemeFacts {
                scheme_code: code.clone(),
                scheme_name: e.scheme_name.clone(),
                amc: e.amc.clone(),
                category: e.category.clone(),
                scheme_type: e.scheme_type.clone(),
                latest_nav: e.nav,
                latest_nav_date: e.nav_date,
            };
            // Upsert, not Replace: the only writer of a scheme's partition is this handler, and
            // one scheme's events arrive in order on one partition.
            batch = batch.op(WriteOp::Upsert {
                id: FACTS_ID.into(),
                body: json(&f)?,
                ttl: None,
            });
        }
        self.commit(batch, &event_id).await?;
        metrics::counter!("nivesh_genai_read_model_updates_total", "kind" => "nav").increment(1);
        Ok(())
    }

    async fn on_validated(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let e: NavValidated = self.decode(msg).await?;
        if !e.anomaly {
            return Ok(());
        }
        let code = nivesh_domain::SchemeCode::parse(&e.scheme_code)
            .map_err(|err| HandlerError::Permanent(format!("scheme_code: {err}")))?
            .to_string();
        let event_id = e.meta.event_id.to_string();
        let reason = AnomalyReason {
            reason: e.anomaly_reason.clone(),
            previous_nav: e.previous_nav,
            previous_nav_date: e.previous_nav_date,
        };
        let batch = Batch::new(SCHEMES, &code)
            .op(inbox_marker(GROUP, &event_id))
            .op(WriteOp::Upsert {
                id: reason_id(e.nav_date),
                body: json(&reason)?,
                ttl: None,
            });
        self.commit(batch, &event_id).await
    }

    async fn on_portfolio(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let e: PortfolioUpdated = self.decode(msg).await?;
        let investor = investor_id(&e.investor_id)?;
        let partition = investor_partition(&self.tenant, &investor);
        let event_id = e.meta.event_id.to_string();
        let id = holding_id(&e.scheme_code);
        let existing = self
            .store
            .get(INVESTORS, &partition, &id)
            .await
            .map_err(retryable)?;
        let stale = existing
            .as_ref()
            .and_then(|d| serde_json::from_value::<Holding>(d.body.clone()).ok())
            .is_some_and(|h| h.version >= e.version);
        let mut batch = Batch::new(INVESTORS, &partition).op(inbox_marker(GROUP, &event_id));
        if !stale {
            let h = Holding {
                scheme_code: e.scheme_code.clone(),
                units: e.units,
                invested: e.invested,
                version: e.version,
            };
            batch = batch.op(WriteOp::Upsert {
                id,
                body: json(&h)?,
                ttl: None,
            });
        }
        self.commit(batch, &event_id).await?;
        metrics::counter!("nivesh_genai_read_model_updates_total", "kind" => "holding")
            .increment(1);
        Ok(())
    }

    async fn on_transaction(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let e: TransactionCompleted = self.decode(msg).await?;
        let investor = investor_id(&e.investor_id)?;
        let partition = investor_partition(&self.tenant, &investor);
        let event_id = e.meta.event_id.to_string();
        let t = TxnSummary {
            transaction_id: e.transaction_id.clone(),
            scheme_code: e.scheme_code.clone(),
            folio: e.folio.clone(),
            leg: e.leg.clone(),
            order_kind: e.order_kind.clone(),
            nav: e.nav,
            nav_date: e.nav_date,
            units: e.units,
            net_amount: e.net_amount,
        };
        let batch = Batch::new(INVESTORS, &partition)
            .op(inbox_marker(GROUP, &event_id))
            .op(WriteOp::Upsert {
                id: txn_id(&e.transaction_id),
                body: json(&t)?,
                ttl: None,
            });
        self.commit(batch, &event_id).await
    }

    async fn on_onboarded(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let e: InvestorOnboarded = self.decode(msg).await?;
        let investor = investor_id(&e.investor_id)?;
        let event_id = e.meta.event_id.to_string();
        let profile = Profile {
            name: e.name.clone(),
            distributor_id: e.distributor_id.clone(),
        };
        let batch = Batch::new(INVESTORS, investor_partition(&e.tenant, &investor))
            .op(inbox_marker(GROUP, &event_id))
            .op(WriteOp::Upsert {
                id: PROFILE_ID.into(),
                body: json(&profile)?,
                ttl: None,
            });
        self.commit(batch, &event_id).await
    }

    async fn on_erased(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let e: InvestorErased = self.decode(msg).await?;
        let investor = investor_id(&e.investor_id)?;
        let partition = investor_partition(&e.tenant, &investor);
        let event_id = e.meta.event_id.to_string();
        let docs = self
            .store
            .query_partition(INVESTORS, &partition, IdRange::default())
            .await
            .map_err(retryable)?;
        let mut batch = Batch::new(INVESTORS, &partition).op(inbox_marker(GROUP, &event_id));
        let mut erased = 0;
        for d in docs.iter().filter(|d| !d.id.starts_with("inbox:")) {
            batch = batch.op(WriteOp::Delete {
                id: d.id.clone(),
                if_match: Some(d.etag.clone()),
            });
            erased += 1;
        }
        self.commit(batch, &event_id).await?;
        tracing::info!(investor = %investor, documents = erased, "investor erased from the GenAI read model");
        metrics::counter!("nivesh_genai_erasures_total").increment(1);
        Ok(())
    }
}
