//! Reconciliation: every holding must equal the sum of its applied transactions.
//!
//! Recomputes units and invested per (folio, scheme) from the stored transaction records
//! (`unitsDelta`, `investedDelta`) and compares them with the holding documents; also checks
//! each holding against its own lots (units and cost) and the version counter against the
//! number of transactions. Pure: the API reads the documents from the store (never from Redis).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use crate::model::{Holding, TxnRecord};

/// One disagreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    /// Null for portfolio-wide checks (`version`).
    pub folio: Option<String>,
    pub scheme_code: Option<String>,
    /// `units`, `invested` (holding vs transactions), `lotUnits`, `lotCost` (holding vs its
    /// lots), `missingHolding` (transactions without a holding), `version` (counter vs
    /// transactions).
    pub field: String,
    /// What the transactions (or lots) say.
    pub expected: String,
    /// What the holding (or counter) says.
    pub actual: String,
}

/// `GET /v1/investors/{investorId}/portfolio/reconciliation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reconciliation {
    pub investor_id: String,
    /// True when there is no mismatch.
    pub ok: bool,
    /// The version counter read.
    pub version: i64,
    pub transactions_checked: usize,
    pub holdings_checked: usize,
    pub mismatches: Vec<Mismatch>,
}

#[derive(Default)]
struct Sums {
    units: Decimal,
    invested: Decimal,
}

fn mismatch(h: Option<(&str, &str)>, field: &str, expected: Decimal, actual: Decimal) -> Mismatch {
    Mismatch {
        folio: h.map(|(f, _)| f.to_string()),
        scheme_code: h.map(|(_, s)| s.to_string()),
        field: field.to_string(),
        expected: expected.normalize().to_string(),
        actual: actual.normalize().to_string(),
    }
}

