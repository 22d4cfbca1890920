//! Valuing holdings at the latest NAV: current value, gain, XIRR per holding and in total, and
//! the response's ETag. Pure: the API feeds it the holdings, the NAVs and "today".
//!
//! - The NAV used is the latest `nav.broadcast` NAV of the scheme, unless the holding's own
//!   latest transaction was priced at a later NAV date (a broadcast not seen yet); before any
//!   broadcast it is the transaction NAV. `navSource` says which.
//! - Current value = units × NAV rounded half-up to the paisa (exact, via `Units::value_at`).
//! - XIRR (`nivesh_txn_rules::xirr`): the holding's cash flows (purchases negative, redemptions
//!   positive, on their NAV dates) plus today's value as the terminal flow on today's business
//!   date. The total uses every holding's flows, including holdings sold down to zero (they are
//!   not listed, but their money was part of the investor's return).
//! - The ETag is a hash of the portfolio version, the business date (XIRR depends on it) and
//!   every NAV value and date used, so it changes when a transaction is applied, a NAV is
//!   published or corrected, or the day turns.

use std::collections::HashMap;

use chrono::NaiveDate;
use nivesh_domain::{Nav, RoundingMode, Units};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::model::{Holding, HoldingsSnapshot, SchemeNav};

/// Where a holding's NAV came from.
pub const NAV_SOURCE_BROADCAST: &str = "broadcast";
pub const NAV_SOURCE_TRANSACTION: &str = "transaction";

/// One holding, valued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoldingView {
    pub scheme_code: String,
    /// From the scheme's NAV broadcast; null until one has been seen.
    pub scheme_name: Option<String>,
    pub folio: String,
    /// Units held, 3 places.
    #[schema(value_type = String, example = "300.000")]
    #[serde(with = "rust_decimal::serde::str")]
    pub units: Decimal,
    /// Cost basis of the units held (INR, 2 places).
    #[schema(value_type = String, example = "3600.00")]
    #[serde(with = "rust_decimal::serde::str")]
    pub invested: Decimal,
    /// invested / units, 4 places.
    #[schema(value_type = String, example = "12.0000")]
    #[serde(with = "rust_decimal::serde::str")]
    pub average_cost: Decimal,
    /// The NAV the holding is valued at, as published.
    #[schema(value_type = String, example = "14.5000")]
    #[serde(with = "rust_decimal::serde::str")]
    pub nav: Decimal,
    pub nav_date: NaiveDate,
    /// `broadcast` (latest published NAV) or `transaction` (the holding's latest transaction NAV).
    pub nav_source: String,
    /// units × nav, INR to the paisa.
    #[schema(value_type = String, example = "4350.00")]
    #[serde(with = "rust_decimal::serde::str")]
    pub current_value: Decimal,
    /// current value − invested.
    #[schema(value_type = String, example = "750.00")]
    #[serde(with = "rust_decimal::serde::str")]
    pub gain: Decimal,
    /// gain / invested × 100, 2 places; null when nothing is invested.
    #[schema(value_type = Option<String>, example = "20.83")]
    #[serde(with = "rust_decimal::serde::str_option")]
    pub gain_pct: Option<Decimal>,
    /// Annualised return as a fraction, 6 places (`0.123456` = 12.3456 % a year); null when it
    /// cannot be computed (e.g. everything happened today).
    #[schema(value_type = Option<String>, example = "0.428820")]
    #[serde(with = "rust_decimal::serde::str_option")]
    pub xirr: Option<Decimal>,
}

/// The portfolio's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    #[schema(value_type = String, example = "3600.00")]
    #[serde(with = "rust_decimal::serde::str")]
    pub invested: Decimal,
    #[schema(value_type = String, example = "4350.00")]
    #[serde(with = "rust_decimal::serde::str")]
    pub current_value: Decimal,
    #[schema(value_type = String, example = "750.00")]
    #[serde(with = "rust_decimal::serde::str")]
    pub gain: Decimal,
    #[schema(value_type = Option<String>, example = "20.83")]
    #[serde(with = "rust_decimal::serde::str_option")]
    pub gain_pct: Option<Decimal>,
    /// Over every cash flow of the investor (sold-out holdings included) plus today's value.
    #[schema(value_type = Option<String>, example = "0.428820")]
    #[serde(with = "rust_decimal::serde::str_option")]
    pub xirr: Option<Decimal>,
}

