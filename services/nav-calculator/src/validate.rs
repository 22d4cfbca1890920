//! The NAV validation rules, as a pure function of the incoming NAV, what we already know about
//! the scheme, and today's date in IST. Kept free of I/O so every rule is tested directly.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// What the calculator remembers per scheme (document `latest` in the scheme's partition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemeState {
    pub scheme_name: String,
    pub amc: Option<String>,
    pub category: Option<String>,
    pub scheme_type: Option<String>,
    pub nav: Decimal,
    pub nav_date: NaiveDate,
}

/// A NAV already recorded for one (scheme, date) (document `d:<date>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayNav {
    pub nav: Decimal,
    pub event_id: String,
}

/// Thresholds and windows, from the `[service]` config section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Rules {
    /// A NAV dated more than this many days before the file's latest NAV date is stale.
    pub staleness_days: i64,
    /// Day-over-day change (percent) above which a NAV is flagged, by category keyword
    /// (case-insensitive substring of the AMFI category); first match wins.
    pub anomaly_threshold_pct: Vec<(String, Decimal)>,
    /// Threshold for categories no keyword matches.
    pub default_anomaly_threshold_pct: Decimal,
}

impl Default for Rules {
    fn default() -> Self {
        let pct = |s: &str| s.parse::<Decimal>().expect("static");
        Rules {
            staleness_days: 7,
            // Liquid/overnight funds move a few basis points a day; equity can move 10%+ on a bad day.
            anomaly_threshold_pct: vec![
                ("overnight".into(), pct("0.5")),
                ("liquid".into(), pct("0.5")),
                ("money market".into(), pct("1")),
                ("debt".into(), pct("3")),
                ("gilt".into(), pct("3")),
                ("equity".into(), pct("10")),
                ("index".into(), pct("10")),
                ("etf".into(), pct("10")),
            ],
            default_anomaly_threshold_pct: pct("10"),
        }
    }
}

/// The outcome for one incoming NAV.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// First NAV for this (scheme, date).
    New {
        previous: Option<(Decimal, NaiveDate)>,
        anomaly: Option<String>,
        becomes_latest: bool,
    },
    /// A different NAV for a (scheme, date) we already had: published as a correction.
    Correction {
        previous_nav: Decimal,
        anomaly: Option<String>,
        becomes_latest: bool,
    },
    /// Same scheme, date and NAV again: nothing to do.
    Duplicate,
    Rejected {
        code: &'static str,
        reason: String,
    },
}

/// The incoming NAV as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub nav: Decimal,
    pub nav_date: NaiveDate,
    pub category: Option<&'a str>,
    /// The file's date (its latest NAV date), against which staleness is measured.
    pub reference_date: NaiveDate,
}

/// Apply the rules.
pub fn judge(
    rules: &Rules,
    incoming: Incoming<'_>,
    today_ist: NaiveDate,
    latest: Option<&SchemeState>,
    same_day: Option<&DayNav>,
) -> Verdict {
    let Incoming {
        nav,
        nav_date,
        category,
        reference_date,
    } = incoming;
    if nav <= Decimal::ZERO {
        return Verdict::Rejected {
            code: "NON_POSITIVE_NAV",
            reason: format!("NAV {nav} is not positive"),
        };
    }
    if nav_date > today_ist {
        return Verdict::Rejected {
            code: "FUTURE_DATE",
            reason: format!("NAV date {nav_date} is after today ({today_ist} IST)"),
        };
    }
    let becomes_latest = latest.is_none_or(|l| nav_date >= l.nav_date);
    if let Some(day) = same_day {
        if day.nav == nav {
            return Verdict::Duplicate;
        }
        let anomaly = anomaly(rules, category, day.nav, nav);
        return Verdict::Correction {
            previous_nav: day.nav,
            anomaly,
            becomes_latest,
        };
    }
    let stale_before = reference_date - chrono::Duration::days(rules.staleness_days);
    if nav_date < stale_before && latest.is_some_and(|l| l.nav_date >= nav_date) {
        // We already hold a NAV at least this recent: an old NAV must not be republished as news.
        return Verdict::Rejected {
            code: "STALE_NAV",
            reason: format!(
                "NAV date {nav_date} is more than {} days before the file date {reference_date} and not newer than the NAV we hold ({})",
                rules.staleness_days,
                latest.map(|l| l.nav_date.to_string()).unwrap_or_default()
            ),
        };
    }
    let previous = latest
        .filter(|l| l.nav_date < nav_date)
        .map(|l| (l.nav, l.nav_date));
    let anomaly = previous.and_then(|(p, _)| anomaly(rules, category, p, nav));
    Verdict::New {
        previous,
        anomaly,
        becomes_latest,
    }
}

