//! Applicable-NAV-date rules: table-driven scenarios on the 2025 calendar, then properties
//! checked against a restatement of the rule written independently of the implementation.

use chrono::{Datelike, FixedOffset, NaiveDate, NaiveTime, TimeDelta, TimeZone, Timelike, Weekday};
use nivesh_domain::time::{IstDateTime, ist_datetime};
use nivesh_txn_rules::{
    HolidaySet, SchemeClass, TxnKind, applicable_nav_date, is_business_day, next_business_day,
};
use proptest::prelude::*;

use SchemeClass::{Liquid, Other, Overnight};
use TxnKind::{Purchase, Redemption};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// `hh:mm:ss[.nnn]` on date `day`, IST.
fn at(day: NaiveDate, hms: &str) -> IstDateTime {
    let t = NaiveTime::parse_from_str(hms, "%H:%M:%S%.f").unwrap();
    ist_datetime(day, t)
}

/// NSE 2025: Holi on Friday 14 March, Ganesh Chaturthi on Wednesday 27 August.
fn cal_2025() -> HolidaySet {
    [d(2025, 3, 14), d(2025, 8, 27)].into_iter().collect()
}

struct Case {
    what: &'static str,
    kind: TxnKind,
    class: SchemeClass,
    day: NaiveDate,
    time: &'static str,
    want: NaiveDate,
}

fn case(
    what: &'static str,
    kind: TxnKind,
    class: SchemeClass,
    day: NaiveDate,
    time: &'static str,
    want: NaiveDate,
) -> Case {
    Case {
        what,
        kind,
        class,
        day,
        time,
        want,
    }
}

fn check(cases: &[Case]) {
    let cal = cal_2025();
    for c in cases {
        let got = applicable_nav_date(c.kind, c.class, at(c.day, c.time), &cal).unwrap();
        assert_eq!(
            got,
            c.want,
            "{}: {:?} {:?} at {} {} ({}) → got {} ({}), want {} ({})",
            c.what,
            c.kind,
            c.class,
            c.day,
            c.time,
            c.day.weekday(),
            got,
            got.weekday(),
            c.want,
            c.want.weekday()
        );
    }
}

/// The dates used below fall on the weekdays the scenarios claim.
#[test]
fn calendar_fixture_weekdays() {
    assert_eq!(d(2025, 3, 7).weekday(), Weekday::Fri);
    assert_eq!(d(2025, 3, 11).weekday(), Weekday::Tue);
    assert_eq!(d(2025, 3, 14).weekday(), Weekday::Fri);
    assert_eq!(d(2025, 8, 27).weekday(), Weekday::Wed);
    let cal = cal_2025();
    assert!(!is_business_day(d(2025, 3, 14), &cal));
    assert!(!is_business_day(d(2025, 3, 15), &cal));
    assert!(is_business_day(d(2025, 3, 13), &cal));
    assert_eq!(
        next_business_day(d(2025, 3, 13), &cal).unwrap(),
        d(2025, 3, 17)
    );
    assert_eq!(
        next_business_day(d(2025, 8, 26), &cal).unwrap(),
        d(2025, 8, 28)
    );
}

/// 14:59:59 is before the 15:00 cut-off and 15:00:00 is not, for other purchases and all redemptions.
#[test]
fn standard_cutoff_boundary() {
    let tue = d(2025, 3, 11);
    let wed = d(2025, 3, 12);
    check(&[
        case("just before", Purchase, Other, tue, "14:59:59", tue),
        case(
            "last nanosecond",
            Purchase,
            Other,
            tue,
            "14:59:59.999999999",
            tue,
        ),
        case("exactly at cut-off", Purchase, Other, tue, "15:00:00", wed),
        case("after", Purchase, Other, tue, "15:00:01", wed),
        case("midnight start", Purchase, Other, tue, "00:00:00", tue),
        case("redemption before", Redemption, Other, tue, "14:59:59", tue),
        case("redemption at", Redemption, Other, tue, "15:00:00", wed),
        case(
            "liquid redemption before",
            Redemption,
            Liquid,
            tue,
            "14:59:59",
            tue,
        ),
        case(
            "liquid redemption at",
            Redemption,
            Liquid,
            tue,
            "15:00:00",
            wed,
        ),
        case(
            "overnight redemption at",
            Redemption,
            Overnight,
            tue,
            "15:00:00",
            wed,
        ),
    ]);
}

