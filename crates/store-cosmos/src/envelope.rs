//! How our documents, outbox records and relay leases are laid out as Cosmos items.
//!
//! Every item of a container is an envelope:
//! `{ id, partitionKey, type, seq, commit, ttl?, body? | message? | lease? , _etag, _ts, ... }`
//! - `partitionKey` is the container's partition key path (`/partitionKey`, see Terraform's
//!   `deploy/terraform/modules/cosmos`);
//! - `type` tells a document (`doc`) from an outbox record (`outbox`) and the relay's
//!   lease (`lease`): reads, queries and the change feed of the port only ever see `doc`s;
//! - `body` is the caller's document, untouched (Terraform excludes `/body/*` from indexing);
//! - `seq` is the commit stamp (see [`crate::SeqClock`]), `commit` the id of the commit attempt
//!   that wrote the item (used to tell "my earlier attempt landed" after an ambiguous failure);
//! - `ttl` is Cosmos' per-item time to live in seconds (containers run with `default_ttl = -1`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use nivesh_store::{ETag, Error, OutboxMessage, Result, StoredDoc};
use serde_json::{Map, Value, json};

/// The container's partition key path (without the leading slash).
pub const PK_FIELD: &str = "partitionKey";
pub const TYPE_DOC: &str = "doc";
pub const TYPE_OUTBOX: &str = "outbox";
pub const TYPE_LEASE: &str = "lease";
/// Outbox items live next to the documents of their batch (same logical partition, which a
/// transactional batch requires) under this id prefix. `~` is not used by our document ids.
pub const OUTBOX_ID_PREFIX: &str = "~outbox~";

pub fn outbox_item_id(message_id: &str) -> String {
    format!("{OUTBOX_ID_PREFIX}{message_id}")
}

/// Cosmos TTL is whole seconds and at least 1; a sub-second TTL rounds up rather than to
/// "never expires".
pub fn ttl_seconds(ttl: Duration) -> Result<i64> {
    if ttl.is_zero() {
        return Err(Error::Invalid("a TTL must be positive".into()));
    }
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs).map_err(|_| Error::Invalid(format!("TTL {ttl:?} too large")))
}

pub fn doc_item(
    pk: &str,
    id: &str,
    body: &Value,
    ttl: Option<Duration>,
    seq: u64,
    commit: &str,
) -> Result<Value> {
    let mut item = json!({
        "id": id,
        PK_FIELD: pk,
        "type": TYPE_DOC,
        "seq": seq,
        "commit": commit,
        "body": body,
    });
    if let Some(ttl) = ttl {
        item["ttl"] = json!(ttl_seconds(ttl)?);
    }
    Ok(item)
}

pub fn outbox_item(pk: &str, msg: &OutboxMessage, seq: u64, idx: usize, commit: &str) -> Value {
    let headers: Vec<Value> = msg
        .headers
        .iter()
        .map(|(k, v)| json!([k, B64.encode(v)]))
        .collect();
    json!({
        "id": outbox_item_id(&msg.message_id),
        PK_FIELD: pk,
        "type": TYPE_OUTBOX,
        "seq": seq,
        "idx": idx,
        "commit": commit,
        "message": {
            "message_id": msg.message_id,
            "topic": msg.topic,
            "key": msg.key,
            "payload": B64.encode(&msg.payload),
            "headers": headers,
        },
    })
}

fn str_field<'a>(item: &'a Value, field: &str) -> Result<&'a str> {
    item.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Backend(format!("cosmos item without string field {field:?}")))
}

fn u64_field(item: &Value, field: &str) -> Result<u64> {
    item.get(field)
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::Backend(format!("cosmos item without number field {field:?}")))
}

pub fn item_type(item: &Value) -> Option<&str> {
    item.get("type").and_then(Value::as_str)
}

pub fn item_commit(item: &Value) -> Option<&str> {
    item.get("commit").and_then(Value::as_str)
}

