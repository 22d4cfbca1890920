//! FIFO redemption over lots, with exit load per lot by holding period.

use chrono::NaiveDate;
use nivesh_domain::{Amount, Decimal, Nav, RoundingMode, Units};
use serde::{Deserialize, Serialize};

use super::ExitLoadSchedule;
use crate::int::{
    amount_from_paise, div_ceil, div_round, milli, nav_parts, pow10, units_from_milli,
};
use crate::{Error, Result};

/// Units bought together on one date: the unit of FIFO and of holding-period maths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// The allotment (NAV) date.
    pub purchased_on: NaiveDate,
    pub units: Units,
    /// The NAV the lot was bought at. A NAV rather than a rupee cost so that splitting a lot
    /// never has to apportion (and round) a cost: the unconsumed part keeps it unchanged.
    pub cost_nav: Nav,
}

/// How much of one lot a redemption consumed and what exit load that slice paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotConsumption {
    /// Index of the lot in the slice the caller passed.
    pub lot_index: usize,
    pub purchased_on: NaiveDate,
    pub units: Units,
    pub days_held: u32,
    /// Percent, from the schedule band for `days_held` (zero outside every band).
    pub load_pct: Decimal,
    /// `units × NAV × load_pct / 100`, rounded by [`RedemptionRounding::exit_load`].
    pub load: Amount,
}

/// The outcome of a redemption: `net = gross − exit_load`, `exit_load` = the sum of the
/// per-lot loads, and `consumed` + `remaining_lots` = the lots passed in, unit for unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redemption {
    /// The redemption's NAV date.
    pub on: NaiveDate,
    pub nav: Nav,
    pub units: Units,
    /// `units × nav`, rounded once by [`RedemptionRounding::value`].
    pub gross: Amount,
    pub exit_load: Amount,
    pub net: Amount,
    /// In FIFO order.
    pub consumed: Vec<LotConsumption>,
    /// The lots with units left, in FIFO order (purchase date, then the caller's order); a
    /// partly consumed lot keeps its date and cost NAV with fewer units.
    pub remaining_lots: Vec<Lot>,
}

/// Rounding of redemption amounts to the paisa; both half-up by default (commercial
/// rounding). Deserialises with omitted fields defaulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct RedemptionRounding {
    /// Of the gross value, `units × NAV`.
    pub value: RoundingMode,
    /// Of each lot's exit load.
    pub exit_load: RoundingMode,
}

impl Default for RedemptionRounding {
    fn default() -> Self {
        RedemptionRounding {
            value: RoundingMode::HalfUp,
            exit_load: RoundingMode::HalfUp,
        }
    }
}

/// [`redeem_fifo_with`] with the default [`RedemptionRounding`].
pub fn redeem_fifo(
    lots: &[Lot],
    units: Units,
    nav: Nav,
    on: NaiveDate,
    schedule: &ExitLoadSchedule,
) -> Result<Redemption> {
    redeem_fifo_with(
        lots,
        units,
        nav,
        on,
        schedule,
        RedemptionRounding::default(),
    )
}