/// Liquid/overnight purchases: 13:29 gets the previous calendar day, 13:30:00 and 13:31 do not.
#[test]
fn liquid_cutoff_boundary() {
    let mon = d(2025, 3, 10);
    let tue = d(2025, 3, 11);
    check(&[
        case("13:29", Purchase, Liquid, tue, "13:29:00", mon),
        case("13:29:59.999", Purchase, Liquid, tue, "13:29:59.999", mon),
        case(
            "exactly 13:30:00 is not before",
            Purchase,
            Liquid,
            tue,
            "13:30:00",
            tue,
        ),
        case("13:31", Purchase, Liquid, tue, "13:31:00", tue),
        case("overnight 13:29", Purchase, Overnight, tue, "13:29:00", mon),
        case("overnight 13:31", Purchase, Overnight, tue, "13:31:00", tue),
        case(
            "liquid at 14:59 is past its cut-off",
            Purchase,
            Liquid,
            tue,
            "14:59:00",
            tue,
        ),
        case(
            "Monday 00:00 gets Sunday",
            Purchase,
            Liquid,
            mon,
            "00:00:00",
            d(2025, 3, 9),
        ),
    ]);
}

/// Friday after the 15:00 cut-off rolls to Monday; before it stays Friday.
#[test]
fn friday_after_cutoff_rolls_to_monday() {
    let fri = d(2025, 3, 7);
    let mon = d(2025, 3, 10);
    check(&[
        case("purchase 15:00", Purchase, Other, fri, "15:00:00", mon),
        case("purchase 22:00", Purchase, Other, fri, "22:00:00", mon),
        case("purchase 14:00", Purchase, Other, fri, "14:00:00", fri),
        case("redemption 16:00", Redemption, Other, fri, "16:00:00", mon),
        case(
            "Saturday purchase",
            Purchase,
            Other,
            d(2025, 3, 8),
            "10:00:00",
            mon,
        ),
        case(
            "Sunday redemption",
            Redemption,
            Liquid,
            d(2025, 3, 9),
            "10:00:00",
            mon,
        ),
    ]);
}

/// Holidays roll forward: a Wednesday holiday, and a Friday holiday merged with the weekend.
#[test]
fn holidays_roll_forward() {
    let tue = d(2025, 8, 26);
    let wed_hol = d(2025, 8, 27);
    let thu = d(2025, 8, 28);
    let thu_pre_holi = d(2025, 3, 13);
    let holi = d(2025, 3, 14);
    let mon = d(2025, 3, 17);
    check(&[
        case(
            "Tue late → over Wed holiday",
            Purchase,
            Other,
            tue,
            "15:30:00",
            thu,
        ),
        case(
            "on the Wed holiday",
            Purchase,
            Other,
            wed_hol,
            "10:00:00",
            thu,
        ),
        case(
            "redemption on the holiday",
            Redemption,
            Other,
            wed_hol,
            "09:00:00",
            thu,
        ),
        case(
            "Thu before Fri holiday, late",
            Purchase,
            Other,
            thu_pre_holi,
            "15:30:00",
            mon,
        ),
        case(
            "Thu before Fri holiday, early",
            Purchase,
            Other,
            thu_pre_holi,
            "11:00:00",
            thu_pre_holi,
        ),
        case(
            "on the Fri holiday",
            Redemption,
            Other,
            holi,
            "10:00:00",
            mon,
        ),
        case(
            "Saturday after Fri holiday",
            Purchase,
            Other,
            d(2025, 3, 15),
            "10:00:00",
            mon,
        ),
    ]);
}

