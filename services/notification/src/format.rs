//! How figures read in a message: rupees with paise and Indian digit grouping (`₹1,23,456.78`),
//! units to 3 decimals, NAVs at their published scale, dates and times in IST.
//!
//! Exact by construction: values are `Decimal`s and are only ever padded with zeros, never
//! rounded, so a message shows the figure the event carried (a value with more places than the
//! display minimum keeps them rather than being silently rounded).

use chrono::{DateTime, NaiveDate, Utc};
use nivesh_domain::time::to_ist;
use rust_decimal::Decimal;

/// Fewest decimal places shown for money.
const MONEY_PLACES: u32 = 2;
/// Fewest decimal places shown for units (the registrar's precision).
const UNIT_PLACES: u32 = 3;
/// Fewest decimal places shown for a NAV.
const NAV_PLACES: u32 = 2;

/// `₹5,000.00`, `₹1,23,45,678.90`, `-₹10.50`.
pub fn inr(d: Decimal) -> String {
    with_sign(d, |abs| format!("₹{}", grouped(abs, MONEY_PLACES)))
}

/// `49.751`, `1,234.500`.
pub fn units(d: Decimal) -> String {
    with_sign(d, |abs| grouped(abs, UNIT_PLACES))
}

/// `₹101.2345` (the published scale kept), `₹1,050.10`.
pub fn nav(d: Decimal) -> String {
    with_sign(d, |abs| format!("₹{}", grouped(abs, NAV_PLACES)))
}

/// `25 Feb 2025`.
pub fn date(d: NaiveDate) -> String {
    d.format("%d %b %Y").to_string()
}

/// `25 Feb 2025, 03:10 PM IST`.
pub fn ist_time(t: DateTime<Utc>) -> String {
    to_ist(t).format("%d %b %Y, %I:%M %p IST").to_string()
}

fn with_sign(d: Decimal, body: impl Fn(Decimal) -> String) -> String {
    if d.is_sign_negative() && !d.is_zero() {
        format!("-{}", body(d.abs()))
    } else {
        body(d.abs())
    }
}

/// `abs` (non-negative) with at least `min_places` decimals and the integer part grouped the
/// Indian way: the last three digits, then groups of two (lakh, crore).
fn grouped(abs: Decimal, min_places: u32) -> String {
    let mut v = abs;
    if v.scale() < min_places {
        v.rescale(min_places);
    }
    let text = v.to_string();
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text.as_str(), None),
    };
    let mut out = indian_grouping(int);
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

fn indian_grouping(digits: &str) -> String {
    if digits.len() <= 3 {
        return digits.to_string();
    }
    let (head, last3) = digits.split_at(digits.len() - 3);
    let mut groups: Vec<&str> = Vec::new();
    let mut rest = head;
    while rest.len() > 2 {
        let (h, g) = rest.split_at(rest.len() - 2);
        groups.push(g);
        rest = h;
    }
    if !rest.is_empty() {
        groups.push(rest);
    }
    groups.reverse();
    format!("{},{last3}", groups.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    /// Rupees: two places padded, Indian grouping from the thousands up, sign in front.
    #[test]
    fn rupees() {
        assert_eq!(inr(d("5000")), "₹5,000.00");
        assert_eq!(inr(d("5000.5")), "₹5,000.50");
        assert_eq!(inr(d("999.99")), "₹999.99");
        assert_eq!(inr(d("100000")), "₹1,00,000.00");
        assert_eq!(inr(d("12345678.9")), "₹1,23,45,678.90");
        assert_eq!(inr(d("1234567890.12")), "₹1,23,45,67,890.12");
        assert_eq!(inr(d("0")), "₹0.00");
        assert_eq!(inr(d("-10.5")), "-₹10.50");
    }

    /// A value finer than a paisa is shown as it is, never rounded away.
    #[test]
    fn never_rounds() {
        assert_eq!(inr(d("0.125")), "₹0.125");
        assert_eq!(units(d("49.7514")), "49.7514");
    }

    /// Units at three places; NAVs at their published scale (at least two places).
    #[test]
    fn units_and_nav() {
        assert_eq!(units(d("49.751")), "49.751");
        assert_eq!(units(d("1234.5")), "1,234.500");
        assert_eq!(units(d("0")), "0.000");
        assert_eq!(nav(d("101.2345")), "₹101.2345");
        assert_eq!(nav(d("1050.1")), "₹1,050.10");
    }

    /// Dates and instants are shown in IST (UTC+05:30), 12-hour clock.
    #[test]
    fn ist_dates() {
        assert_eq!(
            date(NaiveDate::from_ymd_opt(2025, 2, 5).unwrap()),
            "05 Feb 2025"
        );
        // 09:40 UTC is 15:10 IST.
        let t = DateTime::parse_from_rfc3339("2025-02-25T09:40:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(ist_time(t), "25 Feb 2025, 03:10 PM IST");
        // 20:00 UTC on the 24th is already the 25th in India.
        let late = DateTime::parse_from_rfc3339("2025-02-24T20:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(ist_time(late), "25 Feb 2025, 01:30 AM IST");
    }
}
