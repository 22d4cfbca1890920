//! # nivesh-domain
//!
//! The vocabulary every Nivesh service speaks, as parsed newtypes ("parse, don't validate"):
//! each constructor rejects bad input with a precise [`DomainError`], so holding a value of one
//! of these types is proof that it is valid. Nothing here does I/O.
//!
//! Modules (all items are re-exported at the crate root, except [`time`]):
//!
//! - `error` — [`DomainError`] (kind + precise reason; PAN errors are [`DomainError::Redacted`]
//!   and never contain the value), [`Result`], and the [`kind`] labels for matching.
//! - `ids` — [`SchemeCode`] (AMFI/registrar code, trimmed, `[A-Z0-9]{1,16}`), [`InvestorId`]
//!   (`[A-Za-z0-9_-]{1,64}`), [`OrderId`] (UUID, v7 when minted so ids sort by time),
//!   [`IdempotencyKey`] (`[A-Za-z0-9_.:-]{8,128}`).
//! - `isin` — [`Isin`], check digit verified (letters → 10..35, then Luhn).
//! - `pan` — [`Pan`] and [`PanHolderType`]; `Debug`/`Display` mask to `XXXXXX234F`, serde and
//!   [`Pan::expose`] give the raw value.
//! - `decimal` — [`RoundingMode`] plus the strict numeral grammar shared by the money types
//!   (no `1e3`, `1_000`, `+5`: `Decimal::from_str` accepts those and silently rounds).
//! - `amount` — [`Amount`]: INR, `>= 0`, always 2 places (`"1000.50"`).
//! - `nav` — [`Nav`]: `> 0`, up to 10 places, keeps the published scale (`"103.9450"` stays)
//!   while comparing by value.
//! - `units` — [`Units`]: `>= 0`, always 3 places; exact allotment ([`Units::for_amount`]) and
//!   valuation ([`Units::value_at`]) by integer arithmetic.
//! - [`time`] — IST as a fixed `+05:30` (no DST since 1945, so no tz database), the [`time::Clock`]
//!   trait with [`time::SystemClock`] and an advanceable [`time::FixedClock`], and
//!   [`time::parse_nav_date`] for `25-Feb-2025` / `2025-02-25`.
//!
//! Conventions shared by every type: `FromStr`, `TryFrom<String>`, `TryFrom<&str>` and
//! `Display` agree; serde goes through the string form (decimals are JSON *strings*, never
//! numbers, so no client routes them through `f64`) and validates on deserialisation.

#[macro_use]
mod macros;

mod amount;
mod decimal;
mod error;
mod ids;
mod isin;
mod nav;
mod pan;
pub mod time;
mod units;

pub use amount::Amount;
pub use decimal::RoundingMode;
pub use error::{DomainError, MAX_ECHO_CHARS, Result, kind};
pub use ids::{IdempotencyKey, InvestorId, OrderId, SchemeCode};
pub use isin::Isin;
pub use nav::{NAV_MAX_PLACES, Nav};
pub use pan::{Pan, PanHolderType};
pub use units::Units;

/// Re-exported so callers name the same `Decimal` these types are built on.
pub use rust_decimal::Decimal;
