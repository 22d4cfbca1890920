//! Applying one completed transaction to a holding: FIFO lots, units, cost basis, average cost
//! and the cash flow for XIRR. Pure: no I/O, so every rule is unit-tested here.
//!
//! - **Purchase legs** (`PURCHASE`, `SWITCH_IN`) add one lot: its id is the event's single lot
//!   movement's id (the transaction id when the event lists none), its units the units allotted,
//!   its cost the gross amount the investor paid (stamp duty included: it is part of what the
//!   investment cost). Cash flow: `-gross_amount` on the NAV date.
//! - **Redemption legs** (`REDEMPTION`, `SWITCH_OUT`) take units from the lots the event lists
//!   (the registrar's FIFO decision); an event without lots is applied FIFO over our own lots.
//!   The cost removed from a lot is pro rata to the units taken, rounded half-up to the paisa,
//!   and the whole remaining cost when the lot is emptied, so a fully sold lot leaves no
//!   residue. (The registrar's per-lot `cost` is kept in the record for information.) Cash flow:
//!   `+net_amount` (what was paid out) on the NAV date.
//!
//! Errors are split by what a retry can change: [`ApplyError::NotYet`] when a lot the event
//! names is not here (its purchase may still be in a retry tier, since retries lose their place
//! in the partition), [`ApplyError::Invalid`] when the event contradicts itself or our lots.

use chrono::NaiveDate;
use nivesh_domain::{Amount, InvestorId, Nav, SchemeCode, Units};
use nivesh_events::{TransactionCompleted, leg};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::model::{CashFlow, Holding, Lot, LotEffect};

/// Places of the average cost (a per-unit price, like a NAV).
pub const AVERAGE_COST_PLACES: u32 = 4;
/// Longest folio accepted (registrar folios are ~10-20 characters).
const MAX_FOLIO_LEN: usize = 64;

/// The transaction's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    Purchase,
    SwitchIn,
    Redemption,
    SwitchOut,
}

impl Leg {
    pub fn parse(s: &str) -> Option<Leg> {
        match s {
            leg::PURCHASE => Some(Leg::Purchase),
            leg::SWITCH_IN => Some(Leg::SwitchIn),
            leg::REDEMPTION => Some(Leg::Redemption),
            leg::SWITCH_OUT => Some(Leg::SwitchOut),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Leg::Purchase => leg::PURCHASE,
            Leg::SwitchIn => leg::SWITCH_IN,
            Leg::Redemption => leg::REDEMPTION,
            Leg::SwitchOut => leg::SWITCH_OUT,
        }
    }

    /// Adds units (purchase, switch-in) rather than taking them.
    pub fn adds_units(self) -> bool {
        matches!(self, Leg::Purchase | Leg::SwitchIn)
    }
}

/// A lot movement of the event, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub lot_id: String,
    pub units: Decimal,
    pub registrar_cost: Decimal,
}

/// A `transaction.completed` event, validated: what [`apply`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub transaction_id: String,
    pub order_id: Option<String>,
    pub investor_id: String,
    pub folio: String,
    pub scheme_code: String,
    pub leg: Leg,
    pub nav: Decimal,
    pub nav_date: NaiveDate,
    pub gross_amount: Decimal,
    pub net_amount: Decimal,
    pub units: Decimal,
    pub movements: Vec<Movement>,
}

fn amount(name: &str, d: Decimal) -> Result<Decimal, String> {
    Amount::new(d)
        .map(|a| a.as_decimal())
        .map_err(|e| format!("{name}: {e}"))
}

fn positive_units(name: &str, d: Decimal) -> Result<Decimal, String> {
    let u = Units::new(d).map_err(|e| format!("{name}: {e}"))?;
    if u.is_zero() {
        return Err(format!("{name} must be greater than zero"));
    }
    Ok(u.as_decimal())
}

