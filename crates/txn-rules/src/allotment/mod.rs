//! Allotment and redemption arithmetic, exact to the paisa and the thousandth of a unit.
//!
//! Everything is computed on integers (paise, milli-units, the NAV's published mantissa) with
//! one explicit rounding per result, never on `f64` and never through a `Decimal` product that
//! could round silently past 28 digits. Every rounding is a parameter with the industry default:
//!
//! | quantity | default | knob |
//! |---|---|---|
//! | stamp duty, to the paisa | half-up | [`UnitsRounding::stamp_duty`] |
//! | units allotted, to 0.001 | truncate (never credit a fraction not paid for) | [`UnitsRounding::units`] |
//! | redemption value (units × NAV), to the paisa | half-up | [`RedemptionRounding::value`] |
//! | exit load, per lot, to the paisa | half-up | [`RedemptionRounding::exit_load`] |
//! | units for a redemption *by amount*, to 0.001 | **up** (fixed) | — |
//!
//! **Purchases.** Stamp duty (0.005 %) is *inclusive*: the investor pays `amount`, of which
//! `duty = amount × 0.005 / 100.005` goes to the state and `amount − duty` is invested, so that
//! `duty` is 0.005 % of what is invested. `duty + net_invested == gross` exactly, always: the
//! net is derived by subtraction, so rounding the duty can never lose or create a paisa.
//!
//! **Redemptions.** Units come out of [`Lot`]s first-in first-out by purchase date (ties keep
//! the caller's order). Each consumed slice pays the exit load of its own holding period, taken
//! from the scheme's [`ExitLoadSchedule`] (data: bands of days held → percent). The load is
//! rounded per lot, and [`Redemption::exit_load`] is the exact sum of the per-lot loads, so the
//! statement an investor sees adds up. The gross is `total units × NAV` rounded once (not a sum
//! of per-lot roundings), so it equals what the investor computes from the contract note.
//! `net = gross − exit_load`; loads are capped at [`MAX_LOAD_PCT`] per band, which is what
//! guarantees `exit_load <= gross` under every rounding mode.
//!
//! **Holding period.** `days_held = on − purchased_on` in calendar days, where `purchased_on`
//! is the lot's allotment (NAV) date and `on` the redemption's NAV date. "Day N" of a graded
//! load is `days_held == N`, except that a same-day exit (`days_held == 0`) is also Day 1:
//! SEBI's "Day 1" means redemption *within* one day of investment. So the liquid-fund load
//! charges 0.0070 % for 0 or 1 day held, 0.0065 % for 2, …, 0.0045 % for 6, and nothing from 7.
//!
//! **Redemption by amount** rounds the units *up*, so the investor receives at least the amount
//! asked for (before exit load) rather than a few paise less; when that would exceed the
//! holding, and the holding is worth at least the amount, the whole holding is redeemed instead
//! (never more units than held). Asking for more than the holding is worth is an error.

mod load;
mod purchase;
mod redemption;

pub use load::{ExitLoadSchedule, LoadBand, MAX_LOAD_PCT};
pub use purchase::{PurchaseAllotment, STAMP_DUTY_PCT, UnitsRounding, allot_purchase, stamp_duty};
pub use redemption::{
    Lot, LotConsumption, Redemption, RedemptionRounding, redeem_all_fifo, redeem_all_fifo_with,
    redeem_amount_fifo, redeem_amount_fifo_with, redeem_fifo, redeem_fifo_with,
    units_for_amount_up,
};
