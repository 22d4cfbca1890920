//! The single error type of the crate.

use chrono::NaiveDate;
use nivesh_domain::{Amount, DomainError, Nav, Units};

/// Why a transaction rule could not produce an answer.
///
/// Every variant is a fact about the *input* (or a misconfiguration) that the caller can
/// report; none is retryable, because the functions are pure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A computed value could not become a domain type (e.g. it is too large to represent).
    #[error(transparent)]
    Domain(#[from] DomainError),

    /// A purchase of ₹0.00: nothing to allot, and stamp duty on it would be meaningless.
    #[error("the purchase amount is zero")]
    ZeroAmount,

    /// The amount, after stamp duty, buys less than 0.001 unit at this NAV. Taking the money
    /// and allotting nothing is never acceptable, so it is refused before payment is kept.
    #[error("{amount} buys no units at NAV {nav} (less than 0.001 unit after stamp duty)")]
    NoUnitsAllotted { amount: Amount, nav: Nav },

    /// A redemption of zero units, of ₹0.00, or of "all units" from an empty holding.
    #[error("nothing to redeem")]
    NothingToRedeem,

    /// More units were asked for than the lots hold.
    #[error("cannot redeem {requested} units: only {held} held")]
    InsufficientUnits { requested: Units, held: Units },

    /// A redemption by amount asked for more than the whole holding is worth at this NAV.
    #[error("cannot redeem {requested}: the holding is worth {available}")]
    InsufficientValue {
        requested: Amount,
        available: Amount,
    },

    /// FIFO had to consume a lot bought after the redemption date: those units were not held
    /// on that date, so the request exceeds what was held then.
    #[error("lot {lot_index} was purchased on {purchased_on}, after the redemption date {on}")]
    LotAfterRedemption {
        lot_index: usize,
        purchased_on: NaiveDate,
        on: NaiveDate,
    },

    /// An exit-load schedule that overlaps, is out of range or is otherwise unusable.
    #[error("invalid exit load schedule: {0}")]
    InvalidLoadSchedule(String),

    /// The calendar has no business day within the searched window: it is misconfigured
    /// (e.g. a calendar that marks every day a holiday), and guessing a date would misprice.
    #[error("no business day within {searched_days} days after {from}: check the holiday calendar")]
    NoBusinessDay { from: NaiveDate, searched_days: u32 },

    /// An exact intermediate (paise × NAV digits × load digits) exceeded 128 bits. Only
    /// absurd inputs get here; failing beats rounding silently.
    #[error("{0} is too large to compute exactly")]
    Overflow(&'static str),
}

/// Crate-wide result, defaulting to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
