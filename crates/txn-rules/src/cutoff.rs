//! Cut-off times and the applicable NAV date (SEBI rules, India Standard Time).
//!
//! The rule, as one function ([`applicable_nav_date`]):
//!
//! | transaction | scheme | on a business day, before cut-off | otherwise |
//! |---|---|---|---|
//! | purchase | liquid, overnight | calendar day **before** the day of realisation (cut-off 13:30) | calendar day before the **next business day** |
//! | purchase | other | the day of realisation (cut-off 15:00) | the next business day |
//! | redemption | any | the day the request is received (cut-off 15:00) | the next business day |
//!
//! Definitions used throughout:
//!
//! - **"before 13:30" / "before 15:00"** is strict, on the full IST wall-clock time including
//!   fractions of a second: 13:29:59.999 is before, **13:30:00 exactly is not** (it takes the
//!   "otherwise" column), and likewise 14:59:59 vs 15:00:00. SEBI words cut-offs as "up to
//!   3 p.m." for receipt and "before 1:30 p.m." for realisation; registrars time-stamp to the
//!   second and treat the cut-off instant itself as late, which is what we do for both.
//! - **Business day**: Monday to Friday and not in the [`HolidayCalendar`]. A realisation or
//!   request on a weekend or holiday is never "before cut-off on a business day", whatever the
//!   time, so it always takes the "otherwise" column: for liquid/overnight purchases that is the
//!   calendar day before the next business day (realised on Saturday → Sunday's NAV), for the
//!   rest the next business day.
//! - **Next business day** is the first business day strictly *after* the date of `at`.
//! - **The time that counts** is when funds are *realised* (credited to the scheme's account)
//!   for purchases, and when the request is *received* for redemptions; the caller supplies it.
//!   It is converted to IST first, so an instant given in UTC is judged on the Indian clock.
//!
//! Liquid and overnight schemes publish a NAV for every calendar day, weekends and holidays
//! included, which is why their purchase rule can land on a Sunday. Every other result is a
//! business day.
//!
//! A SWITCH is two calls (a redemption leg on the source scheme, a purchase leg on the target,
//! whose realisation time is when the redemption proceeds are available); a SIP instalment is a
//! purchase.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};
use nivesh_domain::time::{IstDateTime, ist};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Cut-off for liquid and overnight *purchases* (funds realised strictly before it).
pub const LIQUID_CUTOFF: NaiveTime = hms(13, 30);

/// Cut-off for every other purchase and for all redemptions.
pub const STANDARD_CUTOFF: NaiveTime = hms(15, 0);

/// How far [`next_business_day`] looks before concluding the calendar is broken. A year: no
/// real market closes for that long, and an unbounded search would hang on a calendar that
/// answers "holiday" for every date.
pub const MAX_BUSINESS_DAY_SEARCH: u32 = 366;

const fn hms(h: u32, m: u32) -> NaiveTime {
    match NaiveTime::from_hms_opt(h, m, 0) {
        Some(t) => t,
        // Evaluated at compile time: a bad constant fails the build, never a request.
        None => panic!("invalid cut-off time"),
    }
}

/// Which cut-off family a scheme belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemeClass {
    Liquid,
    Overnight,
    Other,
}

impl SchemeClass {
    /// Liquid and overnight schemes publish a NAV for every calendar day.
    pub fn has_calendar_day_nav(self) -> bool {
        matches!(self, SchemeClass::Liquid | SchemeClass::Overnight)
    }
}

/// Classifies an AMFI scheme category, e.g. `"Open Ended Schemes(Debt Scheme - Liquid Fund)"`
/// or `"Debt Scheme - Overnight Fund"`, case-insensitively.
///
/// Matches the whole *words* `liquid` and `overnight` rather than substrings, so a category
/// that merely contains the letters (say, "Illiquid") is not mistaken for one. Anything else
/// is [`SchemeClass::Other`], which gets the stricter 15:00 business-day rule: misclassifying a
/// liquid fund as other delays an allotment by a day, the reverse would back-date it.
pub fn classify(category: &str) -> SchemeClass {
    let has_word = |w: &str| {
        category
            .split(|c: char| !c.is_alphanumeric())
            .any(|t| t.eq_ignore_ascii_case(w))
    };
    if has_word("overnight") {
        SchemeClass::Overnight
    } else if has_word("liquid") {
        SchemeClass::Liquid
    } else {
        SchemeClass::Other
    }
}