/// True when the item's TTL has run out. Cosmos never returns expired items from reads, queries
/// or the change feed, even before its background deletion has run; applying the same rule
/// client-side keeps that true where expiry is not enforced (the SDK's in-memory emulator does
/// not emulate TTL). `_ts` is the last write in whole seconds, like the service computes it.
pub fn is_expired(item: &Value) -> bool {
    let (Some(ttl), Some(ts)) = (
        item.get("ttl").and_then(Value::as_i64),
        item.get("_ts").and_then(Value::as_i64),
    ) else {
        return false;
    };
    if ttl < 0 {
        return false;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(i64::MAX);
    now >= ts.saturating_add(ttl)
}

/// A `doc` item as the port's [`StoredDoc`]. `etag` overrides the item's `_etag` (a batch
/// result reports the etag beside the body).
pub fn stored_doc(container: &str, item: &Value, etag: Option<&str>) -> Result<StoredDoc> {
    let etag = match etag {
        Some(e) => e.to_string(),
        None => str_field(item, "_etag")?.to_string(),
    };
    Ok(StoredDoc {
        container: container.to_string(),
        partition_key: str_field(item, PK_FIELD)?.to_string(),
        id: str_field(item, "id")?.to_string(),
        body: item.get("body").cloned().unwrap_or(Value::Null),
        etag: ETag(etag),
        sequence: u64_field(item, "seq")?,
    })
}

/// Build the port doc straight from what we wrote, with the etag the service assigned.
pub fn stored_doc_from_written(container: &str, item: &Value, etag: &str) -> Result<StoredDoc> {
    stored_doc(container, item, Some(etag))
}

/// An outbox item: (seq, idx, message).
pub fn outbox_message(item: &Value) -> Result<(u64, u64, OutboxMessage)> {
    let msg = item
        .get("message")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::Backend("outbox item without message".into()))?;
    let get = |f: &str| -> Result<String> {
        msg.get(f)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::Backend(format!("outbox message without {f:?}")))
    };
    let decode = |s: &str| {
        B64.decode(s)
            .map_err(|e| Error::Backend(format!("outbox payload is not base64: {e}")))
    };
    let headers = msg
        .get("headers")
        .and_then(Value::as_array)
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    let k = h.get(0).and_then(Value::as_str).unwrap_or_default();
                    let v = h.get(1).and_then(Value::as_str).unwrap_or_default();
                    Ok((k.to_string(), decode(v)?))
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok((
        u64_field(item, "seq")?,
        u64_field(item, "idx").unwrap_or(0),
        OutboxMessage {
            message_id: get("message_id")?,
            topic: get("topic")?,
            key: get("key")?,
            payload: decode(&get("payload")?)?,
            headers,
        },
    ))
}

/// The relay's lease item of one container: where its outbox scan starts.
pub fn lease_item(pk: &str, id: &str, token: &str) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert(PK_FIELD.into(), json!(pk));
    m.insert("type".into(), json!(TYPE_LEASE));
    m.insert("continuation".into(), json!(token));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_seconds_and_rejects_zero() {
        assert_eq!(ttl_seconds(Duration::from_secs(2)).unwrap(), 2);
        assert_eq!(ttl_seconds(Duration::from_millis(1500)).unwrap(), 2);
        assert_eq!(ttl_seconds(Duration::from_millis(1)).unwrap(), 1);
        assert!(matches!(
            ttl_seconds(Duration::ZERO),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn outbox_item_round_trips_binary_payload_and_headers() {
        let msg = OutboxMessage {
            message_id: "m-1".into(),
            topic: "t".into(),
            key: "k".into(),
            payload: vec![0, 255, 7],
            headers: vec![("bin".into(), vec![0, 1, 255]), ("e".into(), vec![])],
        };
        let item = outbox_item("pk", &msg, 42, 3, "c");
        assert_eq!(item["id"], "~outbox~m-1");
        assert_eq!(item[PK_FIELD], "pk");
        let (seq, idx, back) = outbox_message(&item).unwrap();
        assert_eq!((seq, idx), (42, 3));
        assert_eq!(back, msg);
    }

    #[test]
    fn expiry_follows_ts_plus_ttl() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(is_expired(&json!({"ttl": 2, "_ts": now - 3})));
        assert!(!is_expired(&json!({"ttl": 3600, "_ts": now - 3})));
        assert!(!is_expired(&json!({"_ts": now - 3})));
        assert!(!is_expired(&json!({"ttl": -1, "_ts": 0})));
    }
}