/// A liquid purchase realised on a weekend or holiday gets the day before the next business day.
#[test]
fn liquid_on_non_business_days() {
    let sun = d(2025, 3, 9);
    check(&[
        case(
            "Saturday morning",
            Purchase,
            Liquid,
            d(2025, 3, 8),
            "10:00:00",
            sun,
        ),
        case(
            "Saturday before 13:30 still not a business day",
            Purchase,
            Liquid,
            d(2025, 3, 8),
            "09:00:00",
            sun,
        ),
        case("Sunday night", Purchase, Liquid, sun, "23:00:00", sun),
        case(
            "on Holi (Fri) → Sun before Mon",
            Purchase,
            Liquid,
            d(2025, 3, 14),
            "10:00:00",
            d(2025, 3, 16),
        ),
        case(
            "on the Wed holiday → the holiday itself",
            Purchase,
            Overnight,
            d(2025, 8, 27),
            "10:00:00",
            d(2025, 8, 27),
        ),
    ]);
}

/// Liquid realised on a Friday after 13:30 gets Sunday (the day before Monday), before it Thursday.
#[test]
fn liquid_friday_gets_sunday() {
    let fri = d(2025, 3, 7);
    check(&[
        case(
            "Friday 14:00",
            Purchase,
            Liquid,
            fri,
            "14:00:00",
            d(2025, 3, 9),
        ),
        case(
            "Friday 13:00",
            Purchase,
            Liquid,
            fri,
            "13:00:00",
            d(2025, 3, 6),
        ),
        case(
            "Thu 14:00 before Fri holiday → Sun",
            Purchase,
            Liquid,
            d(2025, 3, 13),
            "14:00:00",
            d(2025, 3, 16),
        ),
        case(
            "Thu 13:00 before Fri holiday → Wed",
            Purchase,
            Liquid,
            d(2025, 3, 13),
            "13:00:00",
            d(2025, 3, 12),
        ),
        case(
            "day after a holiday, early → the holiday",
            Purchase,
            Liquid,
            d(2025, 8, 28),
            "10:00:00",
            d(2025, 8, 27),
        ),
    ]);
}

/// A redemption at 23:59 on the day before a holiday gets the next business day after it.
#[test]
fn late_redemption_before_holiday() {
    let thu = d(2025, 8, 28);
    check(&[
        case(
            "Tue 23:59 before Wed holiday",
            Redemption,
            Other,
            d(2025, 8, 26),
            "23:59:00",
            thu,
        ),
        case(
            "liquid too",
            Redemption,
            Liquid,
            d(2025, 8, 26),
            "23:59:59",
            thu,
        ),
        case(
            "Thu 23:59 before Holi Friday",
            Redemption,
            Other,
            d(2025, 3, 13),
            "23:59:00",
            d(2025, 3, 17),
        ),
    ]);
}

/// The instant is judged on the IST clock whatever offset it is given in.
#[test]
fn judged_in_ist_whatever_the_offset() {
    let cal = cal_2025();
    let utc = FixedOffset::east_opt(0).unwrap();
    let t = |s: &str| -> IstDateTime {
        utc.from_local_datetime(
            &chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap(),
        )
        .unwrap()
    };
    let cases = [
        // 09:29:59 UTC = 14:59:59 IST.
        ("2025-03-11 09:29:59", Purchase, Other, d(2025, 3, 11)),
        ("2025-03-11 09:30:00", Purchase, Other, d(2025, 3, 12)),
        // 19:00 UTC Monday = 00:30 IST Tuesday: a Tuesday liquid realisation before 13:30.
        ("2025-03-10 19:00:00", Purchase, Liquid, d(2025, 3, 10)),
        // 08:00 UTC = 13:30 IST: not before the liquid cut-off.
        ("2025-03-11 08:00:00", Purchase, Liquid, d(2025, 3, 11)),
    ];
    for (s, kind, class, want) in cases {
        assert_eq!(
            applicable_nav_date(kind, class, t(s), &cal).unwrap(),
            want,
            "{s}"
        );
    }
}

// ---- properties -------------------------------------------------------------------------

/// The test's own notion of a business day, written without the crate.
fn open(day: NaiveDate, hols: &HolidaySet) -> bool {
    day.weekday().num_days_from_monday() < 5 && !hols.contains(day)
}

