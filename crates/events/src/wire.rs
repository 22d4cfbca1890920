//! serde adapters between domain-friendly Rust types and the exact Avro representation:
//! `NaiveDate` <-> `int` (logicalType date, days since 1970-01-01), `DateTime<Utc>` <-> `long`
//! (timestamp-micros) and `Uuid` <-> `string` (logicalType uuid).
//!
//! Written against plain integers/strings on purpose: apache-avro's serde bridge maps logical
//! types onto the primitives, and Uuid's own serde impl switches to raw bytes for non
//! human-readable formats, which would not match a `string` schema.

use chrono::{DateTime, Datelike as _, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serializer};
use uuid::Uuid;

/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;

pub(crate) fn date_to_days(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - UNIX_EPOCH_CE_DAYS
}

pub(crate) fn days_to_date(days: i32) -> Option<NaiveDate> {
    days.checked_add(UNIX_EPOCH_CE_DAYS)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
}

pub(crate) mod date {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(date_to_days(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        let days = i32::deserialize(d)?;
        days_to_date(days).ok_or_else(|| {
            serde::de::Error::custom(format!("date {days} days from epoch is out of range"))
        })
    }

    pub(crate) mod option {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(
            d: &Option<NaiveDate>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_some(&date_to_days(*d)),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<NaiveDate>, D::Error> {
            match Option::<i32>::deserialize(d)? {
                Some(days) => days_to_date(days).map(Some).ok_or_else(|| {
                    serde::de::Error::custom(format!("date {days} days from epoch is out of range"))
                }),
                None => Ok(None),
            }
        }
    }
}

pub(crate) mod timestamp_micros {
    use super::*;

    /// Sub-microsecond precision is truncated (Avro carries micros); `EventMeta::new` truncates
    /// up front so a value round-trips unchanged.
    pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.timestamp_micros())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let micros = i64::deserialize(d)?;
        DateTime::from_timestamp_micros(micros).ok_or_else(|| {
            serde::de::Error::custom(format!("timestamp {micros} micros is out of range"))
        })
    }
}

pub(crate) mod uuid_string {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(u: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(u.hyphenated().encode_lower(&mut Uuid::encode_buffer()))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Uuid;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a UUID string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Uuid, E> {
                Uuid::parse_str(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The epoch is day 0 and dates before it are negative, as the Avro spec defines `date`.
    #[test]
    fn date_days_follow_the_avro_definition() {
        assert_eq!(
            date_to_days(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()),
            0
        );
        assert_eq!(
            date_to_days(NaiveDate::from_ymd_opt(2025, 2, 25).unwrap()),
            20_144
        );
        assert_eq!(
            date_to_days(NaiveDate::from_ymd_opt(1969, 12, 31).unwrap()),
            -1
        );
        assert_eq!(days_to_date(20_144), NaiveDate::from_ymd_opt(2025, 2, 25));
        assert_eq!(days_to_date(i32::MAX), None);
    }
}
