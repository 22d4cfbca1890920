//! The commission engine: upfront and trail commission for distributors, accrued per
//! transaction of the investors they onboarded.
//!
//! For each `transaction.completed` of leg PURCHASE or SWITCH_IN (new money into a scheme) of
//! an investor onboarded by a distributor, with `amount` = the transaction's `net_amount` (what
//! was invested, after stamp duty) and the rates of the scheme's category (or the default):
//!
//! ```text
//! upfront      = round2(amount * upfront_bps / 10000)
//! trail_annual = round2(amount * trail_bps / 10000)           trail for a year at this amount
//! trail_daily  = round2(amount * trail_bps / 10000 / 365)      the accrual per day held
//! ```
//!
//! `round2` rounds half away from zero to paise; every step is an exact `Decimal`. Redemptions
//! and switch-outs earn nothing and claw nothing back (a daily trail on the running AUM, which
//! would net them, is future work). The accrual is ONE document per transaction in the
//! distributor's partition (container `commissions`, id `<nav date>:<transaction id>`), created
//! with the consumer's inbox marker in the same batch, so a redelivered message — or the same
//! transaction under another event id — accrues once.
//!
//! Categories come from `nav.broadcast` (the AMFI category of each scheme), kept in container
//! `schemes` (partition = scheme code); a transaction of a scheme whose category is not yet
//! known is priced at the default rates and says so (`rateCategory: null`).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use nivesh_events::TransactionCompleted;
use nivesh_store::{Batch, DocumentStore, IdRange, WriteOp, inbox_marker, is_inbox_conflict};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{CommissionConfig, Rates};

/// Accruals: partition = distributor id.
pub const COMMISSIONS: &str = "commissions";
/// Scheme code -> category: partition = scheme code, id [`SCHEME_DOC`].
pub const SCHEMES: &str = "schemes";
pub const SCHEME_DOC: &str = "scheme";

const BPS: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);
const DAYS_PER_YEAR: Decimal = Decimal::from_parts(365, 0, 0, false, 0);

/// Exact commission amounts for one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amounts {
    pub upfront: Decimal,
    pub trail_annual: Decimal,
    pub trail_daily: Decimal,
}

fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// The formula of the module docs.
pub fn compute(amount: Decimal, rates: Rates) -> Amounts {
    let trail = amount * rates.trail_bps / BPS;
    Amounts {
        upfront: round2(amount * rates.upfront_bps / BPS),
        trail_annual: round2(trail),
        trail_daily: round2(trail / DAYS_PER_YEAR),
    }
}

/// One transaction's accrual.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accrual {
    pub accrual_id: String,
    pub distributor_id: String,
    pub tenant: String,
    pub investor_id: String,
    pub transaction_id: String,
    pub order_id: String,
    pub scheme_code: String,
    /// The scheme's AMFI category, when known.
    pub scheme_category: Option<String>,
    /// The configured category whose rates applied; `None`: the default rates.
    pub rate_category: Option<String>,
    pub leg: String,
    pub order_kind: String,
    /// The invested amount (`net_amount`), INR.
    #[schema(value_type = String)]
    pub amount: Decimal,
    #[schema(value_type = String)]
    pub upfront_bps: Decimal,
    #[schema(value_type = String)]
    pub trail_bps: Decimal,
    #[schema(value_type = String)]
    pub upfront: Decimal,
    #[schema(value_type = String)]
    pub trail_annual: Decimal,
    #[schema(value_type = String)]
    pub trail_daily: Decimal,
    /// The transaction's NAV date (its trade date).
    pub trade_date: NaiveDate,
    pub accrued_at: DateTime<Utc>,
}

/// Totals over a set of accruals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub count: usize,
    #[schema(value_type = String)]
    pub amount: Decimal,
    #[schema(value_type = String)]
    pub upfront: Decimal,
    #[schema(value_type = String)]
    pub trail_annual: Decimal,
    #[schema(value_type = String)]
    pub trail_daily: Decimal,
}

pub fn totals(accruals: &[Accrual]) -> Totals {
    accruals.iter().fold(Totals::default(), |mut t, a| {
        t.count += 1;
        t.amount += a.amount;
        t.upfront += a.upfront;
        t.trail_annual += a.trail_annual;
        t.trail_daily += a.trail_daily;
        t
    })
}

/// What handling a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccrueOutcome {
    Accrued(Box<Accrual>),
    /// Processed before (same message, or the same transaction again).
    Duplicate,
}

/// The accrual document id: sortable by trade date, unique per transaction.
pub fn accrual_id(trade_date: NaiveDate, transaction_id: &str) -> String {
    format!("{}:{transaction_id}", trade_date.format("%Y-%m-%d"))
}

#[derive(Clone)]
pub struct Commissions {
    pub store: Arc<dyn DocumentStore>,
    pub config: Arc<CommissionConfig>,
}

impl Commissions {
    /// The scheme's known category.
    pub async fn category(&self, scheme_code: &str) -> Result<Option<String>, nivesh_store::Error> {
        Ok(self
            .store
            .get(SCHEMES, scheme_code, SCHEME_DOC)
            .await?
            .and_then(|d| {
                d.body
                    .get("category")
                    .and_then(|c| c.as_str())
                    .map(str::to_string)
            }))
    }

