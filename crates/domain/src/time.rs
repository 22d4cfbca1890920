//! India Standard Time and the clock abstraction.
//!
//! IST is a fixed UTC+05:30: India has observed no daylight saving since 1945, so a
//! `FixedOffset` is exact for every date we handle, and we avoid shipping the tz database
//! (`chrono-tz`) and its yearly updates for a zone that never changes.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

use crate::error::kind;
use crate::{DomainError, Result};

/// A point in time expressed in IST (`+05:30`).
pub type IstDateTime = DateTime<FixedOffset>;

const IST_OFFSET_SECS: i32 = 5 * 3600 + 30 * 60;
const IST: FixedOffset = match FixedOffset::east_opt(IST_OFFSET_SECS) {
    Some(o) => o,
    // Evaluated at compile time: a bad constant fails the build, never a request.
    None => panic!("IST offset out of range"),
};

/// The IST offset, UTC+05:30.
pub fn ist() -> FixedOffset {
    IST
}

pub fn to_ist(t: DateTime<Utc>) -> IstDateTime {
    t.with_timezone(&IST)
}

pub fn now_ist() -> IstDateTime {
    to_ist(Utc::now())
}

/// The calendar date in India at instant `t` (what a NAV date or a cut-off refers to).
pub fn ist_date(t: DateTime<Utc>) -> NaiveDate {
    to_ist(t).date_naive()
}

/// The instant at wall-clock `time` on `date` in India. Never ambiguous: IST has no DST.
pub fn ist_datetime(date: NaiveDate, time: NaiveTime) -> IstDateTime {
    let local = NaiveDateTime::new(date, time);
    // A fixed offset has no gaps or folds, so `single()` only fails within 5.5 hours of
    // chrono's year ±262143 limits; answering there beats panicking in a date helper.
    local
        .and_local_timezone(IST)
        .single()
        .unwrap_or_else(|| DateTime::from_naive_utc_and_offset(local, IST))
}

/// Source of "now", injected so tests and replays control time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    fn now_ist(&self) -> IstDateTime {
        to_ist(self.now())
    }

    /// Today's date in India.
    fn today_ist(&self) -> NaiveDate {
        ist_date(self.now())
    }
}

/// Lets a test keep an `Arc<FixedClock>` to advance while the code under test holds a clone
/// (as `impl Clock` or `Arc<dyn Clock>`).
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The wall clock shifted by a fixed offset: a "business clock" for demos and end-to-end tests
/// that replay a past business day (the fleet's `--business-date`) while time still flows.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock {
    offset: TimeDelta,
}

impl OffsetClock {
    pub fn new(offset: TimeDelta) -> Self {
        OffsetClock { offset }
    }

    /// A clock that reads `start` now and advances in real time from there.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        OffsetClock::new(start - Utc::now())
    }

    pub fn offset(&self) -> TimeDelta {
        self.offset
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

/// A clock that only moves when told to; shared by reference (`&self` setters) so a test can
/// advance it while services read it.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn new(t: DateTime<Utc>) -> Self {
        FixedClock(Mutex::new(t))
    }

    /// A clock at wall-clock `time` on `date` in India: how tests naturally state scenarios
    /// ("15:00 IST on the 25th").
    pub fn at_ist(date: NaiveDate, time: NaiveTime) -> Self {
        Self::new(ist_datetime(date, time).with_timezone(&Utc))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.lock() = t;
    }

    /// Moves the clock by `by` (negative moves it back) and returns the new time.
    pub fn advance(&self, by: TimeDelta) -> DateTime<Utc> {
        let mut g = self.lock();
        *g += by;
        *g
    }

    // A panic while holding the guard cannot leave a `DateTime` half-written, so a poisoned
    // lock still holds a valid time; propagating the poison would only cascade test failures.
    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parses the dates NAV sources use: AMFI's `25-Feb-2025` (month name in any case) and ISO
