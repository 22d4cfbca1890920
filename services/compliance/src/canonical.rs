//! Canonical forms: an Avro event as readable JSON, and JSON as the exact bytes the hash chain
//! covers.
//!
//! - [`avro_to_json`]: any decoded event (whatever its schema, including events added after
//!   this service was written) becomes plain JSON: `nivesh.common.Decimal` records
//!   (`{unscaled, scale}`) become exact decimal strings, `date` becomes `YYYY-MM-DD`,
//!   `timestamp-micros` an RFC 3339 instant in IST, unions their branch value.
//! - [`canonical_json`]: object keys sorted (byte order) at every level, no whitespace, numbers
//!   and strings as serde_json writes them. Written out by hand rather than relying on
//!   serde_json's map order, which changes when any crate in the build enables
//!   `preserve_order`: the hash of a stored record must never depend on the build.

use apache_avro::types::Value as Avro;
use chrono::{DateTime, NaiveDate};
use nivesh_events::{IST, apache_avro};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// An Avro value (as the codec decodes it) as plain JSON, see the module docs.
pub fn avro_to_json(v: &Avro) -> Value {
    match v {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(*b),
        Avro::Int(i) => Value::from(*i),
        Avro::Long(l) => Value::from(*l),
        Avro::Float(f) => serde_json::Number::from_f64(f64::from(*f))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Avro::Double(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Avro::Bytes(b) | Avro::Fixed(_, b) => Value::String(hex::encode(b)),
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s.clone()),
        Avro::Union(_, inner) => avro_to_json(inner),
        Avro::Array(items) => Value::Array(items.iter().map(avro_to_json).collect()),
        Avro::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), avro_to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Avro::Record(fields) => {
            if let Some(d) = wire_decimal(fields) {
                return Value::String(d.to_string());
            }
            Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), avro_to_json(v)))
                    .collect::<Map<_, _>>(),
            )
        }
        Avro::Date(days) => NaiveDate::from_num_days_from_ce_opt(days + 719_163)
            .map(|d| Value::String(d.to_string()))
            .unwrap_or_else(|| Value::from(*days)),
        Avro::TimestampMicros(us) | Avro::LocalTimestampMicros(us) => {
            instant(DateTime::from_timestamp_micros(*us), *us)
        }
        Avro::TimestampMillis(ms) | Avro::LocalTimestampMillis(ms) => {
            instant(DateTime::from_timestamp_millis(*ms), *ms)
        }
        Avro::TimestampNanos(ns) | Avro::LocalTimestampNanos(ns) => {
            instant(Some(DateTime::from_timestamp_nanos(*ns)), *ns)
        }
        Avro::TimeMillis(t) => Value::from(*t),
        Avro::TimeMicros(t) => Value::from(*t),
        Avro::Uuid(u) => Value::String(u.to_string()),
        other => Value::try_from(other.clone()).unwrap_or(Value::Null),
    }
}

fn instant(t: Option<DateTime<chrono::Utc>>, raw: i64) -> Value {
    t.map(|t| Value::String(t.with_timezone(&IST).to_rfc3339()))
        .unwrap_or_else(|| Value::from(raw))
}

/// `{unscaled: long, scale: int}` (the wire form of `nivesh.common.Decimal`) as a `Decimal`.
fn wire_decimal(fields: &[(String, Avro)]) -> Option<Decimal> {
    let [(a, unscaled), (b, scale)] = fields else {
        return None;
    };
    if a != "unscaled" || b != "scale" {
        return None;
    }
    let (Avro::Long(u), Avro::Int(s)) = (unscaled, scale) else {
        return None;
    };
    Decimal::try_from_i128_with_scale(i128::from(*u), u32::try_from(*s).ok()?).ok()
}

/// The canonical text of a JSON value: keys sorted at every level, no insignificant whitespace.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("a string serializes"));
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&serde_json::to_string(scalar).expect("a scalar serializes")),
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Key order and whitespace of the input never change the canonical text.
    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"z": [1, {"y": 2, "x": 3}], "c": null}}"#)
                .unwrap();
        let b = json!({"a": {"c": null, "z": [1, {"x": 3, "y": 2}]}, "b": 1});
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"z":[1,{"x":3,"y":2}]},"b":1}"#
        );
    }

    /// Wire decimals keep their exact scale; dates and instants read as humans expect (IST).
    #[test]
    fn avro_logical_types_become_readable() {
        let rec = Avro::Record(vec![
            (
                "nav".into(),
                Avro::Record(vec![
                    ("unscaled".into(), Avro::Long(1_012_345)),
                    ("scale".into(), Avro::Int(4)),
                ]),
            ),
            ("nav_date".into(), Avro::Date(20_144)),
            ("at".into(), Avro::TimestampMicros(1_740_470_400_000_000)),
            (
                "opt".into(),
                Avro::Union(1, Box::new(Avro::String("x".into()))),
            ),
        ]);
        assert_eq!(
            avro_to_json(&rec),
            json!({"nav": "101.2345", "nav_date": "2025-02-25",
                   "at": "2025-02-25T13:30:00+05:30", "opt": "x"})
        );
    }
}
