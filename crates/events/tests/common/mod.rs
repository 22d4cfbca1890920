//! Shared fixtures for the integration tests. Each test binary uses a subset, hence the
//! dead_code allowance (the alternative, one helper crate, is heavier than it is worth).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDate};
use nivesh_events::{EventMeta, NavPublished, NavRejected, NavValidated, RawNavReceived};
use rust_decimal::Decimal;
use uuid::Uuid;

pub(crate) fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal literal")
}

pub(crate) fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// A fixed, fully specified envelope (sub-second precision included) so comparisons are exact.
pub(crate) fn meta(event_type: &str, version: i32, causation: Option<&str>) -> EventMeta {
    EventMeta {
        event_id: Uuid::parse_str("01951f3e-7c2a-7b3d-9e4f-0123456789ab").unwrap(),
        event_type: event_type.to_string(),
        occurred_at: DateTime::from_timestamp_micros(1_740_470_400_123_456).unwrap(),
        producer: "nav-ingestor".into(),
        causation_key: causation.map(str::to_string),
        schema_version: version,
    }
}

/// Every optional field set, a NAV with 4 decimals incl. a trailing zero, non-ASCII text.
pub(crate) fn raw_full() -> RawNavReceived {
    RawNavReceived {
        meta: meta(RawNavReceived::FULL_NAME, 2, Some("file-7f3a:42")),
        file_id: "file-7f3a".into(),
        source: "AMFI".into(),
        line_number: 42,
        scheme_code: "119551".into(),
        isin_growth: Some("INF209KA12Z1".into()),
        isin_reinvestment: Some("INF209KA13Z9".into()),
        scheme_name: "Aditya Birla Sun Life Banking & PSU Debt Fund - Direct Plan-IDCW (निवेश)"
            .into(),
        amc: Some("Aditya Birla Sun Life Mutual Fund".into()),
        scheme_type: Some("Open Ended Schemes".into()),
        category: Some("Debt Scheme - Banking and PSU Fund".into()),
        nav: dec("105.1230"),
        nav_date: date(2025, 2, 25),
        repurchase_price: Some(dec("104.0718")),
        sale_price: Some(dec("105.12300000")),
        file_date: Some(date(2025, 2, 26)),
        plan: Some("Direct".into()),
        option: Some("IDCW".into()),
    }
}

/// Every optional field null.
pub(crate) fn raw_minimal() -> RawNavReceived {
    RawNavReceived {
        meta: meta(RawNavReceived::FULL_NAME, 2, None),
        file_id: "file-1".into(),
        source: "CAMS".into(),
        line_number: 1,
        scheme_code: "100027".into(),
        isin_growth: None,
        isin_reinvestment: None,
        scheme_name: "Grindlays Super Saver Income Fund".into(),
        amc: None,
        scheme_type: None,
        category: None,
        nav: dec("10"),
        nav_date: date(1969, 12, 31),
        repurchase_price: None,
        sale_price: None,
        file_date: None,
        plan: None,
        option: None,
    }
}

pub(crate) fn validated() -> NavValidated {
    NavValidated {
        meta: meta(
            NavValidated::FULL_NAME,
            1,
            Some("01951f3e-0000-7000-8000-000000000001"),
        ),
        scheme_code: "119551".into(),
        scheme_name: "Aditya Birla Sun Life Banking & PSU Debt Fund".into(),
        amc: Some("Aditya Birla Sun Life Mutual Fund".into()),
        category: None,
        scheme_type: Some("Open Ended Schemes".into()),
        isin_growth: Some("INF209KA12Z1".into()),
        isin_reinvestment: None,
        nav: dec("105.12345678"),
        nav_date: date(2025, 2, 25),
        previous_nav: Some(dec("-0.5")),
        previous_nav_date: Some(date(2025, 2, 24)),
        anomaly: true,
        anomaly_reason: Some("change 12.5% exceeds 5% for Debt".into()),
        change_kind: "CORRECTION".into(),
        file_id: "file-7f3a".into(),
        line_number: 9_000_000_000,
        source: "KFINTECH".into(),
    }
}

pub(crate) fn rejected() -> NavRejected {
    NavRejected {
        meta: meta(NavRejected::FULL_NAME, 1, None),
        file_id: "file-7f3a".into(),
        line_number: 7,
        source: "AMFI".into(),
        scheme_code: None,
        nav_date: Some(date(2099, 1, 1)),
        reason_code: "FUTURE_DATE".into(),
        reason: "NAV date 2099-01-01 is after today (IST)".into(),
    }
}

pub(crate) fn published() -> NavPublished {
    NavPublished {
        meta: meta(NavPublished::FULL_NAME, 2, Some("x")),
        scheme_code: "119551".into(),
        scheme_name: "Aditya Birla Sun Life Banking & PSU Debt Fund".into(),
        amc: None,
        category: Some("Debt Scheme - Banking and PSU Fund".into()),
        scheme_type: Some("Open Ended Schemes".into()),
        nav: dec("92233720368.54775807"),
        nav_date: date(2025, 2, 25),
        anomaly: false,
        change_kind: "NEW".into(),
    }
}

pub(crate) fn repo_schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/avro")
}

/// A scratch directory removed on drop (std only: no tempfile dependency for this).
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "nivesh-events-{tag}-{}-{nanos}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