/// `2025-02-25`. Surrounding whitespace is trimmed.
///
/// Hand-written rather than `NaiveDate::parse_from_str` with two formats: chrono's `%b` also
/// accepts full month names and `%d` unpadded days in ways that vary by version, and a failed
/// two-format attempt can only say "input is out of range"; here every error says which part
/// is wrong.
pub fn parse_nav_date(s: &str) -> Result<NaiveDate> {
    let t = s.trim();
    let err = |reason: String| DomainError::invalid(kind::NAV_DATE, s, reason);
    if t.is_empty() {
        return Err(err("is empty".into()));
    }
    let parts: Vec<&str> = t.split('-').collect();
    let [a, b, c] = parts[..] else {
        return Err(err(
            "expected DD-Mon-YYYY (25-Feb-2025) or YYYY-MM-DD (2025-02-25)".into(),
        ));
    };
    let num = |p: &str, what: &str, len: std::ops::RangeInclusive<usize>| -> Result<u32> {
        if !len.contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit()) {
            let digits = if len.start() == len.end() {
                len.start().to_string()
            } else {
                format!("{}-{}", len.start(), len.end())
            };
            return Err(err(format!("{what} {p:?} must be {digits} digits")));
        }
        p.parse()
            .map_err(|_| err(format!("{what} {p:?} is not a number")))
    };
    let (year, month, day) = if a.len() == 4 {
        (
            num(a, "year", 4..=4)?,
            num(b, "month", 2..=2)?,
            num(c, "day", 2..=2)?,
        )
    } else {
        let month = MONTHS
            .iter()
            .position(|m| m.eq_ignore_ascii_case(b))
            .ok_or_else(|| {
                err(format!(
                    "month {b:?} is not a three-letter English month (Jan..Dec)"
                ))
            })?;
        (
            num(c, "year", 4..=4)?,
            month as u32 + 1,
            num(a, "day", 1..=2)?,
        )
    };
    let year = i32::try_from(year).map_err(|_| err("year out of range".into()))?;
    if !(1..=12).contains(&month) {
        return Err(err(format!("month {month} is not 1 to 12")));
    }
    NaiveDate::from_ymd_opt(year, month, day)
        .ok_or_else(|| err(format!("day {day} does not exist in {year}-{month:02}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Conversion to IST shifts by +05:30 and can change the calendar date.
    #[test]
    fn to_ist_and_ist_date() {
        let t = utc("2025-02-25T20:00:00Z");
        let i = to_ist(t);
        assert_eq!(i.to_rfc3339(), "2025-02-26T01:30:00+05:30");
        assert_eq!(ist_date(t), NaiveDate::from_ymd_opt(2025, 2, 26).unwrap());
        assert_eq!(
            ist_date(utc("2025-02-25T18:29:59Z")),
            NaiveDate::from_ymd_opt(2025, 2, 25).unwrap()
        );
        assert_eq!(
            ist_date(utc("2025-02-25T18:30:00Z")),
            NaiveDate::from_ymd_opt(2025, 2, 26).unwrap()
        );
        assert_eq!(ist().local_minus_utc(), 19800);
        assert_eq!(now_ist().offset().local_minus_utc(), 19800);
    }

    /// An IST wall-clock time maps to the right instant (15:00 IST = 09:30 UTC).
    #[test]
    fn ist_datetime_is_the_right_instant() {
        let d = NaiveDate::from_ymd_opt(2025, 2, 25).unwrap();
        let t = ist_datetime(d, NaiveTime::from_hms_opt(15, 0, 0).unwrap());
        assert_eq!(t.to_rfc3339(), "2025-02-25T15:00:00+05:30");
        assert_eq!(t.with_timezone(&Utc), utc("2025-02-25T09:30:00Z"));
    }

    /// The fixed clock moves only when set or advanced, also through an `Arc<dyn Clock>`.
    #[test]
    fn fixed_clock_is_controllable() {
        let d = NaiveDate::from_ymd_opt(2025, 2, 25).unwrap();
        let clock = Arc::new(FixedClock::at_ist(
            d,
            NaiveTime::from_hms_opt(14, 59, 0).unwrap(),
        ));
        let shared: Arc<dyn Clock> = clock.clone();
        assert_eq!(shared.now(), utc("2025-02-25T09:29:00Z"));
        clock.advance(TimeDelta::minutes(2));
        assert_eq!(shared.now_ist().to_rfc3339(), "2025-02-25T15:01:00+05:30");
        clock.advance(TimeDelta::hours(9));
        assert_eq!(
            shared.today_ist(),
            NaiveDate::from_ymd_opt(2025, 2, 26).unwrap()
        );
        clock.set(utc("2024-01-01T00:00:00Z"));
        assert_eq!(Clock::now(&clock), utc("2024-01-01T00:00:00Z"));
        let sys = SystemClock.now();
        assert!((Utc::now() - sys).num_seconds().abs() < 60);
    }

    /// AMFI and ISO date forms parse, month names in any case.
    #[test]
    fn parses_nav_dates() {
        let want = NaiveDate::from_ymd_opt(2025, 2, 25).unwrap();
        for s in [
            "25-Feb-2025",
            "25-FEB-2025",
            "25-feb-2025",
            "2025-02-25",
            " 25-Feb-2025 ",
        ] {
            assert_eq!(parse_nav_date(s).unwrap(), want, "{s}");
        }
        assert_eq!(
            parse_nav_date("5-Mar-2024").unwrap(),
            NaiveDate::from_ymd_opt(2024, 3, 5).unwrap()
        );
        assert_eq!(
            parse_nav_date("29-Feb-2024").unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
        );
    }

    /// Bad dates name the part that is wrong.
    #[test]
    fn nav_date_rejections() {
        for (bad, needle) in [
            ("", "empty"),
            ("25/02/2025", "expected DD-Mon-YYYY"),
            ("25-Fbr-2025", "month \"Fbr\""),
            ("25-February-2025", "three-letter"),
            ("29-Feb-2025", "does not exist"),
            ("2025-13-01", "month 13"),
            ("2025-2-25", "month \"2\" must be 2 digits"),
            ("25-Feb-25", "year \"25\" must be 4 digits"),
            ("x5-Feb-2025", "day \"x5\""),
            ("2025-02-30", "does not exist"),
        ] {
            let e = parse_nav_date(bad).unwrap_err();
            assert_eq!(e.kind(), kind::NAV_DATE);
            assert!(e.reason().contains(needle), "{bad:?}: {e}");
        }
    }
}