impl Txn {
    /// Validates the event; `Err` is a permanent reason (the event can never be applied).
    pub fn from_event(e: &TransactionCompleted) -> Result<Txn, String> {
        InvestorId::parse(&e.investor_id).map_err(|err| format!("investor_id: {err}"))?;
        SchemeCode::parse(&e.scheme_code).map_err(|err| format!("scheme_code: {err}"))?;
        if e.scheme_code.trim() != e.scheme_code {
            return Err("scheme_code has surrounding whitespace".into());
        }
        if e.transaction_id.trim().is_empty() {
            return Err("transaction_id is empty".into());
        }
        let folio = e.folio.trim();
        if folio.is_empty() || folio.len() > MAX_FOLIO_LEN || folio.chars().any(char::is_control) {
            return Err(format!(
                "folio {:?} must be 1 to {MAX_FOLIO_LEN} printable characters",
                e.folio
            ));
        }
        let leg = Leg::parse(&e.leg).ok_or_else(|| format!("unknown leg {:?}", e.leg))?;
        let nav = Nav::new(e.nav)
            .map_err(|err| format!("nav: {err}"))?
            .as_decimal();
        let units = positive_units("units", e.units)?;
        let gross_amount = amount("gross_amount", e.gross_amount)?;
        let net_amount = amount("net_amount", e.net_amount)?;
        amount("stamp_duty", e.stamp_duty)?;
        amount("exit_load", e.exit_load)?;
        Units::new(e.balance_units).map_err(|err| format!("balance_units: {err}"))?;
        let mut movements = Vec::with_capacity(e.lots.len());
        for (i, m) in e.lots.iter().enumerate() {
            if m.lot_id.trim().is_empty() {
                return Err(format!("lots[{i}].lot_id is empty"));
            }
            movements.push(Movement {
                lot_id: m.lot_id.clone(),
                units: positive_units(&format!("lots[{i}].units"), m.units)?,
                registrar_cost: amount(&format!("lots[{i}].cost"), m.cost)?,
            });
        }
        if !movements.is_empty() {
            let listed: Decimal = movements.iter().map(|m| m.units).sum();
            if listed != units {
                return Err(format!(
                    "lots add up to {listed} units but the transaction has {units}"
                ));
            }
        }
        if leg.adds_units() && movements.len() > 1 {
            return Err(format!(
                "a {} creates one lot, the event lists {}",
                leg.as_str(),
                movements.len()
            ));
        }
        Ok(Txn {
            transaction_id: e.transaction_id.clone(),
            order_id: Some(e.order_id.clone()).filter(|o| !o.trim().is_empty()),
            investor_id: e.investor_id.clone(),
            folio: folio.to_string(),
            scheme_code: e.scheme_code.clone(),
            leg,
            nav,
            nav_date: e.nav_date,
            gross_amount,
            net_amount,
            units,
            movements,
        })
    }
}

/// Why a transaction cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Might apply later (a lot it sells has not arrived yet).
    #[error("not yet applicable: {0}")]
    NotYet(String),
    /// Never applies (contradicts itself or the holding).
    #[error("invalid: {0}")]
    Invalid(String),
}

/// The result of applying a transaction: the new holding and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub holding: Holding,
    pub units_delta: Decimal,
    pub invested_delta: Decimal,
    pub cash_flow: CashFlow,
    pub lots: Vec<LotEffect>,
}

fn money(d: Decimal) -> Decimal {
    let mut r = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(2);
    r
}

fn units3(d: Decimal) -> Decimal {
    let mut r = d;
    r.rescale(3);
    r
}

/// `invested / units` to [`AVERAGE_COST_PLACES`], half-up; `None` for an empty holding.
pub fn average_cost(invested: Decimal, units: Decimal) -> Option<Decimal> {
    if units.is_zero() {
        return None;
    }
    let mut avg = (invested / units)
        .round_dp_with_strategy(AVERAGE_COST_PLACES, RoundingStrategy::MidpointAwayFromZero);
    avg.rescale(AVERAGE_COST_PLACES);
    Some(avg)
}

