//! `[service]` settings of the allotment service and the business rules built from them.
//!
//! Everything that differs between schemes or AMCs is data here, not code: the holiday
//! calendar, the exit-load schedules (by category pattern, overridable per scheme code) and the
//! units rounding per AMC. Omitted keys take the documented defaults (`#[serde(default)]` at
//! every level), so a config file names only what it changes.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use nivesh_txn_rules::{ExitLoadSchedule, HolidaySet, UnitsRounding};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Three days: a NAV is normally published the same evening; three days rides out a late or
/// corrected AMFI file over a weekend before the investor's money is refunded.
pub const DEFAULT_NAV_WAIT_LIMIT_SECS: u64 = 3 * 24 * 60 * 60;

/// One minute: the sweeper is the safety net behind the NAV handler, not the main path.
pub const DEFAULT_SWEEP_INTERVAL_MS: u64 = 60_000;

/// The 2025 NSE trading holidays that fall on weekdays (weekends are closed anyway).
pub const NSE_HOLIDAYS_2025: [&str; 14] = [
    "2025-02-26", // Mahashivratri
    "2025-03-14", // Holi
    "2025-03-31", // Id-Ul-Fitr
    "2025-04-10", // Shri Mahavir Jayanti
    "2025-04-14", // Dr. Baba Saheb Ambedkar Jayanti
    "2025-04-18", // Good Friday
    "2025-05-01", // Maharashtra Day
    "2025-08-15", // Independence Day
    "2025-08-27", // Shri Ganesh Chaturthi
    "2025-10-02", // Mahatma Gandhi Jayanti / Dussehra
    "2025-10-21", // Diwali Laxmi Pujan
    "2025-10-22", // Balipratipada
    "2025-11-05", // Prakash Gurpurb Sri Guru Nanak Dev
    "2025-12-25", // Christmas
];

/// The default holiday calendar: [`NSE_HOLIDAYS_2025`].
pub fn default_holidays() -> HolidaySet {
    NSE_HOLIDAYS_2025
        .iter()
        .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .collect()
}

/// `[service]`
///
/// Unknown keys are tolerated (not `deny_unknown_fields`): the fleet may pass settings meant for
/// every order-flow service (e.g. `investor_registry`), which this service does not need.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Market holidays (ISO dates) on top of weekends.
    pub holidays: HolidaySet,
    /// A pending allotment whose NAV has not arrived this long (business clock) after it was
    /// accepted fails with `NAV_NOT_AVAILABLE` (purchases carry the refund).
    pub nav_wait_limit_secs: u64,
    /// How often the sweeper looks at pending allotments.
    pub sweep_interval_ms: u64,
    pub exit_loads: ExitLoadConfig,
    pub units_rounding: RoundingConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            holidays: default_holidays(),
            nav_wait_limit_secs: DEFAULT_NAV_WAIT_LIMIT_SECS,
            sweep_interval_ms: DEFAULT_SWEEP_INTERVAL_MS,
            exit_loads: ExitLoadConfig::default(),
            units_rounding: RoundingConfig::default(),
        }
    }
}

impl Config {
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.sweep_interval_ms.max(1))
    }

    pub fn nav_wait_limit(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::seconds(
            i64::try_from(self.nav_wait_limit_secs).unwrap_or(i64::MAX / 1000),
        )
    }
}

/// One exit-load rule: the scheme's AMFI category contains `category_contains`
/// (case-insensitive) → `schedule`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryLoadRule {
    pub category_contains: String,
    pub schedule: ExitLoadSchedule,
}

/// Exit loads as data. Lookup order: `schemes[code]`, then the first matching `rules` entry,
/// then `default`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExitLoadConfig {
    pub rules: Vec<CategoryLoadRule>,
    /// Per scheme code; wins over the category rules.
    pub schemes: BTreeMap<String, ExitLoadSchedule>,
    /// When nothing matches: nil unless configured.
    pub default: ExitLoadSchedule,
}

impl Default for ExitLoadConfig {
    /// Liquid and overnight: SEBI's graded liquid load; equity: 1 % within 365 days; else nil.
    fn default() -> Self {
        let equity = ExitLoadSchedule::flat(Decimal::ONE, 365)
            .expect("1 % within 365 days is a valid schedule");
        ExitLoadConfig {
            rules: vec![
                CategoryLoadRule {
                    category_contains: "liquid".into(),
                    schedule: ExitLoadSchedule::liquid_graded(),
                },
                CategoryLoadRule {
                    category_contains: "overnight".into(),
                    schedule: ExitLoadSchedule::liquid_graded(),
                },
                CategoryLoadRule {
                    category_contains: "equity".into(),
                    schedule: equity,
                },
            ],
            schemes: BTreeMap::new(),
            default: ExitLoadSchedule::nil(),
        }
    }
}