fn base() -> NaiveDate {
    d(2024, 1, 1)
}

fn arb_at() -> impl Strategy<Value = IstDateTime> {
    (0u32..1100, 0u32..86_400, 0u32..1_000_000_000).prop_map(|(day, secs, nanos)| {
        let date = base() + TimeDelta::days(i64::from(day));
        let t = NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos).unwrap();
        ist_datetime(date, t)
    })
}

/// Holidays on up to 300 random days, sometimes clustered, around the generated instants.
fn arb_hols() -> impl Strategy<Value = HolidaySet> {
    prop::collection::vec(0u32..1200, 0..300).prop_map(|offs| {
        offs.into_iter()
            .map(|o| base() + TimeDelta::days(i64::from(o)))
            .collect()
    })
}

fn arb_kind_class() -> impl Strategy<Value = (TxnKind, SchemeClass)> {
    (
        prop_oneof![Just(Purchase), Just(Redemption)],
        prop_oneof![Just(Liquid), Just(Overnight), Just(Other)],
    )
}

/// Every combination priced on business days: redemptions of any class, other purchases.
fn arb_business_day_nav() -> impl Strategy<Value = (TxnKind, SchemeClass)> {
    prop_oneof![
        Just((Redemption, Liquid)),
        Just((Redemption, Overnight)),
        Just((Redemption, Other)),
        Just((Purchase, Other)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The result is never before the date of `at` minus one day, and only liquid/overnight
    /// purchases go before the date of `at` at all.
    #[test]
    fn never_before_the_day_before((kind, class) in arb_kind_class(), at in arb_at(), hols in arb_hols()) {
        let got = applicable_nav_date(kind, class, at, &hols).unwrap();
        let day = at.date_naive();
        prop_assert!(got >= day - TimeDelta::days(1), "{got} < {day} - 1");
        let calendar_nav = kind == Purchase && class != Other;
        if !calendar_nav {
            prop_assert!(got >= day);
        }
    }

    /// Anything but a liquid/overnight purchase is priced on a business day.
    #[test]
    fn non_liquid_lands_on_a_business_day((kind, class) in arb_business_day_nav(), at in arb_at(), hols in arb_hols()) {
        let got = applicable_nav_date(kind, class, at, &hols).unwrap();
        prop_assert!(open(got, &hols), "{got} ({}) is not a business day", got.weekday());
    }

    /// Later `at`, same or later NAV date.
    #[test]
    fn monotonic_in_at((kind, class) in arb_kind_class(), a in arb_at(), b in arb_at(), hols in arb_hols()) {
        let (early, late) = if a <= b { (a, b) } else { (b, a) };
        let x = applicable_nav_date(kind, class, early, &hols).unwrap();
        let y = applicable_nav_date(kind, class, late, &hols).unwrap();
        prop_assert!(x <= y, "{early} → {x} but {late} → {y}");
    }

    /// The full rule, restated: with `b` the business day the transaction is "booked" on (the
    /// result, or the day after it for calendar-NAV purchases), `b` is the first business day
    /// on or after the date of `at`, and equals that date exactly when it is a business day and
    /// the time is before the cut-off.
    #[test]
    fn matches_the_rule_restated((kind, class) in arb_kind_class(), at in arb_at(), hols in arb_hols()) {
        let got = applicable_nav_date(kind, class, at, &hols).unwrap();
        let calendar_nav = kind == Purchase && class != Other;
        let booked = if calendar_nav { got + TimeDelta::days(1) } else { got };
        let day = at.date_naive();
        let secs = at.time().num_seconds_from_midnight();
        let cutoff = if calendar_nav { 13 * 3600 + 30 * 60 } else { 15 * 3600 };
        let early = open(day, &hols) && secs < cutoff;
        prop_assert!(open(booked, &hols));
        prop_assert!(booked >= day);
        prop_assert_eq!(booked == day, early);
        let mut between = day + TimeDelta::days(1);
        while between < booked {
            prop_assert!(!open(between, &hols), "skipped business day {between}");
            between += TimeDelta::days(1);
        }
    }
}
