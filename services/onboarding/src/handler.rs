//! The `onboarding` consumer group: `transaction.completed` (commissions) and `nav.broadcast`
//! (the scheme -> category table the rates are looked up by).
//!
//! `transaction.completed` of an investor this service onboarded with a distributor, leg
//! PURCHASE or SWITCH_IN: one accrual in the distributor's partition, created together with
//! the inbox marker (see [`crate::commission`]). Other legs, unknown investors and investors
//! without a distributor are acknowledged and ignored (nothing is written: nothing happened).

use async_trait::async_trait;
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_domain::time::Clock;
use nivesh_events::{AvroCodec, NavPublished, TransactionCompleted, leg};
use std::sync::Arc;

use crate::commission::{AccrueOutcome, Commissions};
use crate::flow::{INVESTORS, RECORD_ID};
use crate::model::InvestorRecord;

pub const GROUP: &str = "onboarding";
pub const TRANSACTION_COMPLETED: &str = "transaction.completed";
pub const NAV_BROADCAST: &str = "nav.broadcast";

/// Counter: accruals by `result` (accrued, duplicate) and ignored transactions by `reason`.
pub const ACCRUALS: &str = "nivesh_onboarding_commission_accruals_total";

pub struct OnboardingHandler {
    pub commissions: Commissions,
    pub codec: AvroCodec,
    pub clock: Arc<dyn Clock>,
}

fn retryable(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retryable(e.to_string())
}

#[async_trait]
impl MessageHandler for OnboardingHandler {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        match msg.topic.as_str() {
            TRANSACTION_COMPLETED => self.transaction(msg).await,
            NAV_BROADCAST => self.nav(msg).await,
            other => Err(HandlerError::Permanent(format!(
                "group {GROUP} does not consume {other}"
            ))),
        }
    }
}

impl OnboardingHandler {
    async fn transaction(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let t: TransactionCompleted = self.codec.decode(&msg.payload).await.map_err(|e| {
            HandlerError::Permanent(format!("not a TransactionCompleted event: {e}"))
        })?;
        if t.leg != leg::PURCHASE && t.leg != leg::SWITCH_IN {
            metrics::counter!(ACCRUALS, "result" => "ignored", "reason" => "leg").increment(1);
            return Ok(());
        }
        if nivesh_domain::InvestorId::parse(&t.investor_id).is_err() {
            return Err(HandlerError::Permanent(format!(
                "investor id {:?} is malformed",
                t.investor_id
            )));
        }
        let store = &self.commissions.store;
        let Some(doc) = store
            .get(INVESTORS, &t.investor_id, RECORD_ID)
            .await
            .map_err(retryable)?
        else {
            metrics::counter!(ACCRUALS, "result" => "ignored", "reason" => "not_onboarded_here")
                .increment(1);
            return Ok(());
        };
        let investor: InvestorRecord = serde_json::from_value(doc.body)
            .map_err(|e| HandlerError::Permanent(format!("stored investor unreadable: {e}")))?;
        let Some(distributor) = investor.distributor_id.as_deref() else {
            metrics::counter!(ACCRUALS, "result" => "ignored", "reason" => "no_distributor")
                .increment(1);
            return Ok(());
        };
        let event_id = t.meta.event_id.to_string();
        match self
            .commissions
            .accrue(
                &t,
                &investor.tenant,
                distributor,
                (GROUP, &event_id),
                self.clock.now(),
            )
            .await
            .map_err(retryable)?
        {
            AccrueOutcome::Accrued(a) => {
                metrics::counter!(ACCRUALS, "result" => "accrued").increment(1);
                tracing::info!(
                    distributor_id = distributor,
                    transaction_id = %t.transaction_id,
                    upfront = %a.upfront,
                    trail_daily = %a.trail_daily,
                    "commission accrued"
                );
            }
            AccrueOutcome::Duplicate => {
                metrics::counter!(ACCRUALS, "result" => "duplicate").increment(1);
            }
        }
        Ok(())
    }

    async fn nav(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let n: NavPublished = self
            .codec
            .decode(&msg.payload)
            .await
            .map_err(|e| HandlerError::Permanent(format!("not a NavPublished event: {e}")))?;
        if let Some(category) = n.category.as_deref().filter(|c| !c.trim().is_empty()) {
            self.commissions
                .learn_scheme(&n.scheme_code, &n.scheme_name, category)
                .await
                .map_err(retryable)?;
        }
        Ok(())
    }
}