fn anomaly(
    rules: &Rules,
    category: Option<&str>,
    previous: Decimal,
    nav: Decimal,
) -> Option<String> {
    if previous.is_zero() {
        return None;
    }
    let change_pct = ((nav - previous) / previous * Decimal::ONE_HUNDRED).abs();
    let cat = category.unwrap_or("").to_ascii_lowercase();
    let threshold = rules
        .anomaly_threshold_pct
        .iter()
        .find(|(k, _)| cat.contains(k.as_str()))
        .map(|(_, t)| *t)
        .unwrap_or(rules.default_anomaly_threshold_pct);
    (change_pct > threshold).then(|| {
        format!(
            "NAV moved {}% from {previous} to {nav} (threshold {threshold}%)",
            change_pct.round_dp(4)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }
    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }
    fn inc(
        nav: Decimal,
        nav_date: NaiveDate,
        category: Option<&str>,
        reference_date: NaiveDate,
    ) -> Incoming<'_> {
        Incoming {
            nav,
            nav_date,
            category,
            reference_date,
        }
    }
    fn state(nav: &str, date: &str) -> SchemeState {
        SchemeState {
            scheme_name: "X".into(),
            amc: None,
            category: None,
            scheme_type: None,
            nav: dec(nav),
            nav_date: d(date),
        }
    }

    /// A first NAV for a scheme is new, has no previous and becomes the latest.
    #[test]
    fn first_nav_is_new() {
        let v = judge(
            &Rules::default(),
            inc(dec("10.5"), d("2025-02-25"), None, d("2025-02-25")),
            d("2025-02-25"),
            None,
            None,
        );
        assert_eq!(
            v,
            Verdict::New {
                previous: None,
                anomaly: None,
                becomes_latest: true
            }
        );
    }

    /// A NAV dated after today in IST is rejected.
    #[test]
    fn future_date_rejected() {
        let v = judge(
            &Rules::default(),
            inc(dec("10"), d("2025-02-26"), None, d("2025-02-26")),
            d("2025-02-25"),
            None,
            None,
        );
        assert!(
            matches!(
                v,
                Verdict::Rejected {
                    code: "FUTURE_DATE",
                    ..
                }
            ),
            "{v:?}"
        );
    }

    /// The same NAV again is a no-op; a different NAV for the same date is a correction.
    #[test]
    fn duplicate_and_correction() {
        let day = DayNav {
            nav: dec("10.1234"),
            event_id: "e".into(),
        };
        let latest = state("10.1234", "2025-02-25");
        let same = judge(
            &Rules::default(),
            inc(dec("10.12340"), d("2025-02-25"), None, d("2025-02-25")),
            d("2025-02-25"),
            Some(&latest),
            Some(&day),
        );
        assert_eq!(same, Verdict::Duplicate);
        let changed = judge(
            &Rules::default(),
            inc(dec("10.2"), d("2025-02-25"), None, d("2025-02-25")),
            d("2025-02-25"),
            Some(&latest),
            Some(&day),
        );
        assert_eq!(
            changed,
            Verdict::Correction {
                previous_nav: dec("10.1234"),
                anomaly: None,
                becomes_latest: true
            }
        );
    }

    /// An old NAV we already hold something newer for is stale; an old NAV of a scheme we have never seen is accepted.
    #[test]
    fn staleness() {
        let latest = state("11", "2025-02-24");
        let old = judge(
            &Rules::default(),
            inc(dec("10"), d("2024-01-01"), None, d("2025-02-25")),
            d("2025-02-25"),
            Some(&latest),
            None,
        );
        assert!(
            matches!(
                old,
                Verdict::Rejected {
                    code: "STALE_NAV",
                    ..
                }
            ),
            "{old:?}"
        );
        let unseen = judge(
            &Rules::default(),
            inc(dec("10"), d("2024-01-01"), None, d("2025-02-25")),
            d("2025-02-25"),
            None,
            None,
        );
        assert!(matches!(unseen, Verdict::New { .. }));
    }

    /// A day-over-day move above the category's threshold is flagged, below it is not.
    #[test]
    fn anomaly_threshold_by_category() {
        let latest = state("100", "2025-02-24");
        let liquid = Some("Debt Scheme - Liquid Fund");
        let small = judge(
            &Rules::default(),
            inc(dec("100.2"), d("2025-02-25"), liquid, d("2025-02-25")),
            d("2025-02-25"),
            Some(&latest),
            None,
        );
        assert!(
            matches!(small, Verdict::New { anomaly: None, .. }),
            "{small:?}"
        );
        let big = judge(
            &Rules::default(),
            inc(dec("101"), d("2025-02-25"), liquid, d("2025-02-25")),
            d("2025-02-25"),
            Some(&latest),
            None,
        );
        assert!(
            matches!(
                big,
                Verdict::New {
                    anomaly: Some(_),
                    previous: Some(_),
                    ..
                }
            ),
            "{big:?}"
        );
        let equity = judge(
            &Rules::default(),
            inc(
                dec("105"),
                d("2025-02-25"),
                Some("Equity Scheme - Large Cap Fund"),
                d("2025-02-25"),
            ),
            d("2025-02-25"),
            Some(&latest),
            None,
        );
        assert!(
            matches!(equity, Verdict::New { anomaly: None, .. }),
            "{equity:?}"
        );
    }

    /// A late NAV for an earlier date is recorded but does not replace the latest.
    #[test]
    fn late_nav_does_not_become_latest() {
        let latest = state("11", "2025-02-25");
        let v = judge(
            &Rules::default(),
            inc(dec("10.9"), d("2025-02-24"), None, d("2025-02-25")),
            d("2025-02-25"),
            Some(&latest),
            None,
        );
        assert_eq!(
            v,
            Verdict::New {
                previous: None,
                anomaly: None,
                becomes_latest: false
            }
        );
    }
}