/// `GET /v1/investors/{investorId}/portfolio`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortfolioView {
    pub investor_id: String,
    /// The investor's portfolio version: the number of transactions applied (0: none).
    pub version: i64,
    /// The business date (IST) the valuation and XIRR are for.
    pub as_of: NaiveDate,
    /// Holdings with units, ordered by scheme code then folio.
    pub holdings: Vec<HoldingView>,
    pub totals: Totals,
}

/// Rounds to the paisa, half-up, always 2 places.
pub fn money(d: Decimal) -> Decimal {
    let mut r = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(2);
    r
}

fn pct(gain: Decimal, invested: Decimal) -> Option<Decimal> {
    (invested > Decimal::ZERO).then(|| money(gain * Decimal::ONE_HUNDRED / invested))
}

/// units × nav to the paisa, half-up, exact.
pub fn current_value(units: Decimal, nav: Decimal) -> Decimal {
    match (Units::new(units), Nav::new(nav)) {
        (Ok(u), Ok(n)) => match u.value_at(n, RoundingMode::HalfUp) {
            Ok(a) => a.as_decimal(),
            Err(_) => money(units * nav),
        },
        _ => money(units * nav),
    }
}

/// XIRR of `flows` plus `terminal` on `today` (skipped when zero).
pub fn xirr_with_terminal<'a>(
    flows: impl IntoIterator<Item = &'a crate::model::CashFlow>,
    today: NaiveDate,
    terminal: Decimal,
) -> Option<Decimal> {
    let mut all: Vec<(NaiveDate, Decimal)> =
        flows.into_iter().map(|f| (f.date, f.amount)).collect();
    if !terminal.is_zero() {
        all.push((today, terminal));
    }
    nivesh_txn_rules::xirr(&all)
}

/// The NAV a holding is valued at: (nav, date, source, scheme name).
fn nav_for<'a>(
    h: &Holding,
    navs: &'a HashMap<String, SchemeNav>,
) -> (Decimal, NaiveDate, &'static str, Option<&'a str>) {
    match navs.get(&h.scheme_code) {
        Some(n) if n.nav_date >= h.last_txn_nav_date => (
            n.nav,
            n.nav_date,
            NAV_SOURCE_BROADCAST,
            Some(n.scheme_name.as_str()),
        ),
        other => (
            h.last_txn_nav,
            h.last_txn_nav_date,
            NAV_SOURCE_TRANSACTION,
            other.map(|n| n.scheme_name.as_str()),
        ),
    }
}

/// Value every holding of `snapshot` at `navs` (scheme code → latest NAV) on `today`.
pub fn value(
    investor_id: &str,
    snapshot: &HoldingsSnapshot,
    navs: &HashMap<String, SchemeNav>,
    today: NaiveDate,
) -> PortfolioView {
    let mut holdings = Vec::new();
    for h in snapshot.holdings.iter().filter(|h| !h.units.is_zero()) {
        let (nav, nav_date, source, name) = nav_for(h, navs);
        let current_value = current_value(h.units, nav);
        let gain = money(current_value - h.invested);
        let mut units = h.units;
        units.rescale(3);
        holdings.push(HoldingView {
            scheme_code: h.scheme_code.clone(),
            scheme_name: name.filter(|n| !n.is_empty()).map(str::to_string),
            folio: h.folio.clone(),
            units,
            invested: money(h.invested),
            average_cost: crate::ledger::average_cost(h.invested, h.units).unwrap_or(Decimal::ZERO),
            nav,
            nav_date,
            nav_source: source.to_string(),
            current_value,
            gain,
            gain_pct: pct(gain, h.invested),
            xirr: xirr_with_terminal(&h.cash_flows, today, current_value),
        });
    }
    holdings.sort_by(|a, b| (&a.scheme_code, &a.folio).cmp(&(&b.scheme_code, &b.folio)));
    let invested = money(holdings.iter().map(|h| h.invested).sum());
    let total_value = money(holdings.iter().map(|h| h.current_value).sum());
    let gain = money(total_value - invested);
    let totals = Totals {
        invested,
        current_value: total_value,
        gain,
        gain_pct: pct(gain, invested),
        xirr: xirr_with_terminal(
            snapshot.holdings.iter().flat_map(|h| h.cash_flows.iter()),
            today,
            total_value,
        ),
    };
    PortfolioView {
        investor_id: investor_id.to_string(),
        version: snapshot.version,
        as_of: today,
        holdings,
        totals,
    }
}

