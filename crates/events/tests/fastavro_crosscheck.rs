//! Cross-implementation check with fastavro (Python): it must read our single-object bytes
//! (finding the schema by a fingerprint it computes itself) and we must read its bytes.
//! Requires `python3` with `fastavro` (`pip install fastavro`; scripts/ensure-deps installs it);
//! set NIVESH_SKIP_PY_CROSSCHECK=1 to skip explicitly.

mod common;

use std::path::Path;
use std::process::Command;

use chrono::NaiveDate;
use common::*;
use nivesh_events::{
    AvroCodec, Event, EventMeta, NavPublished, NavRejected, NavValidated, RawNavReceived,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// The normalized JSON form the Python script prints, computed from our structs independently of
/// the crate's serde adapters (chrono/rust_decimal accessors only).
trait Normalized {
    fn normalized(&self) -> Value;
}

fn n_meta(m: &EventMeta) -> Value {
    json!({
        "event_id": m.event_id.to_string(),
        "event_type": m.event_type,
        "occurred_at": m.occurred_at.timestamp_micros(),
        "producer": m.producer,
        "causation_key": m.causation_key,
        "schema_version": m.schema_version,
    })
}

fn n_dec(d: &Decimal) -> Value {
    json!({"unscaled": i64::try_from(d.mantissa()).unwrap(), "scale": d.scale()})
}

fn n_opt_dec(d: &Option<Decimal>) -> Value {
    d.as_ref().map_or(Value::Null, n_dec)
}

fn n_date(d: &NaiveDate) -> Value {
    json!(d.format("%Y-%m-%d").to_string())
}

fn n_opt_date(d: &Option<NaiveDate>) -> Value {
    d.as_ref().map_or(Value::Null, n_date)
}

impl Normalized for RawNavReceived {
    fn normalized(&self) -> Value {
        json!({
            "meta": n_meta(&self.meta), "file_id": self.file_id, "source": self.source,
            "line_number": self.line_number, "scheme_code": self.scheme_code, "isin_growth": self.isin_growth,
            "isin_reinvestment": self.isin_reinvestment, "scheme_name": self.scheme_name, "amc": self.amc,
            "scheme_type": self.scheme_type, "category": self.category, "nav": n_dec(&self.nav),
            "nav_date": n_date(&self.nav_date), "repurchase_price": n_opt_dec(&self.repurchase_price),
            "sale_price": n_opt_dec(&self.sale_price), "file_date": n_opt_date(&self.file_date),
            "plan": self.plan, "option": self.option,
        })
    }
}

impl Normalized for NavValidated {
    fn normalized(&self) -> Value {
        json!({
            "meta": n_meta(&self.meta), "scheme_code": self.scheme_code, "scheme_name": self.scheme_name,
            "amc": self.amc, "category": self.category, "scheme_type": self.scheme_type,
            "isin_growth": self.isin_growth, "isin_reinvestment": self.isin_reinvestment, "nav": n_dec(&self.nav),
            "nav_date": n_date(&self.nav_date), "previous_nav": n_opt_dec(&self.previous_nav),
            "previous_nav_date": n_opt_date(&self.previous_nav_date), "anomaly": self.anomaly,
            "anomaly_reason": self.anomaly_reason, "change_kind": self.change_kind, "file_id": self.file_id,
            "line_number": self.line_number, "source": self.source,
        })
    }
}

impl Normalized for NavRejected {
    fn normalized(&self) -> Value {
        json!({
            "meta": n_meta(&self.meta), "file_id": self.file_id, "line_number": self.line_number,
            "source": self.source, "scheme_code": self.scheme_code, "nav_date": n_opt_date(&self.nav_date),
            "reason_code": self.reason_code, "reason": self.reason,
        })
    }
}

impl Normalized for NavPublished {
    fn normalized(&self) -> Value {
        json!({
            "meta": n_meta(&self.meta), "scheme_code": self.scheme_code, "scheme_name": self.scheme_name,
            "amc": self.amc, "category": self.category, "scheme_type": self.scheme_type,
            "nav": n_dec(&self.nav), "nav_date": n_date(&self.nav_date), "anomaly": self.anomaly,
            "change_kind": self.change_kind,
        })
    }
}

/// Field-by-field comparison so a mismatch names the event and the field.
fn assert_fields(what: &str, actual: &Value, expected: &Value) {
    let (Value::Object(a), Value::Object(e)) = (actual, expected) else {
        assert_eq!(actual, expected, "{what}");
        return;
    };
    let mut keys: Vec<&String> = a.keys().chain(e.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (av, ev) = (
            a.get(key).unwrap_or(&Value::Null),
            e.get(key).unwrap_or(&Value::Null),
        );
        assert!(
            a.contains_key(key) && e.contains_key(key),
            "{what}.{key}: present on one side only"
        );
        assert_fields(&format!("{what}.{key}"), av, ev);
    }
}

fn fastavro_available() -> bool {
    Command::new("python3")
        .args(["-c", "import fastavro"])
        .status()
        .is_ok_and(|s| s.success())
}

async fn write_ours<E: Event>(codec: &AvroCodec, dir: &Path, stem: &str, event: &E) {
    std::fs::write(
        dir.join(format!("{stem}.bin")),
        codec.encode(event).await.unwrap(),
    )
    .unwrap();
}

async fn read_theirs<E: Event + Normalized>(
    codec: &AvroCodec,
    dir: &Path,
    stem: &str,
    written: &Value,
) -> E {
    let bytes = std::fs::read(dir.join(format!("{stem}.bin"))).unwrap();
    assert_eq!(
        AvroCodec::peek_type(&bytes).as_deref(),
        Some(E::FULL_NAME),
        "{stem}"
    );
    let event: E = codec
        .decode(&bytes)
        .await
        .unwrap_or_else(|e| panic!("decoding fastavro's {stem}: {e}"));
    let mut expected = written[stem]["record"].clone();
    // A v1 record decoded into the v2 struct gains the v2 fields with their defaults.
    if written[stem]["version"] == 1 && E::FULL_NAME == RawNavReceived::FULL_NAME {
        expected["plan"] = Value::Null;
        expected["option"] = Value::Null;
    }
    if written[stem]["version"] == 1 && E::FULL_NAME == NavPublished::FULL_NAME {
        expected["scheme_type"] = Value::Null;
    }
    assert_fields(
        &format!("fastavro->rust {stem}"),
        &event.normalized(),
        &expected,
    );
    event
}

/// fastavro decodes every event we encode (own fingerprint check) and we decode every record
/// fastavro encodes, including a v1 RawNavReceived read into the v2 struct.
#[tokio::test]
async fn fastavro_and_nivesh_read_each_other() {
    if !fastavro_available() {
        if std::env::var("NIVESH_SKIP_PY_CROSSCHECK").as_deref() == Ok("1") {
            eprintln!("fastavro cross-check skipped (NIVESH_SKIP_PY_CROSSCHECK=1)");
            return;
        }
        panic!(
            "python3 cannot import fastavro: run `pip install fastavro` (or set NIVESH_SKIP_PY_CROSSCHECK=1)"
        );
    }
    let work = TempDir::new("fastavro");
    let ours = work.path().join("rust");
    std::fs::create_dir_all(&ours).unwrap();
    let codec = AvroCodec::single_object();
    let (raw_full, raw_minimal, validated, rejected, published) = (
        raw_full(),
        raw_minimal(),
        validated(),
        rejected(),
        published(),
    );
    write_ours(&codec, &ours, "raw_full", &raw_full).await;
    write_ours(&codec, &ours, "raw_minimal", &raw_minimal).await;
    write_ours(&codec, &ours, "validated", &validated).await;
    write_ours(&codec, &ours, "rejected", &rejected).await;
    write_ours(&codec, &ours, "published", &published).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fastavro_crosscheck.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(repo_schemas())
        .arg(work.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fastavro script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    let decoded = &report["decoded"];
    let expect: [(&str, &str, u32, Value); 5] = [
        (
            "raw_full",
            RawNavReceived::FULL_NAME,
            RawNavReceived::VERSION,
            raw_full.normalized(),
        ),
        (
            "raw_minimal",
            RawNavReceived::FULL_NAME,
            RawNavReceived::VERSION,
            raw_minimal.normalized(),
        ),
        (
            "validated",
            NavValidated::FULL_NAME,
            NavValidated::VERSION,
            validated.normalized(),
        ),
        (
            "rejected",
            NavRejected::FULL_NAME,
            NavRejected::VERSION,
            rejected.normalized(),
        ),
        (
            "published",
            NavPublished::FULL_NAME,
            NavPublished::VERSION,
            published.normalized(),
        ),
    ];
    assert_eq!(decoded.as_object().unwrap().len(), expect.len());
    for (stem, name, version, normalized) in &expect {
        assert_eq!(
            decoded[stem]["full_name"], *name,
            "{stem}: schema found by fastavro's fingerprint"
        );
        assert_eq!(decoded[stem]["version"], *version, "{stem}");
        assert_fields(
            &format!("rust->fastavro {stem}"),
            &decoded[stem]["record"],
            normalized,
        );
    }

    let theirs = work.path().join("python");
    let written = &report["written"];
    let v2: RawNavReceived = read_theirs(&codec, &theirs, "raw_v2", written).await;
    assert_eq!(v2.nav.to_string(), "12345.67890123");
    let v1: RawNavReceived = read_theirs(&codec, &theirs, "raw_v1", written).await;
    assert_eq!(
        (v1.plan, v1.option, v1.meta.schema_version),
        (None, None, 1)
    );
    read_theirs::<NavValidated>(&codec, &theirs, "validated", written).await;
    read_theirs::<NavRejected>(&codec, &theirs, "rejected", written).await;
    let published: NavPublished = read_theirs(&codec, &theirs, "published", written).await;
    assert_eq!(published.nav.to_string(), "92233720368.54775807");
    assert_eq!(
        (published.scheme_type, published.meta.schema_version),
        (None, 1),
        "v1 bytes from fastavro decode into the v2 struct"
    );
}