/// Apply `txn` to the holding (None: the investor has no holding in this folio and scheme yet)
/// as portfolio `version`.
pub fn apply(existing: Option<Holding>, txn: &Txn, version: i64) -> Result<Applied, ApplyError> {
    let mut h = existing.unwrap_or_else(|| Holding {
        investor_id: txn.investor_id.clone(),
        folio: txn.folio.clone(),
        scheme_code: txn.scheme_code.clone(),
        units: units3(Decimal::ZERO),
        invested: money(Decimal::ZERO),
        average_cost: None,
        lots: Vec::new(),
        cash_flows: Vec::new(),
        last_txn_nav: txn.nav,
        last_txn_nav_date: txn.nav_date,
        version,
    });
    let (units_delta, invested_delta, cash, lots) = if txn.leg.adds_units() {
        let (lot_id, registrar_cost) = match txn.movements.first() {
            Some(m) => (m.lot_id.clone(), m.registrar_cost),
            None => (txn.transaction_id.clone(), txn.gross_amount),
        };
        if h.lots.iter().any(|l| l.lot_id == lot_id) {
            return Err(ApplyError::Invalid(format!(
                "lot {lot_id} already exists in this holding"
            )));
        }
        let cost = money(txn.gross_amount);
        h.lots.push(Lot {
            lot_id: lot_id.clone(),
            nav_date: txn.nav_date,
            nav: txn.nav,
            units: units3(txn.units),
            cost,
        });
        // FIFO order is by purchase (NAV) date; a late purchase slots in by date, stable by arrival.
        h.lots.sort_by_key(|l| l.nav_date);
        let effect = LotEffect {
            lot_id,
            units: units3(txn.units),
            cost,
            registrar_cost,
        };
        (txn.units, cost, -money(txn.gross_amount), vec![effect])
    } else {
        let takes = redemption_plan(&h, txn)?;
        let mut effects = Vec::with_capacity(takes.len());
        let mut removed = Decimal::ZERO;
        for (lot_id, units, registrar_cost) in takes {
            let idx = h
                .lots
                .iter()
                .position(|l| l.lot_id == lot_id)
                .expect("planned lots exist");
            let lot = &mut h.lots[idx];
            let cost = if units == lot.units {
                lot.cost
            } else {
                money(lot.cost * units / lot.units)
            };
            lot.units = units3(lot.units - units);
            lot.cost = money(lot.cost - cost);
            removed += cost;
            effects.push(LotEffect {
                lot_id,
                units: units3(units),
                cost,
                registrar_cost,
            });
        }
        h.lots.retain(|l| !l.units.is_zero());
        (-txn.units, -removed, money(txn.net_amount), effects)
    };
    h.units = units3(h.units + units_delta);
    h.invested = money(h.invested + invested_delta);
    debug_assert_eq!(h.units, h.lots.iter().map(|l| l.units).sum::<Decimal>());
    h.average_cost = average_cost(h.invested, h.units);
    let cash_flow = CashFlow {
        date: txn.nav_date,
        amount: cash,
        transaction_id: txn.transaction_id.clone(),
    };
    h.cash_flows.push(cash_flow.clone());
    if txn.nav_date >= h.last_txn_nav_date {
        h.last_txn_nav = txn.nav;
        h.last_txn_nav_date = txn.nav_date;
    }
    h.version = version;
    Ok(Applied {
        holding: h,
        units_delta: units3(units_delta),
        invested_delta: money(invested_delta),
        cash_flow,
        lots,
    })
}