/// The strong ETag of a valued portfolio: version, business date and the NAVs used.
pub fn etag(view: &PortfolioView) -> String {
    let mut h = Sha256::new();
    h.update(view.investor_id.as_bytes());
    h.update(format!("|v{}|{}", view.version, view.as_of).as_bytes());
    for x in &view.holdings {
        h.update(
            format!(
                "|{}:{}:{}:{}:{}",
                x.scheme_code,
                x.folio,
                x.nav.normalize(),
                x.nav_date,
                x.nav_source
            )
            .as_bytes(),
        );
    }
    let digest = h.finalize();
    format!("\"p{}-{}\"", view.version, hex::encode(&digest[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CashFlow;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn holding(scheme: &str, units: &str, invested: &str, flows: &[(&str, &str)]) -> Holding {
        Holding {
            investor_id: "INV1".into(),
            folio: "F1".into(),
            scheme_code: scheme.into(),
            units: d(units),
            invested: d(invested),
            average_cost: crate::ledger::average_cost(d(invested), d(units)),
            lots: vec![],
            cash_flows: flows
                .iter()
                .enumerate()
                .map(|(i, (on, a))| CashFlow {
                    date: date(on),
                    amount: d(a),
                    transaction_id: format!("t{i}"),
                })
                .collect(),
            last_txn_nav: d("10"),
            last_txn_nav_date: date("2024-01-01"),
            version: 1,
        }
    }

    fn nav(scheme: &str, value: &str, on: &str) -> (String, SchemeNav) {
        (
            scheme.to_string(),
            SchemeNav {
                scheme_code: scheme.into(),
                scheme_name: format!("Fund {scheme}"),
                nav: d(value),
                nav_date: date(on),
                change_kind: "NEW".into(),
                event_id: "e".into(),
            },
        )
    }

    /// 10,000 invested a year ago worth 11,000 today is exactly 10 % a year: the holding's
    /// flows and today's value reach `xirr`, signed and dated correctly.
    #[test]
    fn xirr_uses_flows_and_todays_value() {
        let snap = HoldingsSnapshot {
            version: 1,
            holdings: vec![holding(
                "100001",
                "1000.000",
                "10000.00",
                &[("2024-02-26", "-10000.00")],
            )],
        };
        let navs = HashMap::from([nav("100001", "11.0000", "2025-02-25")]);
        let v = value("INV1", &snap, &navs, date("2025-02-25"));
        let h = &v.holdings[0];
        assert_eq!(h.current_value.to_string(), "11000.00");
        assert_eq!(h.gain.to_string(), "1000.00");
        assert_eq!(h.gain_pct.unwrap().to_string(), "10.00");
        assert_eq!(h.xirr.unwrap().to_string(), "0.100000");
        assert_eq!(h.nav_source, NAV_SOURCE_BROADCAST);
        assert_eq!(h.scheme_name.as_deref(), Some("Fund 100001"));
        assert_eq!(v.totals.xirr.unwrap().to_string(), "0.100000");
        // Valued a year later at the same NAV, the same money returns about 4.88 % a year.
        let later = value("INV1", &snap, &navs, date("2026-02-25"));
        assert_eq!(later.holdings[0].xirr.unwrap().to_string(), "0.048809");
    }

    /// A sold-out holding is not listed but its flows stay in the total XIRR.
    #[test]
    fn total_xirr_includes_sold_out_holdings() {
        let open = holding(
            "100001",
            "1000.000",
            "10000.00",
            &[("2024-02-26", "-10000.00")],
        );
        let mut closed = holding(
            "100002",
            "0.000",
            "0.00",
            &[("2024-02-26", "-10000.00"), ("2025-02-25", "13000.00")],
        );
        closed.folio = "F2".into();
        let navs = HashMap::from([nav("100001", "11.0000", "2025-02-25")]);
        let snap = HoldingsSnapshot {
            version: 3,
            holdings: vec![open.clone(), closed],
        };
        let v = value("INV1", &snap, &navs, date("2025-02-25"));
        assert_eq!(v.holdings.len(), 1);
        assert_eq!(v.totals.invested.to_string(), "10000.00");
        // -20,000 a year ago, +13,000 +11,000 today: 20 %.
        assert_eq!(v.totals.xirr.unwrap().to_string(), "0.200000");
        let only_open = value(
            "INV1",
            &HoldingsSnapshot {
                version: 1,
                holdings: vec![open],
            },
            &navs,
            date("2025-02-25"),
        );
        assert_eq!(only_open.totals.xirr.unwrap().to_string(), "0.100000");
    }

    /// Before any broadcast (or when the broadcast is older than the holding's last
    /// transaction) the transaction NAV values the holding; everything bought today has no XIRR.
    #[test]
    fn transaction_nav_fallback_and_no_xirr_same_day() {
        let mut h = holding("100001", "10.000", "100.00", &[("2025-02-25", "-100.00")]);
        h.last_txn_nav = d("10.5");
        h.last_txn_nav_date = date("2025-02-25");
        let snap = HoldingsSnapshot {
            version: 1,
            holdings: vec![h],
        };
        let none = value("INV1", &snap, &HashMap::new(), date("2025-02-25"));
        assert_eq!(none.holdings[0].nav_source, NAV_SOURCE_TRANSACTION);
        assert_eq!(none.holdings[0].current_value.to_string(), "105.00");
        assert_eq!(none.holdings[0].scheme_name, None);
        assert_eq!(none.holdings[0].xirr, None);
        let stale = HashMap::from([nav("100001", "9.0000", "2025-02-24")]);
        let v = value("INV1", &snap, &stale, date("2025-02-25"));
        assert_eq!(v.holdings[0].nav, d("10.5"));
        assert_eq!(v.holdings[0].scheme_name.as_deref(), Some("Fund 100001"));
    }

    /// The ETag changes when a NAV's value or date changes, when the version changes and when
    /// the business date turns, and only then.
    #[test]
    fn etag_follows_navs_version_and_date() {
        let snap = HoldingsSnapshot {
            version: 2,
            holdings: vec![holding(
                "100001",
                "1000.000",
                "10000.00",
                &[("2024-02-26", "-10000.00")],
            )],
        };
        let today = date("2025-02-25");
        let tag = |navs: HashMap<String, SchemeNav>, snap: &HoldingsSnapshot, today| {
            etag(&value("INV1", snap, &navs, today))
        };
        let base = tag(
            HashMap::from([nav("100001", "11.0000", "2025-02-25")]),
            &snap,
            today,
        );
        assert_eq!(
            base,
            tag(
                HashMap::from([nav("100001", "11.0000", "2025-02-25")]),
                &snap,
                today
            )
        );
        // Same value written with another scale is the same NAV.
        assert_eq!(
            base,
            tag(
                HashMap::from([nav("100001", "11.00", "2025-02-25")]),
                &snap,
                today
            )
        );
        let corrected = tag(
            HashMap::from([nav("100001", "11.0100", "2025-02-25")]),
            &snap,
            today,
        );
        assert_ne!(base, corrected);
        let next_day = tag(
            HashMap::from([nav("100001", "11.0000", "2025-02-26")]),
            &snap,
            today,
        );
        assert_ne!(base, next_day);
        let mut bumped = snap.clone();
        bumped.version = 3;
        assert_ne!(
            base,
            tag(
                HashMap::from([nav("100001", "11.0000", "2025-02-25")]),
                &bumped,
                today
            )
        );
        assert_ne!(
            base,
            tag(
                HashMap::from([nav("100001", "11.0000", "2025-02-25")]),
                &snap,
                date("2025-02-26")
            )
        );
        assert!(base.starts_with("\"p2-") && base.ends_with('"'));
    }

    /// Display rounding: money to the paisa half-up, units 3 places, average cost 4 places.
    #[test]
    fn display_rounding() {
        let snap = HoldingsSnapshot {
            version: 1,
            holdings: vec![holding(
                "100001",
                "3.000",
                "100.00",
                &[("2024-02-26", "-100.00")],
            )],
        };
        // 3 × 10.1235 = 30.3705 → 30.37; 3 × 10.1255 = 30.3765 → 30.38.
        let v = value(
            "INV1",
            &snap,
            &HashMap::from([nav("100001", "10.1235", "2025-02-25")]),
            date("2025-02-25"),
        );
        let h = &v.holdings[0];
        assert_eq!(h.current_value.to_string(), "30.37");
        assert_eq!(h.units.to_string(), "3.000");
        assert_eq!(h.average_cost.to_string(), "33.3333");
        assert_eq!(h.gain.to_string(), "-69.63");
        assert_eq!(h.gain_pct.unwrap().to_string(), "-69.63");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["holdings"][0]["currentValue"], "30.37");
        assert_eq!(json["totals"]["invested"], "100.00");
        let up = value(
            "INV1",
            &snap,
            &HashMap::from([nav("100001", "10.1255", "2025-02-25")]),
            date("2025-02-25"),
        );
        assert_eq!(up.holdings[0].current_value.to_string(), "30.38");
    }
}
