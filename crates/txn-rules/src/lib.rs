//! # nivesh-txn-rules
//!
//! The rules that turn an order into money and units, as pure functions: no I/O, no clock, no
//! configuration lookups. The order and allotment services call these with the facts they hold
//! (when funds were realised, the published NAV, the investor's lots) and persist the answer, so
//! every rule is testable exhaustively and replayable from an event log.
//!
//! Modules:
//!
//! - [`cutoff`] — which NAV date a transaction gets (SEBI cut-offs, IST): [`SchemeClass`]
//!   (liquid / overnight / other, also [`classify`]-ied from AMFI category text), [`TxnKind`],
//!   the [`HolidayCalendar`] trait with the [`HolidaySet`] implementation, [`is_business_day`],
//!   [`next_business_day`] and the one rule function [`applicable_nav_date`]. Liquid and
//!   overnight purchases use the 13:30 "calendar day before" rule; everything else the 15:00
//!   business-day rule. A SWITCH is a redemption leg plus a purchase leg (call it twice); a SIP
//!   instalment is a purchase.
//! - [`allotment`] — the arithmetic of a transaction, all exact (integer paise and milli-units
//!   underneath, never `f64`):
//!   - purchases: [`stamp_duty`] (0.005 %, *inclusive* of the amount paid) and
//!     [`allot_purchase`] → [`PurchaseAllotment`], rounded per [`UnitsRounding`] (units
//!     truncated to 3 places and duty rounded half-up to the paisa by default);
//!   - redemptions: FIFO over [`Lot`]s with an exit load by holding period taken from an
//!     [`ExitLoadSchedule`] of [`LoadBand`]s (data, per scheme; the liquid-fund graded load and a
//!     flat "x % within n days" are built in): [`redeem_fifo`] by units, [`redeem_amount_fifo`]
//!     by target amount (units rounded *up*, see [`units_for_amount_up`]) and
//!     [`redeem_all_fifo`], each with a `_with` variant taking [`RedemptionRounding`]. The result
//!     is a [`Redemption`] with one [`LotConsumption`] per lot touched and the lots left.
//! - [`mod@xirr`] — the annualised return of dated cash flows ([`xirr()`]), Newton–Raphson with a
//!   bisection fallback on `f64` (a rate is an estimate, not money), returned as a `Decimal`
//!   rounded to 6 places.
//!
//! Errors: one [`Error`] enum for the crate (domain validation errors are wrapped, not
//! re-worded), and [`Result`] defaulting to it.

pub mod allotment;
pub mod cutoff;
mod error;
mod int;
pub mod xirr;

pub use allotment::{
    ExitLoadSchedule, LoadBand, Lot, LotConsumption, MAX_LOAD_PCT, PurchaseAllotment, Redemption,
    RedemptionRounding, STAMP_DUTY_PCT, UnitsRounding, allot_purchase, redeem_all_fifo,
    redeem_all_fifo_with, redeem_amount_fifo, redeem_amount_fifo_with, redeem_fifo,
    redeem_fifo_with, stamp_duty, units_for_amount_up,
};
pub use cutoff::{
    HolidayCalendar, HolidaySet, LIQUID_CUTOFF, MAX_BUSINESS_DAY_SEARCH, STANDARD_CUTOFF,
    SchemeClass, TxnKind, applicable_nav_date, classify, is_business_day, next_business_day,
};
pub use error::{Error, Result};
pub use xirr::xirr;