/// Compare `holdings` with `txns` (all of the investor's) and the `version` counter.
pub fn reconcile(
    investor_id: &str,
    version: i64,
    holdings: &[Holding],
    txns: &[TxnRecord],
) -> Reconciliation {
    let mut sums: BTreeMap<(String, String), Sums> = BTreeMap::new();
    for t in txns {
        let s = sums
            .entry((t.folio.clone(), t.scheme_code.clone()))
            .or_default();
        s.units += t.units_delta;
        s.invested += t.invested_delta;
    }
    let mut mismatches = Vec::new();
    for h in holdings {
        let key = (h.folio.clone(), h.scheme_code.clone());
        let at = Some((h.folio.as_str(), h.scheme_code.as_str()));
        let s = sums.remove(&key).unwrap_or_default();
        if s.units != h.units {
            mismatches.push(mismatch(at, "units", s.units, h.units));
        }
        if s.invested != h.invested {
            mismatches.push(mismatch(at, "invested", s.invested, h.invested));
        }
        let lot_units: Decimal = h.lots.iter().map(|l| l.units).sum();
        if lot_units != h.units {
            mismatches.push(mismatch(at, "lotUnits", lot_units, h.units));
        }
        let lot_cost: Decimal = h.lots.iter().map(|l| l.cost).sum();
        if lot_cost != h.invested {
            mismatches.push(mismatch(at, "lotCost", lot_cost, h.invested));
        }
    }
    for ((folio, scheme), s) in sums {
        mismatches.push(Mismatch {
            folio: Some(folio),
            scheme_code: Some(scheme),
            field: "missingHolding".into(),
            expected: s.units.normalize().to_string(),
            actual: "no holding".into(),
        });
    }
    let applied = i64::try_from(txns.len()).unwrap_or(i64::MAX);
    let last = txns.iter().map(|t| t.version).max().unwrap_or(0);
    if applied != version || last != version {
        mismatches.push(Mismatch {
            folio: None,
            scheme_code: None,
            field: "version".into(),
            expected: format!("{applied} transactions, last version {last}"),
            actual: version.to_string(),
        });
    }
    Reconciliation {
        investor_id: investor_id.to_string(),
        ok: mismatches.is_empty(),
        version,
        transactions_checked: txns.len(),
        holdings_checked: holdings.len(),
        mismatches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Leg, Movement, Txn, apply};
    use chrono::Utc;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    /// Applies purchases and a redemption through the ledger, recording what it returned the
    /// way the handler does; returns the holding and the records.
    fn sequence() -> (Holding, Vec<TxnRecord>) {
        let mut holding = None;
        let mut records = Vec::new();
        let steps = [
            (
                "A",
                Leg::Purchase,
                "2024-01-01",
                "1000.000",
                "10000.00",
                vec![],
            ),
            (
                "B",
                Leg::Purchase,
                "2024-06-01",
                "500.000",
                "6000.00",
                vec![],
            ),
            (
                "R",
                Leg::Redemption,
                "2024-09-01",
                "1200.000",
                "15600.00",
                vec![("A", "1000"), ("B", "200")],
            ),
        ];
        for (i, (id, leg, on, units, amount, lots)) in steps.into_iter().enumerate() {
            let version = i as i64 + 1;
            let txn = Txn {
                transaction_id: id.into(),
                order_id: None,
                investor_id: "INV1".into(),
                folio: "F1".into(),
                scheme_code: "119551".into(),
                leg,
                nav: d("10"),
                nav_date: on.parse().unwrap(),
                gross_amount: d(amount),
                net_amount: d(amount),
                units: d(units),
                movements: lots
                    .iter()
                    .map(|(l, u)| Movement {
                        lot_id: (*l).into(),
                        units: d(u),
                        registrar_cost: Decimal::ZERO,
                    })
                    .collect(),
            };
            let a = apply(holding.take(), &txn, version).unwrap();
            records.push(TxnRecord {
                version,
                transaction_id: id.into(),
                order_id: None,
                event_id: format!("e{i}"),
                investor_id: "INV1".into(),
                folio: "F1".into(),
                scheme_code: "119551".into(),
                leg: leg.as_str().into(),
                order_kind: "PURCHASE".into(),
                nav: d("10"),
                nav_date: txn.nav_date,
                gross_amount: d(amount),
                stamp_duty: Decimal::ZERO,
                exit_load: Decimal::ZERO,
                net_amount: d(amount),
                units: d(units),
                units_delta: a.units_delta,
                invested_delta: a.invested_delta,
                cash_flow: a.cash_flow.amount,
                balance_units: Decimal::ZERO,
                lots: a.lots,
                allotted_at: Utc::now(),
                applied_at: Utc::now(),
                sip_id: None,
                instalment_no: None,
            });
            holding = Some(a.holding);
        }
        (holding.unwrap(), records)
    }

    /// A consistent sequence reconciles; a tampered holding, a lost transaction record and a
    /// wrong version are each reported with what was expected.
    #[test]
    fn detects_each_kind_of_drift() {
        let (h, txns) = sequence();
        let ok = reconcile("INV1", 3, std::slice::from_ref(&h), &txns);
        assert!(ok.ok, "{:?}", ok.mismatches);
        assert_eq!(ok.transactions_checked, 3);

        let mut tampered = h.clone();
        tampered.units = d("301.000");
        let r = reconcile("INV1", 3, &[tampered], &txns);
        assert!(!r.ok);
        let fields: Vec<&str> = r.mismatches.iter().map(|m| m.field.as_str()).collect();
        assert_eq!(fields, ["units", "lotUnits"]);
        assert_eq!(r.mismatches[0].expected, "300");
        assert_eq!(r.mismatches[0].actual, "301");

        let mut cost = h.clone();
        cost.invested = d("3600.01");
        let r = reconcile("INV1", 3, &[cost], &txns);
        let fields: Vec<&str> = r.mismatches.iter().map(|m| m.field.as_str()).collect();
        assert_eq!(fields, ["invested", "lotCost"]);

        let r = reconcile("INV1", 3, std::slice::from_ref(&h), &txns[..2]);
        assert!(r.mismatches.iter().any(|m| m.field == "units"));
        assert!(r.mismatches.iter().any(|m| m.field == "version"));

        let r = reconcile("INV1", 3, &[], &txns);
        assert_eq!(r.mismatches[0].field, "missingHolding");
    }
}
