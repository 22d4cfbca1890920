//! XIRR against known values and against an NPV written here, independently of the crate.

use chrono::{NaiveDate, TimeDelta};
use nivesh_domain::Decimal;
use nivesh_txn_rules::xirr;
use proptest::prelude::*;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn flows(list: &[(NaiveDate, &str)]) -> Vec<(NaiveDate, Decimal)> {
    list.iter().map(|&(d, a)| (d, dec(a))).collect()
}

/// The test's own NPV: Actual/365 from the first listed date, in the rate `r` directly.
fn npv(cf: &[(NaiveDate, Decimal)], r: f64) -> f64 {
    let t0 = cf.iter().map(|c| c.0).min().unwrap();
    cf.iter()
        .map(|(dt, a)| {
            let years = (*dt - t0).num_days() as f64 / 365.0;
            a.to_string().parse::<f64>().unwrap() / (1.0 + r).powf(years)
        })
        .sum()
}

/// Whether the NPV changes sign within half a unit in the 6th place of `r` (widened to a
/// relative 1e-10 for astronomically large rates, which `f64` cannot resolve to 6 places).
fn brackets_root(cf: &[(NaiveDate, Decimal)], r: Decimal) -> Result<(), String> {
    let r: f64 = r.to_string().parse().unwrap();
    let delta = 5.000_001e-7f64.max(r.abs() * 1e-10);
    let (lo, hi) = (npv(cf, r - delta), npv(cf, r + delta));
    if lo.signum() != hi.signum() || lo == 0.0 || hi == 0.0 {
        Ok(())
    } else {
        Err(format!(
            "NPV({r} ± {delta}) = {lo}, {hi}: no root in between"
        ))
    }
}

fn assert_brackets_root(cf: &[(NaiveDate, Decimal)], r: Decimal) {
    if let Err(e) = brackets_root(cf, r) {
        panic!("{e}");
    }
}

/// 10,000 growing to 11,000 over 365 days is exactly 10 %.
#[test]
fn ten_percent_over_a_plain_year() {
    let cf = flows(&[(d(2025, 1, 1), "-10000"), (d(2026, 1, 1), "11000")]);
    assert_eq!(xirr(&cf), Some(dec("0.100000")));
}

/// 2024-01-01 to 2025-01-01 is 366 days, so the Actual/365 rate is 1.1^(365/366) − 1 ≈ 9.97 %.
#[test]
fn ten_percent_over_a_leap_year() {
    let cf = flows(&[(d(2024, 1, 1), "-10000"), (d(2025, 1, 1), "11000")]);
    let r = xirr(&cf).unwrap();
    let want = 1.1f64.powf(365.0 / 366.0) - 1.0;
    assert_eq!(r, dec(&format!("{want:.6}")));
    assert!((r - dec("0.1")).abs() < dec("0.001"), "≈10 %: {r}");
}

/// Excel's documented XIRR example (37.34 %), and the NPV changes sign around our answer.
#[test]
fn excel_textbook_example() {
    let cf = flows(&[
        (d(2008, 1, 1), "-10000"),
        (d(2008, 3, 1), "2750"),
        (d(2008, 10, 30), "4250"),
        (d(2009, 2, 15), "3250"),
        (d(2009, 4, 1), "2750"),
    ]);
    let r = xirr(&cf).unwrap();
    // Microsoft's documentation gives 0.373362535.
    assert_eq!(r, dec("0.373363"));
    assert_brackets_root(&cf, r);
}

/// A 12-month SIP of 5,000 valued at 64,000: the answer brackets the root of our own NPV.
#[test]
fn monthly_sip() {
    let mut cf: Vec<(NaiveDate, Decimal)> =
        (1..=12).map(|m| (d(2024, m, 5), dec("-5000"))).collect();
    cf.push((d(2025, 1, 5), dec("64000")));
    let r = xirr(&cf).unwrap();
    assert!(r > dec("0.1") && r < dec("0.3"), "{r}");
    assert_brackets_root(&cf, r);
}

/// A loss gives a negative rate: 1,000 to 900 in a plain year is −10 %.
#[test]
fn negative_return() {
    let cf = flows(&[(d(2025, 1, 1), "-1000"), (d(2026, 1, 1), "900")]);
    assert_eq!(xirr(&cf), Some(dec("-0.100000")));
}

