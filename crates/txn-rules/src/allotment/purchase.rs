//! Purchase allotment: inclusive stamp duty, then units at the applicable NAV.

use nivesh_domain::{Amount, Decimal, Nav, RoundingMode, Units};
use serde::{Deserialize, Serialize};

use crate::int::{amount_from_paise, div_round, pow10};
use crate::{Error, Result};

/// Stamp duty on mutual-fund purchases since 1 July 2020: 0.005 % of the amount invested.
pub const STAMP_DUTY_PCT: Decimal = Decimal::from_parts(5, 0, 0, false, 3);

/// The rounding policy of one AMC's allotments. Defaults: units truncated to 3 places (the
/// investor is never credited a fraction of a unit not paid for), duty half-up to the paisa
/// (commercial rounding, what registrars apply). Deserialises with any field omitted taking
/// its default, so an AMC's configuration names only what differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct UnitsRounding {
    pub units: RoundingMode,
    pub stamp_duty: RoundingMode,
}

impl Default for UnitsRounding {
    fn default() -> Self {
        UnitsRounding {
            units: RoundingMode::Truncate,
            stamp_duty: RoundingMode::HalfUp,
        }
    }
}

/// The outcome of a purchase: `gross = stamp_duty + net_invested` exactly, and
/// `units = net_invested / nav` rounded per [`UnitsRounding::units`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseAllotment {
    pub gross: Amount,
    pub stamp_duty: Amount,
    pub net_invested: Amount,
    pub nav: Nav,
    pub units: Units,
}

/// The stamp duty contained in `amount` paid: `amount × 0.005 / 100.005`, rounded to the
/// paisa by `mode` (half-up is the norm).
///
/// Computed as one exact integer division, `paise × q / (100·10^t + q)` for a rate of
/// `q / 10^t` percent (`5 / 100005` today). With today's rate the exact quotient is never a
/// half-paisa tie (the divisor 20001 is odd), so half-up and half-even agree; the mode still
/// matters to an AMC that truncates.
pub fn stamp_duty(amount: Amount, mode: RoundingMode) -> Result<Amount> {
    let rate = STAMP_DUTY_PCT.normalize();
    let q = u128::try_from(rate.mantissa()).map_err(|_| Error::Overflow("stamp duty rate"))?;
    let den = pow10(rate.scale(), "stamp duty rate")?
        .checked_mul(100)
        .and_then(|d| d.checked_add(q))
        .ok_or(Error::Overflow("stamp duty rate"))?;
    let num = amount
        .to_paise()
        .checked_mul(q)
        .ok_or(Error::Overflow("stamp duty"))?;
    amount_from_paise(div_round(num, den, mode))
}

/// Allots units for `amount` paid at `nav`: stamp duty out first (inclusive), the rest buys
/// units. Errors on a zero amount and when the rest buys less than 0.001 unit.
pub fn allot_purchase(
    amount: Amount,
    nav: Nav,
    rounding: UnitsRounding,
) -> Result<PurchaseAllotment> {
    if amount.is_zero() {
        return Err(Error::ZeroAmount);
    }
    let duty = stamp_duty(amount, rounding.stamp_duty)?;
    // The duty is at most `amount / 20001` rounded, so it never exceeds `amount`; the error
    // arm exists so a future rate change cannot turn into a panic.
    let net = amount
        .checked_sub(duty)
        .ok_or(Error::Overflow("stamp duty exceeding the amount"))?;
    let units = Units::for_amount(net, nav, rounding.units)?;
    if units.is_zero() {
        return Err(Error::NoUnitsAllotted { amount, nav });
    }
    Ok(PurchaseAllotment {
        gross: amount,
        stamp_duty: duty,
        net_invested: net,
        nav,
        units,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amt(s: &str) -> Amount {
        Amount::parse(s).unwrap()
    }

    /// The rate constant is 0.005 %, and duty on typical amounts matches hand-worked values.
    #[test]
    fn duty_on_known_amounts() {
        assert_eq!(STAMP_DUTY_PCT.to_string(), "0.005");
        // (paid, duty): 10000 / 20001 = 0.49997… → 0.50; 1000 / 20001 = 0.049997… → 0.05;
        // 100 / 20001 = 0.0049997… → 0.00 (just under half a paisa).
        let cases = [
            ("10000.00", "0.50"),
            ("1000.00", "0.05"),
            ("100.00", "0.00"),
            ("100.02", "0.01"),
            ("500000.00", "25.00"),
            ("0.01", "0.00"),
        ];
        for (paid, duty) in cases {
            assert_eq!(
                stamp_duty(amt(paid), RoundingMode::HalfUp).unwrap(),
                amt(duty),
                "{paid}"
            );
        }
        assert_eq!(
            stamp_duty(amt("10000.00"), RoundingMode::Truncate).unwrap(),
            amt("0.49")
        );
    }

    /// A worked allotment: ₹10,000 at NAV 103.9450 → duty 0.50, 9,999.50 invested, 96.199 units.
    #[test]
    fn worked_allotment() {
        let a = allot_purchase(
            amt("10000"),
            Nav::parse("103.9450").unwrap(),
            UnitsRounding::default(),
        )
        .unwrap();
        assert_eq!(a.gross, amt("10000.00"));
        assert_eq!(a.stamp_duty, amt("0.50"));
        assert_eq!(a.net_invested, amt("9999.50"));
        // 9999.50 / 103.9450 = 96.19991… (truncated, not rounded up to 96.200)
        assert_eq!(a.units, Units::parse("96.199").unwrap());
        assert_eq!(a.nav.to_string(), "103.9450");
    }

    /// Zero amounts and amounts too small for one thousandth of a unit are refused.
    #[test]
    fn refusals() {
        let nav = Nav::parse("1000").unwrap();
        assert_eq!(
            allot_purchase(Amount::zero(), nav, UnitsRounding::default()),
            Err(Error::ZeroAmount)
        );
        assert_eq!(
            allot_purchase(amt("0.99"), nav, UnitsRounding::default()),
            Err(Error::NoUnitsAllotted {
                amount: amt("0.99"),
                nav
            })
        );
        // ₹1.00 at 1000 is exactly 0.001 unit.
        assert_eq!(
            allot_purchase(amt("1.00"), nav, UnitsRounding::default())
                .unwrap()
                .units,
            Units::parse("0.001").unwrap()
        );
    }

    /// The rounding policy deserialises partially, defaulting the omitted fields.
    #[test]
    fn rounding_policy_config() {
        let r: UnitsRounding = serde_json::from_str(r#"{"units":"half_up"}"#).unwrap();
        assert_eq!(r.units, RoundingMode::HalfUp);
        assert_eq!(r.stamp_duty, RoundingMode::HalfUp);
        let d: UnitsRounding = serde_json::from_str("{}").unwrap();
        assert_eq!(d, UnitsRounding::default());
        assert_eq!(d.units, RoundingMode::Truncate);
    }
}