/// Which lots a redemption takes from, as (lot id, units, registrar cost).
fn redemption_plan(h: &Holding, txn: &Txn) -> Result<Vec<(String, Decimal, Decimal)>, ApplyError> {
    if txn.movements.is_empty() {
        // No lots listed: FIFO over our own lots.
        if h.units < txn.units {
            return Err(ApplyError::NotYet(format!(
                "redeems {} units of {} in folio {} but {} are held",
                txn.units, txn.scheme_code, txn.folio, h.units
            )));
        }
        let mut left = txn.units;
        let mut plan = Vec::new();
        for lot in &h.lots {
            if left.is_zero() {
                break;
            }
            let take = left.min(lot.units);
            plan.push((lot.lot_id.clone(), take, Decimal::ZERO));
            left -= take;
        }
        return Ok(plan);
    }
    let mut plan: Vec<(String, Decimal, Decimal)> = Vec::with_capacity(txn.movements.len());
    for m in &txn.movements {
        // The same lot listed twice is taken once with the units added up.
        if let Some(p) = plan.iter_mut().find(|p| p.0 == m.lot_id) {
            p.1 += m.units;
            p.2 += m.registrar_cost;
        } else {
            plan.push((m.lot_id.clone(), m.units, m.registrar_cost));
        }
    }
    for (lot_id, units, _) in &plan {
        let Some(lot) = h.lots.iter().find(|l| &l.lot_id == lot_id) else {
            return Err(ApplyError::NotYet(format!(
                "lot {lot_id} of {} in folio {} is not held (its purchase may not have arrived yet)",
                txn.scheme_code, txn.folio
            )));
        };
        if *units > lot.units {
            return Err(ApplyError::Invalid(format!(
                "takes {units} units from lot {lot_id}, which holds {}",
                lot.units
            )));
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn purchase(id: &str, on: &str, nav: &str, units: &str, gross: &str) -> Txn {
        Txn {
            transaction_id: id.into(),
            order_id: Some(format!("ord-{id}")),
            investor_id: "INV1".into(),
            folio: "F1".into(),
            scheme_code: "119551".into(),
            leg: Leg::Purchase,
            nav: d(nav),
            nav_date: date(on),
            gross_amount: d(gross),
            net_amount: d(gross),
            units: d(units),
            movements: vec![Movement {
                lot_id: id.into(),
                units: d(units),
                registrar_cost: d(gross),
            }],
        }
    }

    fn redemption(id: &str, on: &str, nav: &str, net: &str, lots: &[(&str, &str)]) -> Txn {
        let units: Decimal = lots.iter().map(|(_, u)| d(u)).sum();
        Txn {
            transaction_id: id.into(),
            order_id: Some(format!("ord-{id}")),
            investor_id: "INV1".into(),
            folio: "F1".into(),
            scheme_code: "119551".into(),
            leg: Leg::Redemption,
            nav: d(nav),
            nav_date: date(on),
            gross_amount: d(net),
            net_amount: d(net),
            units,
            movements: lots
                .iter()
                .map(|(l, u)| Movement {
                    lot_id: (*l).into(),
                    units: d(u),
                    registrar_cost: Decimal::ZERO,
                })
                .collect(),
        }
    }

    /// Two purchases then a redemption across both lots: units, FIFO lots, pro-rata cost
    /// basis, average cost and signed cash flows.
    #[test]
    fn purchases_then_partial_redemption() {
        let a = apply(
            None,
            &purchase("A", "2024-01-01", "10", "1000.000", "10000.00"),
            1,
        )
        .unwrap();
        assert_eq!(a.holding.units, d("1000.000"));
        assert_eq!(a.holding.invested, d("10000.00"));
        assert_eq!(a.holding.average_cost, Some(d("10.0000")));
        assert_eq!(a.cash_flow.amount, d("-10000.00"));
        let b = apply(
            Some(a.holding),
            &purchase("B", "2024-06-01", "12", "500.000", "6000.00"),
            2,
        )
        .unwrap();
        assert_eq!(b.holding.units, d("1500.000"));
        assert_eq!(b.holding.invested, d("16000.00"));
        assert_eq!(b.holding.average_cost, Some(d("10.6667")));
        let r = apply(
            Some(b.holding),
            &redemption(
                "R",
                "2024-09-01",
                "13",
                "15600.00",
                &[("A", "1000"), ("B", "200")],
            ),
            3,
        )
        .unwrap();
        let h = &r.holding;
        assert_eq!(h.units.to_string(), "300.000");
        assert_eq!(h.invested.to_string(), "3600.00");
        assert_eq!(h.average_cost.unwrap().to_string(), "12.0000");
        assert_eq!(h.lots.len(), 1, "lot A is emptied and dropped");
        assert_eq!(h.lots[0].lot_id, "B");
        assert_eq!(h.lots[0].units, d("300"));
        assert_eq!(r.units_delta.to_string(), "-1200.000");
        assert_eq!(r.invested_delta.to_string(), "-12400.00");
        assert_eq!(r.lots[0].cost, d("10000.00"));
        assert_eq!(r.lots[1].cost, d("2400.00"));
        assert_eq!(r.cash_flow.amount, d("15600.00"));
        assert_eq!(h.cash_flows.len(), 3);
        assert_eq!(h.version, 3);
        assert_eq!(h.last_txn_nav, d("13"));
    }

    /// Selling a lot in thirds rounds each slice's cost to the paisa and leaves exactly zero.
    #[test]
    fn partial_sales_leave_no_cost_residue() {
        let mut h = apply(
            None,
            &purchase("A", "2024-01-01", "10", "3.000", "100.00"),
            1,
        )
        .unwrap()
        .holding;
        let mut removed = Decimal::ZERO;
        for (i, on) in ["2024-02-01", "2024-03-01", "2024-04-01"]
            .iter()
            .enumerate()
        {
            let r = apply(
                Some(h),
                &redemption(&format!("R{i}"), on, "11", "11.00", &[("A", "1")]),
                2 + i as i64,
            )
            .unwrap();
            removed -= r.invested_delta;
            h = r.holding;
        }
        assert_eq!(removed, d("100.00"));
        assert!(h.units.is_zero() && h.invested.is_zero());
        assert_eq!(h.average_cost, None);
        assert!(h.lots.is_empty());
    }

    /// A redemption naming a lot we do not hold is "not yet" (retry); taking more than a lot
    /// holds is invalid.
    #[test]
    fn missing_lot_is_retryable_and_overdraw_is_invalid() {
        let h = apply(
            None,
            &purchase("A", "2024-01-01", "10", "10.000", "100.00"),
            1,
        )
        .unwrap()
        .holding;
        let err = apply(
            Some(h.clone()),
            &redemption("R", "2024-02-01", "10", "50.00", &[("B", "5")]),
            2,
        )
        .unwrap_err();
        assert!(matches!(err, ApplyError::NotYet(_)), "{err}");
        let err = apply(
            None,
            &redemption("R", "2024-02-01", "10", "50.00", &[("A", "5")]),
            2,
        )
        .unwrap_err();
        assert!(matches!(err, ApplyError::NotYet(_)), "{err}");
        let err = apply(
            Some(h),
            &redemption("R", "2024-02-01", "10", "110.00", &[("A", "11")]),
            2,
        )
        .unwrap_err();
        assert!(matches!(err, ApplyError::Invalid(_)), "{err}");
    }

    /// Without listed lots a redemption is applied FIFO by purchase date, even when the later
    /// purchase arrived first.
    #[test]
    fn fifo_fallback_takes_oldest_lot_first() {
        let newer = apply(
            None,
            &purchase("NEW", "2024-06-01", "20", "10.000", "200.00"),
            1,
        )
        .unwrap()
        .holding;
        let both = apply(
            Some(newer),
            &purchase("OLD", "2024-01-01", "10", "10.000", "100.00"),
            2,
        )
        .unwrap()
        .holding;
        assert_eq!(both.lots[0].lot_id, "OLD");
        let r = apply(
            Some(both),
            &redemption("R", "2024-07-01", "25", "375.00", &[]).with_units("15"),
            3,
        )
        .unwrap();
        assert_eq!(r.lots.len(), 2);
        assert_eq!(
            (r.lots[0].lot_id.as_str(), r.lots[0].cost),
            ("OLD", d("100.00"))
        );
        assert_eq!(
            (r.lots[1].lot_id.as_str(), r.lots[1].cost),
            ("NEW", d("100.00"))
        );
        assert_eq!(r.holding.invested, d("100.00"));
        assert_eq!(r.holding.units, d("5"));
        // The last transaction by NAV date gives the fallback valuation NAV.
        assert_eq!(r.holding.last_txn_nav, d("25"));
    }

    impl Txn {
        fn with_units(mut self, u: &str) -> Txn {
            self.units = d(u);
            self
        }
    }

    /// The same lot id twice in one holding is refused.
    #[test]
    fn duplicate_lot_is_invalid() {
        let p = purchase("A", "2024-01-01", "10", "10.000", "100.00");
        let h = apply(None, &p, 1).unwrap().holding;
        assert!(matches!(apply(Some(h), &p, 2), Err(ApplyError::Invalid(_))));
    }

    fn event() -> TransactionCompleted {
        use nivesh_events::EventMeta;
        use nivesh_events::LotMovement;
        TransactionCompleted {
            meta: EventMeta::new::<TransactionCompleted>("test", None),
            transaction_id: "txn-1".into(),
            order_id: "ord-1".into(),
            investor_id: "INV0001".into(),
            folio: "F1".into(),
            leg: "PURCHASE".into(),
            order_kind: "PURCHASE".into(),
            scheme_code: "119551".into(),
            nav: d("10.5"),
            nav_date: date("2025-02-25"),
            gross_amount: d("5000.00"),
            stamp_duty: d("0.25"),
            exit_load: d("0"),
            net_amount: d("4999.75"),
            units: d("476.166"),
            balance_units: d("476.166"),
            lots: vec![LotMovement {
                lot_id: "txn-1".into(),
                units: d("476.166"),
                lot_nav_date: date("2025-02-25"),
                lot_nav: d("10.5"),
                cost: d("4999.75"),
                exit_load: d("0"),
                days_held: 0,
            }],
            allotted_at: Utc::now(),
            sip_id: None,
            instalment_no: None,
            linked_order_leg: None,
        }
    }

    /// Validation accepts a well-formed event and names what is wrong in a bad one.
    #[test]
    fn event_validation() {
        let ok = Txn::from_event(&event()).unwrap();
        assert_eq!(ok.leg, Leg::Purchase);
        assert_eq!(ok.order_id.as_deref(), Some("ord-1"));
        type Mutation = Box<dyn Fn(&mut TransactionCompleted)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|e| e.leg = "GIFT".into()), "unknown leg"),
            (
                Box::new(|e| e.investor_id = "bad id!".into()),
                "investor_id",
            ),
            (Box::new(|e| e.scheme_code = "abc".into()), "scheme_code"),
            (Box::new(|e| e.nav = d("0")), "nav"),
            (Box::new(|e| e.units = d("1.0001")), "units"),
            (Box::new(|e| e.gross_amount = d("-1")), "gross_amount"),
            (Box::new(|e| e.folio = " ".into()), "folio"),
            (Box::new(|e| e.lots[0].units = d("1")), "add up"),
            (
                Box::new(|e| {
                    let l = e.lots[0].clone();
                    e.lots.push(l);
                    e.units = d("952.332");
                }),
                "one lot",
            ),
        ];
        for (mutate, needle) in cases {
            let mut e = event();
            mutate(&mut e);
            let err = Txn::from_event(&e).unwrap_err();
            assert!(err.contains(needle), "{err:?} should mention {needle}");
        }
    }
}
