//! Row <-> port type conversions, the header blob format, clocks and SQLite error mapping.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{ErrorCode, Row};

use crate::{ETag, Error, OutboxMessage, PendingOutbox, Result, StoredDoc};

/// Column list every document read selects, in the order [`RawDoc::from_row`] expects.
pub(crate) const DOC_COLUMNS: &str = "container, partition_key, id, body, etag, seq";

/// Condition that hides expired documents. A doc is live while `expires_at > now`, so a TTL of
/// zero means "already expired" (never visible), and a purge that has not run yet changes nothing
/// a reader can observe. `?now` is bound by name so every query shape shares the same text.
pub(crate) const LIVE: &str = "(expires_at IS NULL OR expires_at > :now)";

/// A document row before its body is parsed: parsing happens outside rusqlite's row closure so
/// a corrupt body becomes our `Error::Backend` instead of a rusqlite conversion error.
pub(crate) struct RawDoc {
    container: String,
    partition_key: String,
    id: String,
    body: String,
    etag: String,
    seq: i64,
}

impl RawDoc {
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawDoc {
            container: row.get(0)?,
            partition_key: row.get(1)?,
            id: row.get(2)?,
            body: row.get(3)?,
            etag: row.get(4)?,
            seq: row.get(5)?,
        })
    }

    pub(crate) fn into_doc(self) -> Result<StoredDoc> {
        let body = serde_json::from_str(&self.body)
            .map_err(|e| Error::Backend(format!("corrupt body of document {}: {e}", self.id)))?;
        Ok(StoredDoc {
            container: self.container,
            partition_key: self.partition_key,
            id: self.id,
            body,
            etag: ETag(self.etag),
            sequence: seq_to_u64(self.seq)?,
        })
    }
}

/// An outbox row as read for publishing, decoded outside rusqlite's closure like [`RawDoc`].
pub(crate) struct RawPending {
    seq: i64,
    message_id: String,
    topic: String,
    key: String,
    payload: Vec<u8>,
    headers: Vec<u8>,
}

impl RawPending {
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawPending {
            seq: row.get(0)?,
            message_id: row.get(1)?,
            topic: row.get(2)?,
            key: row.get(3)?,
            payload: row.get(4)?,
            headers: row.get(5)?,
        })
    }

    pub(crate) fn into_pending(self) -> Result<PendingOutbox> {
        let RawPending {
            seq,
            message_id,
            topic,
            key,
            payload,
            headers,
        } = self;
        let headers = decode_headers(&headers).map_err(|why| {
            Error::Backend(format!(
                "corrupt headers of outbox message {message_id}: {why}"
            ))
        })?;
        Ok(PendingOutbox {
            seq: seq_to_u64(seq)?,
            message: OutboxMessage {
                message_id,
                topic,
                key,
                payload,
                headers,
            },
        })
    }
}

fn seq_to_u64(seq: i64) -> Result<u64> {
    u64::try_from(seq).map_err(|_| Error::Backend(format!("negative sequence {seq} in store")))
}

/// Headers as `(u32 LE name length, name, u32 LE value length, value)*`. Chosen over JSON
/// because header values are arbitrary bytes (JSON would need base64 or number arrays) and
/// over a serde format crate because this is the whole format.
pub(crate) fn encode_headers(headers: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(headers.iter().map(|(k, v)| 8 + k.len() + v.len()).sum());
    for (name, value) in headers {
        for part in [name.as_bytes(), value.as_slice()] {
            let len = u32::try_from(part.len())
                .map_err(|_| Error::Invalid("outbox header larger than 4 GiB".into()))?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    Ok(out)
}

pub(crate) fn decode_headers(
    mut bytes: &[u8],
) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    fn take<'a>(bytes: &mut &'a [u8]) -> std::result::Result<&'a [u8], String> {
        let (len, rest) = bytes.split_first_chunk::<4>().ok_or("truncated length")?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(format!("field of {len} bytes but only {} left", rest.len()));
        }
        let (field, rest) = rest.split_at(len);
        *bytes = rest;
        Ok(field)
    }
    let mut headers = Vec::new();
    while !bytes.is_empty() {
        let name = String::from_utf8(take(&mut bytes)?.to_vec())
            .map_err(|e| format!("header name: {e}"))?;
        let value = take(&mut bytes)?.to_vec();
        headers.push((name, value));
    }
    Ok(headers)
}

/// Wall-clock milliseconds since the Unix epoch: the unit of `expires_at`, `created_at`,
/// `published_at`. Epoch instants carry no zone, so they are exact in IST and everywhere else.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `usize` limits from callers to SQLite's `LIMIT` (which is i64); anything huge means "all".
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

/// Lock contention that outlasted busy_timeout is a transient "try again" (another process holds
/// the file), everything else is a backend failure.
pub(crate) fn sqlite_error(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            Error::Unavailable(format!("sqlite busy: {e}"))
        }
        _ => Error::Backend(format!("sqlite: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers survive encode/decode byte for byte, including empty and non-UTF-8 values.
    #[test]
    fn headers_round_trip() {
        let headers = vec![
            ("content-type".to_string(), b"avro/binary".to_vec()),
            (String::new(), Vec::new()),
            ("trace".to_string(), vec![0, 255, 128, 10]),
        ];
        let encoded = encode_headers(&headers).unwrap();
        assert_eq!(decode_headers(&encoded).unwrap(), headers);
    }

    /// A truncated header blob is reported as corrupt instead of being silently shortened.
    #[test]
    fn truncated_headers_are_rejected() {
        let encoded = encode_headers(&[("name".to_string(), b"value".to_vec())]).unwrap();
        assert!(decode_headers(&encoded[..encoded.len() - 1]).is_err());
        assert!(decode_headers(&encoded[..2]).is_err());
    }
}