/// Input order does not matter.
#[test]
fn unsorted_input() {
    let cf = flows(&[
        (d(2009, 4, 1), "2750"),
        (d(2008, 10, 30), "4250"),
        (d(2008, 1, 1), "-10000"),
        (d(2009, 2, 15), "3250"),
        (d(2008, 3, 1), "2750"),
    ]);
    assert_eq!(xirr(&cf), Some(dec("0.373363")));
}

/// No rate exists: empty, one flow, one-signed flows, and +100 −100 +100 (NPV never zero).
#[test]
fn no_solution_is_none() {
    let y = |n| d(2020 + n, 1, 1);
    let cases: [(&str, Vec<(NaiveDate, Decimal)>); 6] = [
        ("empty", vec![]),
        ("single", flows(&[(y(0), "-100")])),
        ("all invested", flows(&[(y(0), "-100"), (y(1), "-50")])),
        ("all received", flows(&[(y(0), "100"), (y(1), "50")])),
        ("zeros", flows(&[(y(0), "0"), (y(1), "0")])),
        (
            "no real root",
            flows(&[
                (y(1), "100"),
                (d(2022, 1, 1), "-100"),
                (d(2023, 1, 1), "100"),
            ]),
        ),
    ];
    for (what, cf) in cases {
        assert_eq!(xirr(&cf), None, "{what}");
    }
}

/// Extreme short-horizon rates: +9 % in a day is 1.09^365 − 1 ≈ 4.6 × 10¹³ (found, brackets the
/// root); +20 % in a day (≈ 8 × 10²⁸) exceeds `Decimal` and is `None`.
#[test]
fn extreme_rates() {
    let cf = flows(&[(d(2020, 1, 1), "-100"), (d(2020, 1, 2), "109")]);
    let r = xirr(&cf).unwrap();
    assert!(
        r > dec("45000000000000") && r < dec("46000000000000"),
        "{r}"
    );
    assert_brackets_root(&cf, r);
    let cf = flows(&[(d(2020, 1, 1), "-100"), (d(2020, 1, 2), "120")]);
    assert_eq!(xirr(&cf), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// For SIP-like flows (investments, then one redemption worth 0.2x–5x at least 30 days
    /// later, so rates up to ~10^8) a rate exists and brackets the root of the test's NPV.
    #[test]
    fn sip_like_flows_bracket_the_root(
        invest in prop::collection::vec((0u32..1500, 100i64..1_000_000), 1..24),
        tail in 30u32..400,
        mult in 20i64..500,
    ) {
        let start = d(2020, 1, 1);
        let mut cf: Vec<(NaiveDate, Decimal)> = invest
            .iter()
            .map(|&(off, a)| (start + TimeDelta::days(i64::from(off)), Decimal::from(-a)))
            .collect();
        let last = invest.iter().map(|&(o, _)| o).max().unwrap() + tail;
        let total: i64 = invest.iter().map(|&(_, a)| a).sum();
        cf.push((start + TimeDelta::days(i64::from(last)), Decimal::new(total * mult, 2)));
        let r = xirr(&cf);
        prop_assert!(r.is_some(), "no rate for {cf:?}");
        let r = r.unwrap();
        if let Err(e) = brackets_root(&cf, r) {
            prop_assert!(false, "{e}");
        }
        if r.abs() < Decimal::from(10i64.pow(18)) {
            prop_assert_eq!(r.scale(), 6);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Soundness on arbitrary mixed-sign flows: whenever a rate is returned, it is a root.
    #[test]
    fn any_returned_rate_is_a_root(
        cf in prop::collection::vec((0u32..3000, -1_000_000i64..1_000_000), 2..12),
    ) {
        let start = d(2015, 1, 1);
        let cf: Vec<(NaiveDate, Decimal)> = cf
            .iter()
            .map(|&(off, a)| (start + TimeDelta::days(i64::from(off)), Decimal::new(a, 2)))
            .collect();
        if let Some(r) = xirr(&cf) {
            prop_assert!(r >= dec("-1"));
            // −1.000000 is a rate within 5e-7 of −100 %, where our r-space NPV is not finite.
            if r > dec("-1") && let Err(e) = brackets_root(&cf, r) {
                prop_assert!(false, "{e}");
            }
        }
    }
}