/// The side of the transaction. A SWITCH is a redemption leg plus a purchase leg; a SIP
/// instalment is a purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnKind {
    Purchase,
    Redemption,
}

/// Market holidays (weekdays on which no NAV is struck for non-liquid schemes). Weekends are
/// handled by [`is_business_day`]; a calendar may list them too, harmlessly.
pub trait HolidayCalendar {
    fn is_holiday(&self, d: NaiveDate) -> bool;
}

impl<C: HolidayCalendar + ?Sized> HolidayCalendar for &C {
    fn is_holiday(&self, d: NaiveDate) -> bool {
        (**self).is_holiday(d)
    }
}

impl<C: HolidayCalendar + ?Sized> HolidayCalendar for Arc<C> {
    fn is_holiday(&self, d: NaiveDate) -> bool {
        (**self).is_holiday(d)
    }
}

impl<C: HolidayCalendar + ?Sized> HolidayCalendar for Box<C> {
    fn is_holiday(&self, d: NaiveDate) -> bool {
        (**self).is_holiday(d)
    }
}

impl HolidayCalendar for BTreeSet<NaiveDate> {
    fn is_holiday(&self, d: NaiveDate) -> bool {
        self.contains(&d)
    }
}

/// A holiday calendar held as a sorted set of dates; loaded from configuration as a JSON/TOML
/// list of ISO dates (`["2025-03-14", "2025-08-27"]`) and editable at run time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HolidaySet(BTreeSet<NaiveDate>);

impl HolidaySet {
    /// An empty calendar: only weekends are closed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a holiday; `false` if it was already listed.
    pub fn insert(&mut self, d: NaiveDate) -> bool {
        self.0.insert(d)
    }

    /// Removes a holiday (a declared holiday that was called off); `false` if it was absent.
    pub fn remove(&mut self, d: NaiveDate) -> bool {
        self.0.remove(&d)
    }

    pub fn contains(&self, d: NaiveDate) -> bool {
        self.0.contains(&d)
    }