    /// Remember a scheme's category (from `nav.broadcast`); idempotent.
    pub async fn learn_scheme(
        &self,
        scheme_code: &str,
        scheme_name: &str,
        category: &str,
    ) -> Result<(), nivesh_store::Error> {
        if self.category(scheme_code).await?.as_deref() == Some(category) {
            return Ok(());
        }
        let batch = Batch::new(SCHEMES, scheme_code).op(WriteOp::Upsert {
            id: SCHEME_DOC.into(),
            body: serde_json::json!({
                "scheme_code": scheme_code,
                "scheme_name": scheme_name,
                "category": category,
            }),
            ttl: None,
        });
        self.store.commit(batch).await.map(|_| ())
    }

    /// Accrue `t` for `distributor_id` with the inbox marker `(group, message_id)`.
    pub async fn accrue(
        &self,
        t: &TransactionCompleted,
        tenant: &str,
        distributor_id: &str,
        (group, message_id): (&str, &str),
        now: DateTime<Utc>,
    ) -> Result<AccrueOutcome, nivesh_store::Error> {
        let scheme_category = self.category(&t.scheme_code).await?;
        let (rates, rate_category) = self.config.rates_for(scheme_category.as_deref());
        let amounts = compute(t.net_amount, rates);
        let id = accrual_id(t.nav_date, &t.transaction_id);
        let accrual = Accrual {
            accrual_id: id.clone(),
            distributor_id: distributor_id.to_string(),
            tenant: tenant.to_string(),
            investor_id: t.investor_id.clone(),
            transaction_id: t.transaction_id.clone(),
            order_id: t.order_id.clone(),
            scheme_code: t.scheme_code.clone(),
            scheme_category,
            rate_category,
            leg: t.leg.clone(),
            order_kind: t.order_kind.clone(),
            amount: t.net_amount,
            upfront_bps: rates.upfront_bps,
            trail_bps: rates.trail_bps,
            upfront: amounts.upfront,
            trail_annual: amounts.trail_annual,
            trail_daily: amounts.trail_daily,
            trade_date: t.nav_date,
            accrued_at: now,
        };
        let batch = Batch::new(COMMISSIONS, distributor_id)
            .op(inbox_marker(group, message_id))
            .op(WriteOp::Create {
                id: id.clone(),
                body: serde_json::to_value(&accrual).expect("an accrual serializes"),
                ttl: None,
            });
        match self.store.commit(batch).await {
            Ok(_) => Ok(AccrueOutcome::Accrued(Box::new(accrual))),
            Err(e) if is_inbox_conflict(&e, group, message_id) => Ok(AccrueOutcome::Duplicate),
            Err(nivesh_store::Error::Conflict { id: dup }) if dup == id => {
                // The same transaction under another event id: record the marker only.
                let marker =
                    Batch::new(COMMISSIONS, distributor_id).op(inbox_marker(group, message_id));
                match self.store.commit(marker).await {
                    Ok(_) => Ok(AccrueOutcome::Duplicate),
                    Err(e) if is_inbox_conflict(&e, group, message_id) => {
                        Ok(AccrueOutcome::Duplicate)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A distributor's accruals with trade dates in `[from, to]`, oldest first (at most `limit`).
    pub async fn list(
        &self,
        distributor_id: &str,
        from: NaiveDate,
        to: NaiveDate,
        limit: usize,
    ) -> Result<Vec<Accrual>, nivesh_store::Error> {
        let docs = self
            .store
            .query_partition(
                COMMISSIONS,
                distributor_id,
                IdRange {
                    from: Some(from.format("%Y-%m-%d").to_string()),
                    // ';' sorts right after ':', so every id of the `to` date is included.
                    to: Some(format!("{};", to.format("%Y-%m-%d"))),
                    limit: Some(limit),
                    descending: false,
                },
            )
            .await?;
        Ok(docs
            .into_iter()
            .filter(|d| !d.id.starts_with("inbox:"))
            .filter_map(|d| serde_json::from_value(d.body).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    /// The documented formula, worked by hand: 9999.50 at 100 bps upfront and 75 bps trail.
    #[test]
    fn formula_by_hand() {
        let a = compute(
            d("9999.50"),
            Rates {
                upfront_bps: d("100"),
                trail_bps: d("75"),
            },
        );
        // 9999.50 * 0.01 = 99.995 -> 100.00 (half away from zero)
        assert_eq!(a.upfront, d("100.00"));
        // 9999.50 * 0.0075 = 74.99625 -> 75.00; / 365 = 0.205469... -> 0.21
        assert_eq!(a.trail_annual, d("75.00"));
        assert_eq!(a.trail_daily, d("0.21"));
        let zero = compute(
            d("10000"),
            Rates {
                upfront_bps: Decimal::ZERO,
                trail_bps: d("50"),
            },
        );
        assert_eq!(zero.upfront, Decimal::ZERO);
        assert_eq!(zero.trail_annual, d("50.00"));
        assert_eq!(zero.trail_daily, d("0.14"));
    }

    /// Ids sort by trade date, so a date range is an id range.
    #[test]
    fn accrual_ids_sort_by_date() {
        let a = accrual_id(NaiveDate::from_ymd_opt(2025, 2, 25).unwrap(), "t-9");
        let b = accrual_id(NaiveDate::from_ymd_opt(2025, 2, 26).unwrap(), "t-1");
        assert!(a < b);
        assert!(a.as_str() < "2025-02-25;");
    }
}