/// Redeems `units` at `nav` on NAV date `on`, consuming `lots` oldest first.
///
/// Errors: zero units ([`Error::NothingToRedeem`]); more units than all lots hold
/// ([`Error::InsufficientUnits`]); needing a lot bought after `on`
/// ([`Error::LotAfterRedemption`]).
pub fn redeem_fifo_with(
    lots: &[Lot],
    units: Units,
    nav: Nav,
    on: NaiveDate,
    schedule: &ExitLoadSchedule,
    rounding: RedemptionRounding,
) -> Result<Redemption> {
    if units.is_zero() {
        return Err(Error::NothingToRedeem);
    }
    let held = total_units(lots)?;
    if units > held {
        return Err(Error::InsufficientUnits {
            requested: units,
            held,
        });
    }

    let mut order: Vec<usize> = (0..lots.len()).collect();
    // Stable: lots bought the same day keep the caller's order.
    order.sort_by_key(|&i| lots[i].purchased_on);

    let mut left: Vec<u128> = lots.iter().map(|l| milli(l.units)).collect();
    let mut need = milli(units);
    let mut consumed = Vec::new();
    let mut load_total: u128 = 0;
    for &i in &order {
        if need == 0 {
            break;
        }
        let take = need.min(left[i]);
        if take == 0 {
            continue;
        }
        let lot = &lots[i];
        if lot.purchased_on > on {
            return Err(Error::LotAfterRedemption {
                lot_index: i,
                purchased_on: lot.purchased_on,
                on,
            });
        }
        let days_held = u32::try_from((on - lot.purchased_on).num_days())
            .map_err(|_| Error::Overflow("holding period"))?;
        let load_pct = schedule.load_pct(days_held);
        let load = load_paise(take, nav, load_pct, rounding.exit_load)?;
        load_total = load_total
            .checked_add(load)
            .ok_or(Error::Overflow("exit load"))?;
        consumed.push(LotConsumption {
            lot_index: i,
            purchased_on: lot.purchased_on,
            units: units_from_milli(take)?,
            days_held,
            load_pct,
            load: amount_from_paise(load)?,
        });
        left[i] -= take;
        need -= take;
    }

    let gross = units.value_at(nav, rounding.value)?;
    let exit_load = amount_from_paise(load_total)?;
    // Unreachable with loads capped at MAX_LOAD_PCT (see its docs); kept as an error so a
    // relaxed cap shows up as a refusal rather than a negative payout.
    let net = gross.checked_sub(exit_load).ok_or_else(|| {
        Error::InvalidLoadSchedule(format!("exit load {exit_load} exceeds the value {gross}"))
    })?;
    let remaining_lots = order
        .iter()
        .filter(|&&i| left[i] > 0)
        .map(|&i| {
            Ok(Lot {
                units: units_from_milli(left[i])?,
                ..lots[i].clone()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Redemption {
        on,
        nav,
        units,
        gross,
        exit_load,
        net,
        consumed,
        remaining_lots,
    })
}

/// [`redeem_amount_fifo_with`] with the default [`RedemptionRounding`].
pub fn redeem_amount_fifo(
    lots: &[Lot],
    amount: Amount,
    nav: Nav,
    on: NaiveDate,
    schedule: &ExitLoadSchedule,
) -> Result<Redemption> {
    redeem_amount_fifo_with(
        lots,
        amount,
        nav,
        on,
        schedule,
        RedemptionRounding::default(),
    )
}

/// Redeems enough units for a gross of at least `amount` (before exit load): the units are
/// [`units_for_amount_up`], capped at the holding when the holding's value covers `amount`.
///
/// So `gross >= amount` always, and `gross` exceeds `amount` by less than the value of 0.001
/// unit plus rounding. Errors: zero amount ([`Error::NothingToRedeem`]); an amount above the
/// holding's value ([`Error::InsufficientValue`]); and those of [`redeem_fifo_with`].
pub fn redeem_amount_fifo_with(
    lots: &[Lot],
    amount: Amount,
    nav: Nav,
    on: NaiveDate,
    schedule: &ExitLoadSchedule,
    rounding: RedemptionRounding,
) -> Result<Redemption> {
    if amount.is_zero() {
        return Err(Error::NothingToRedeem);
    }
    let held = total_units(lots)?;
    let available = held.value_at(nav, rounding.value)?;
    if amount > available {
        return Err(Error::InsufficientValue {
            requested: amount,
            available,
        });
    }
    let units = units_for_amount_up(amount, nav)?.min(held);
    redeem_fifo_with(lots, units, nav, on, schedule, rounding)
}

/// [`redeem_all_fifo_with`] with the default [`RedemptionRounding`].
pub fn redeem_all_fifo(
    lots: &[Lot],
    nav: Nav,
    on: NaiveDate,
    schedule: &ExitLoadSchedule,
) -> Result<Redemption> {
    redeem_all_fifo_with(lots, nav, on, schedule, RedemptionRounding::default())
}

/// Redeems every unit in `lots`. An empty holding is [`Error::NothingToRedeem`].
pub fn redeem_all_fifo_with(
    lots: &[Lot],
    nav: Nav,
    on: NaiveDate,
    schedule: &ExitLoadSchedule,
    rounding: RedemptionRounding,
) -> Result<Redemption> {
    let held = total_units(lots)?;
    redeem_fifo_with(lots, held, nav, on, schedule, rounding)
}

/// The fewest units (to 0.001) worth at least `amount` at `nav`: `amount / nav` rounded *up*.
///
/// Up rather than truncated because a redemption by amount is a promise of that amount:
/// truncating would pay a few paise short; the surplus from rounding up is below the value of
/// one thousandth of a unit. `Units::for_amount` is not used because `RoundingMode` has no
/// ceiling (and must not grow one: rounding *allotments* up is never right).
pub fn units_for_amount_up(amount: Amount, nav: Nav) -> Result<Units> {
    let (m, s) = nav_parts(nav);
    // milli-units = paise × 10^(s+1) / mantissa: rupees/NAV × 1000, with NAV = m / 10^s.
    let num = amount
        .to_paise()
        .checked_mul(pow10(s + 1, "units for amount")?)
        .ok_or(Error::Overflow("units for amount"))?;
    units_from_milli(div_ceil(num, m))
}

fn total_units(lots: &[Lot]) -> Result<Units> {
    lots.iter().try_fold(Units::zero(), |acc, l| {
        acc.checked_add(l.units)
            .ok_or(Error::Overflow("units held"))
    })
}

/// Exit load in paise on `take` milli-units at `nav`, `pct` percent, rounded once.
///
/// With `nav = m / 10^s` and `pct = q / 10^t`, the value is `take × m / 10^(s+1)` paise and
/// the load `take × m × q / 10^(s+t+3)` paise: one exact division.
fn load_paise(take: u128, nav: Nav, pct: Decimal, mode: RoundingMode) -> Result<u128> {
    let pct = pct.normalize();
    if pct.is_zero() {
        return Ok(0);
    }
    let q = u128::try_from(pct.mantissa()).map_err(|_| Error::Overflow("exit load"))?;
    let (m, s) = nav_parts(nav);
    let num = take
        .checked_mul(m)
        .and_then(|x| x.checked_mul(q))
        .ok_or(Error::Overflow("exit load"))?;
    let den = pow10(s + pct.scale() + 3, "exit load")?;
    Ok(div_round(num, den, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }
    fn u(s: &str) -> Units {
        Units::parse(s).unwrap()
    }
    fn nav(s: &str) -> Nav {
        Nav::parse(s).unwrap()
    }
    fn amt(s: &str) -> Amount {
        Amount::parse(s).unwrap()
    }
    fn lot(on: NaiveDate, units: &str) -> Lot {
        Lot {
            purchased_on: on,
            units: u(units),
            cost_nav: nav("10"),
        }
    }

    /// A worked equity redemption: one lot inside the 1 % window, one outside; FIFO by date
    /// even when passed out of order.
    #[test]
    fn worked_equity_redemption() {
        let lots = [
            lot(d(2025, 1, 10), "50.000"), // 2025-06-30 − 2025-01-10 = 171 days → 1 %
            lot(d(2024, 1, 10), "100.000"), // 537 days → nil
        ];
        let sched = ExitLoadSchedule::flat("1".parse().unwrap(), 365).unwrap();
        let r = redeem_fifo(&lots, u("120.000"), nav("25.5000"), d(2025, 6, 30), &sched).unwrap();
        assert_eq!(r.consumed.len(), 2);
        assert_eq!(r.consumed[0].lot_index, 1);
        assert_eq!(r.consumed[0].units, u("100.000"));
        assert_eq!(r.consumed[0].days_held, 537);
        assert!(r.consumed[0].load.is_zero());
        assert_eq!(r.consumed[1].lot_index, 0);
        assert_eq!(r.consumed[1].units, u("20.000"));
        assert_eq!(r.consumed[1].days_held, 171);
        // 20 × 25.5 = 510.00; 1 % = 5.10.
        assert_eq!(r.consumed[1].load, amt("5.10"));
        assert_eq!(r.gross, amt("3060.00"));
        assert_eq!(r.exit_load, amt("5.10"));
        assert_eq!(r.net, amt("3054.90"));
        assert_eq!(r.remaining_lots, vec![lot(d(2025, 1, 10), "30.000")]);
    }

    /// Liquid graded load on a large same-week redemption: ₹1 crore held 3 days pays 0.0060 %.
    #[test]
    fn worked_liquid_redemption() {
        let lots = [lot(d(2025, 3, 9), "3000.000")];
        let r = redeem_fifo(
            &lots,
            u("3000.000"),
            nav("3333.3333"),
            d(2025, 3, 12),
            &ExitLoadSchedule::liquid_graded(),
        )
        .unwrap();
        // 3000 × 3333.3333 = 9,999,999.90; × 0.0060 % = 599.999994 → 600.00.
        assert_eq!(r.gross, amt("9999999.90"));
        assert_eq!(r.consumed[0].days_held, 3);
        assert_eq!(r.exit_load, amt("600.00"));
        assert_eq!(r.net, amt("9999399.90"));
        assert!(r.remaining_lots.is_empty());
    }

    /// Errors: nothing asked, more than held, a needed lot after the date, amount above value.
    #[test]
    fn refusals() {
        let lots = [lot(d(2025, 1, 1), "10.000"), lot(d(2025, 2, 1), "5.000")];
        let nil = ExitLoadSchedule::nil();
        let n = nav("10");
        assert_eq!(
            redeem_fifo(&lots, Units::zero(), n, d(2025, 3, 1), &nil),
            Err(Error::NothingToRedeem)
        );
        assert_eq!(
            redeem_fifo(&lots, u("15.001"), n, d(2025, 3, 1), &nil),
            Err(Error::InsufficientUnits {
                requested: u("15.001"),
                held: u("15.000")
            })
        );
        assert_eq!(
            redeem_fifo(&lots, u("12"), n, d(2025, 1, 15), &nil),
            Err(Error::LotAfterRedemption {
                lot_index: 1,
                purchased_on: d(2025, 2, 1),
                on: d(2025, 1, 15)
            })
        );
        // The first lot alone suffices on 15 Jan, so the later lot is not touched.
        assert!(redeem_fifo(&lots, u("10"), n, d(2025, 1, 15), &nil).is_ok());
        assert_eq!(
            redeem_amount_fifo(&lots, amt("150.01"), n, d(2025, 3, 1), &nil),
            Err(Error::InsufficientValue {
                requested: amt("150.01"),
                available: amt("150.00")
            })
        );
        assert_eq!(
            redeem_amount_fifo(&lots, Amount::zero(), n, d(2025, 3, 1), &nil),
            Err(Error::NothingToRedeem)
        );
        assert_eq!(
            redeem_all_fifo(&[], n, d(2025, 3, 1), &nil),
            Err(Error::NothingToRedeem)
        );
    }

    /// By amount rounds units up (gross covers the request) and caps at the holding.
    #[test]
    fn by_amount_rounds_up_and_caps() {
        let lots = [lot(d(2025, 1, 1), "10.000")];
        let nil = ExitLoadSchedule::nil();
        // 100 / 33.3333 = 3.00000300… → 3.001 units (3.000 would be worth 99.9999 → 100.00
        // half-up, but 99.99 truncated: up keeps both modes whole).
        let r = redeem_amount_fifo(&lots, amt("100"), nav("33.3333"), d(2025, 2, 1), &nil).unwrap();
        assert_eq!(r.units, u("3.001"));
        assert!(r.gross >= amt("100.00"));
        assert_eq!(
            units_for_amount_up(amt("100"), nav("25")).unwrap(),
            u("4.000")
        );
        // The holding is worth 333.333 → 333.33 (half-up); asking for exactly that needs
        // 10.000 units by ceiling (333.33 / 33.3333 = 9.99990…), so no cap is needed here…
        let all =
            redeem_amount_fifo(&lots, amt("333.33"), nav("33.3333"), d(2025, 2, 1), &nil).unwrap();
        assert_eq!(all.units, u("10.000"));
        // …but at NAV 33.3336 the holding is 333.336 → 333.34, and 333.34 / 33.3336 =
        // 10.00012 rounds up to 10.001 > held: capped to the 10.000 held.
        let capped =
            redeem_amount_fifo(&lots, amt("333.34"), nav("33.3336"), d(2025, 2, 1), &nil).unwrap();
        assert_eq!(capped.units, u("10.000"));
        assert_eq!(capped.gross, amt("333.34"));
        assert!(capped.remaining_lots.is_empty());
    }

    /// Same-date lots keep the caller's order, and zero-unit lots are skipped and dropped.
    #[test]
    fn ties_and_empty_lots() {
        let day = d(2025, 1, 1);
        let lots = [lot(day, "0"), lot(day, "2"), lot(day, "3")];
        let r = redeem_all_fifo(&lots, nav("10"), d(2025, 1, 2), &ExitLoadSchedule::nil()).unwrap();
        let idx: Vec<usize> = r.consumed.iter().map(|c| c.lot_index).collect();
        assert_eq!(idx, [1, 2]);
        assert_eq!(r.units, u("5"));
        assert!(r.remaining_lots.is_empty());
    }

    /// The rounding knobs change the gross and the load as documented.
    #[test]
    fn rounding_knobs() {
        let lots = [lot(d(2025, 1, 1), "1.000")];
        let sched = ExitLoadSchedule::flat("1".parse().unwrap(), 365).unwrap();
        // Value 1 × 10.005 = 10.005; load 1 % = 0.10005.
        let half = redeem_fifo(&lots, u("1"), nav("10.005"), d(2025, 1, 2), &sched).unwrap();
        assert_eq!((half.gross, half.exit_load), (amt("10.01"), amt("0.10")));
        let trunc = RedemptionRounding {
            value: RoundingMode::Truncate,
            exit_load: RoundingMode::Truncate,
        };
        let t =
            redeem_fifo_with(&lots, u("1"), nav("10.005"), d(2025, 1, 2), &sched, trunc).unwrap();
        assert_eq!(
            (t.gross, t.exit_load, t.net),
            (amt("10.00"), amt("0.10"), amt("9.90"))
        );
        let r: RedemptionRounding = serde_json::from_str(r#"{"value":"truncate"}"#).unwrap();
        assert_eq!(r.value, RoundingMode::Truncate);
        assert_eq!(r.exit_load, RoundingMode::HalfUp);
    }
}