    /// The holidays in date order.
    pub fn iter(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.0.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl HolidayCalendar for HolidaySet {
    fn is_holiday(&self, d: NaiveDate) -> bool {
        self.0.contains(&d)
    }
}

impl FromIterator<NaiveDate> for HolidaySet {
    fn from_iter<I: IntoIterator<Item = NaiveDate>>(iter: I) -> Self {
        HolidaySet(iter.into_iter().collect())
    }
}

impl Extend<NaiveDate> for HolidaySet {
    fn extend<I: IntoIterator<Item = NaiveDate>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl From<BTreeSet<NaiveDate>> for HolidaySet {
    fn from(s: BTreeSet<NaiveDate>) -> Self {
        HolidaySet(s)
    }
}

/// Monday to Friday and not a holiday.
pub fn is_business_day(d: NaiveDate, cal: &dyn HolidayCalendar) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !cal.is_holiday(d)
}

/// The first business day strictly after `d`.
///
/// Errors with [`Error::NoBusinessDay`] when none exists within [`MAX_BUSINESS_DAY_SEARCH`]
/// days (a broken calendar) or before the end of chrono's date range.
pub fn next_business_day(d: NaiveDate, cal: &dyn HolidayCalendar) -> Result<NaiveDate> {
    let mut day = d;
    for _ in 0..MAX_BUSINESS_DAY_SEARCH {
        match day.succ_opt() {
            Some(next) if is_business_day(next, cal) => return Ok(next),
            Some(next) => day = next,
            None => break,
        }
    }
    Err(Error::NoBusinessDay {
        from: d,
        searched_days: MAX_BUSINESS_DAY_SEARCH,
    })
}

/// The NAV date a transaction is priced at; see the [module docs](self) for the full rule and
/// the exact meaning of "before the cut-off".
///
/// `at` is when the funds were realised (purchases) or the request received (redemptions). It
/// is judged in IST whatever offset it carries.
///
/// Returns a `Result` rather than a bare date only because a calendar can be misconfigured
/// (no business day within a year): see [`next_business_day`].
pub fn applicable_nav_date(
    kind: TxnKind,
    class: SchemeClass,
    at: IstDateTime,
    cal: &dyn HolidayCalendar,
) -> Result<NaiveDate> {
    let local = at.with_timezone(&ist());
    let day = local.date_naive();
    let time = local.time();
    let open = is_business_day(day, cal);
    match kind {
        TxnKind::Purchase if class.has_calendar_day_nav() => {
            let base = if open && time < LIQUID_CUTOFF {
                day
            } else {
                next_business_day(day, cal)?
            };
            // Only fails at chrono's minimum date; an error beats a wrong price.
            base.pred_opt().ok_or(Error::Overflow("NAV date"))
        }
        TxnKind::Purchase | TxnKind::Redemption => {
            if open && time < STANDARD_CUTOFF {
                Ok(day)
            } else {
                next_business_day(day, cal)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// AMFI category texts classify by whole word, case-insensitively; the rest is Other.
    #[test]
    fn classifies_amfi_categories() {
        let cases = [
            (
                "Open Ended Schemes(Debt Scheme - Liquid Fund)",
                SchemeClass::Liquid,
            ),
            ("Debt Scheme - Overnight Fund", SchemeClass::Overnight),
            ("OVERNIGHT", SchemeClass::Overnight),
            ("liquid", SchemeClass::Liquid),
            (
                "Open Ended Schemes(Equity Scheme - Large Cap Fund)",
                SchemeClass::Other,
            ),
            (
                "Debt Scheme - Ultra Short Duration Fund",
                SchemeClass::Other,
            ),
            ("Illiquid assets", SchemeClass::Other),
            ("", SchemeClass::Other),
        ];
        for (text, want) in cases {
            assert_eq!(classify(text), want, "{text:?}");
        }
    }

    /// A calendar that closes every day makes the search fail instead of looping forever.
    #[test]
    fn broken_calendar_is_an_error() {
        struct AlwaysClosed;
        impl HolidayCalendar for AlwaysClosed {
            fn is_holiday(&self, _: NaiveDate) -> bool {
                true
            }
        }
        let from = d(2025, 1, 1);
        assert_eq!(
            next_business_day(from, &AlwaysClosed),
            Err(Error::NoBusinessDay {
                from,
                searched_days: MAX_BUSINESS_DAY_SEARCH
            })
        );
        assert!(next_business_day(NaiveDate::MAX, &HolidaySet::new()).is_err());
    }

    /// The holiday set loads from a JSON list of ISO dates and answers through every wrapper.
    #[test]
    fn holiday_set_config_and_wrappers() {
        let set: HolidaySet = serde_json::from_str(r#"["2025-08-27","2025-03-14"]"#).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [d(2025, 3, 14), d(2025, 8, 27)]
        );
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"["2025-03-14","2025-08-27"]"#
        );
        let wed = d(2025, 8, 27);
        assert!(!is_business_day(wed, &set));
        assert!(!is_business_day(wed, &Arc::new(set.clone())));
        assert!(!is_business_day(wed, &Box::new(set.clone())));
        let raw: BTreeSet<NaiveDate> = set.iter().collect();
        assert!(!is_business_day(wed, &raw));
        let mut edited = set.clone();
        assert!(edited.remove(wed));
        assert!(!edited.remove(wed));
        assert!(is_business_day(wed, &edited));
        assert!(edited.insert(wed));
        assert!(!edited.insert(wed));
        assert_eq!(edited, set);
        assert!(HolidaySet::new().is_empty());
        assert!(serde_json::from_str::<HolidaySet>(r#"["2025-02-30"]"#).is_err());
    }
}
