//! The `[service]` section loads through the runtime's real layering: built-in defaults,
//! `config/allotment.toml`, then `NIVESH__SERVICE__*` variables.

use nivesh_allotment::Config;
use nivesh_runtime::config::{BUILT_IN_DEFAULTS, ConfigSources, load_from};
use rust_decimal::Decimal;

/// No `[service]` section: the documented defaults (2025 NSE holidays, 3 days, 1 minute).
#[test]
fn defaults_without_a_service_section() {
    let s = load_from::<Config>("allotment", &ConfigSources::default()).unwrap();
    assert_eq!(s.service.nav_wait_limit_secs, 259_200);
    assert_eq!(s.service.sweep_interval_ms, 60_000);
    assert_eq!(s.service.holidays.len(), 14);
    assert_eq!(s.service.exit_loads.rules.len(), 3);
}

/// A TOML file sets holidays, exit loads (per category and per scheme) and AMC rounding;
/// environment variables override scalars.
#[test]
fn toml_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.toml"), BUILT_IN_DEFAULTS).unwrap();
    std::fs::write(
        dir.path().join("allotment.toml"),
        r#"
[service]
holidays = ["2026-01-26", "2026-03-03"]
nav_wait_limit_secs = 7200

[[service.exit_loads.rules]]
category_contains = "hybrid"
schedule = { bands = [ { min_days_held = 0, max_days_held = 90, load_pct = "0.5" } ] }

[service.exit_loads.schemes.119551]
bands = [ { min_days_held = 0, max_days_held = 30, load_pct = "2" } ]

[service.units_rounding.amc."HDFC Mutual Fund"]
units = "half_up"
"#,
    )
    .unwrap();
    let sources = ConfigSources {
        dir: Some(dir.path().to_path_buf()),
        environment: String::new(),
        vars: vec![("NIVESH__SERVICE__SWEEP_INTERVAL_MS".into(), "250".into())],
    };
    let s = load_from::<Config>("allotment", &sources).unwrap();
    let c = &s.service;
    assert_eq!(c.holidays.len(), 2);
    assert_eq!(c.nav_wait_limit_secs, 7200);
    assert_eq!(c.sweep_interval_ms, 250);
    assert_eq!(
        c.exit_loads.rules.len(),
        1,
        "a rules list replaces the defaults"
    );
    let hybrid = c
        .exit_loads
        .schedule_for("1", Some("Hybrid Scheme - Balanced Advantage"));
    assert_eq!(hybrid.load_pct(10), "0.5".parse::<Decimal>().unwrap());
    assert_eq!(
        c.exit_loads.schedule_for("119551", None).load_pct(29),
        Decimal::from(2)
    );
    assert_eq!(
        c.units_rounding.for_amc(Some("HDFC Mutual Fund")).units,
        nivesh_domain::RoundingMode::HalfUp
    );
}