impl ExitLoadConfig {
    /// The schedule for a scheme with this code and (optional) category.
    pub fn schedule_for(&self, scheme_code: &str, category: Option<&str>) -> &ExitLoadSchedule {
        if let Some(s) = self.schemes.get(scheme_code) {
            return s;
        }
        let category = category.unwrap_or_default().to_ascii_lowercase();
        self.rules
            .iter()
            .find(|r| {
                !r.category_contains.is_empty()
                    && category.contains(&r.category_contains.to_ascii_lowercase())
            })
            .map_or(&self.default, |r| &r.schedule)
    }
}

/// Units rounding per AMC (the registrar applies each AMC's policy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoundingConfig {
    /// Every AMC not listed in `amc`: units truncated to 3 places, duty half-up.
    pub default: UnitsRounding,
    /// By AMC name as published in the NAV feed (compared case-insensitively).
    pub amc: BTreeMap<String, UnitsRounding>,
}

impl RoundingConfig {
    pub fn for_amc(&self, amc: Option<&str>) -> UnitsRounding {
        amc.and_then(|name| {
            self.amc
                .iter()
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name.trim()))
                .map(|(_, r)| *r)
        })
        .unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nivesh_domain::RoundingMode;

    fn pct(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// The default calendar holds the 14 listed 2025 holidays and nothing else.
    #[test]
    fn default_holidays_are_the_2025_nse_list() {
        let h = default_holidays();
        assert_eq!(h.len(), NSE_HOLIDAYS_2025.len());
        assert!(h.contains(NaiveDate::from_ymd_opt(2025, 2, 26).unwrap()));
        assert!(h.contains(NaiveDate::from_ymd_opt(2025, 12, 25).unwrap()));
        assert!(!h.contains(NaiveDate::from_ymd_opt(2025, 2, 25).unwrap()));
    }

    /// Category rules match case-insensitive substrings, scheme overrides win, default is nil.
    #[test]
    fn exit_load_lookup_order() {
        let mut cfg = ExitLoadConfig::default();
        let liquid = cfg.schedule_for("1", Some("Open Ended Schemes(Debt Scheme - Liquid Fund)"));
        assert_eq!(liquid.load_pct(1), pct("0.0070"));
        let overnight = cfg.schedule_for("2", Some("Debt Scheme - OVERNIGHT Fund"));
        assert_eq!(overnight.load_pct(6), pct("0.0045"));
        let equity = cfg.schedule_for("3", Some("Equity Scheme - Large Cap Fund"));
        assert_eq!(equity.load_pct(364), Decimal::ONE);
        assert_eq!(equity.load_pct(365), Decimal::ZERO);
        let gilt = cfg.schedule_for("4", Some("Debt Scheme - Gilt Fund"));
        assert_eq!(gilt, &ExitLoadSchedule::nil());
        assert_eq!(cfg.schedule_for("5", None), &ExitLoadSchedule::nil());

        cfg.schemes
            .insert("3".into(), ExitLoadSchedule::flat(pct("0.5"), 90).unwrap());
        let overridden = cfg.schedule_for("3", Some("Equity Scheme - Large Cap Fund"));
        assert_eq!(overridden.load_pct(10), pct("0.5"));
        assert_eq!(overridden.load_pct(100), Decimal::ZERO);
    }

    /// The whole section deserialises from TOML-like JSON with partial tables, and rejects an
    /// invalid (overlapping) schedule.
    #[test]
    fn config_deserialises_partially() {
        let cfg: Config = serde_json::from_value(serde_json::json!({
            "nav_wait_limit_secs": 60,
            "holidays": ["2025-01-01"],
            "exit_loads": { "schemes": { "119551": { "bands": [
                { "min_days_held": 0, "max_days_held": 30, "load_pct": "2" } ] } } },
            "units_rounding": { "amc": { "HDFC Mutual Fund": { "units": "half_up" } } }
        }))
        .unwrap();
        assert_eq!(cfg.nav_wait_limit_secs, 60);
        assert_eq!(cfg.sweep_interval_ms, DEFAULT_SWEEP_INTERVAL_MS);
        assert_eq!(cfg.holidays.len(), 1);
        // Rules kept their defaults although `exit_loads` was given.
        assert_eq!(cfg.exit_loads.rules.len(), 3);
        assert_eq!(
            cfg.exit_loads.schedule_for("119551", None).load_pct(29),
            pct("2")
        );
        let r = cfg.units_rounding.for_amc(Some("hdfc mutual fund"));
        assert_eq!(r.units, RoundingMode::HalfUp);
        assert_eq!(r.stamp_duty, RoundingMode::HalfUp);
        assert_eq!(
            cfg.units_rounding.for_amc(Some("Other AMC")).units,
            RoundingMode::Truncate
        );
        assert_eq!(cfg.units_rounding.for_amc(None), UnitsRounding::default());

        let bad = serde_json::from_value::<Config>(serde_json::json!({
            "exit_loads": { "default": { "bands": [
                { "min_days_held": 0, "max_days_held": 10, "load_pct": "1" },
                { "min_days_held": 5, "max_days_held": null, "load_pct": "1" } ] } }
        }));
        assert!(bad.is_err());
    }
}
