//! Idempotent consumers: the inbox pattern on top of [`crate::Batch`].
//!
//! Kafka delivers at least once, so a handler must make "process this message" happen once.
//! The pattern:
//!
//! ```text
//! let batch = Batch::new(STATE, &partition)
//!     .op(inbox_marker(GROUP, &event_id))     // Create of `inbox:{group}:{event_id}`
//!     .op(WriteOp::Upsert { .. })             // the state change the message causes
//!     .emit(follow_up_event);                 // and what it publishes (outbox)
//! match store.commit(batch).await {
//!     Ok(_) => {}                                                 // processed now
//!     Err(e) if is_inbox_conflict(&e, GROUP, &event_id) => {}     // processed before: skip
//!     Err(e) => return Err(e),                                    // retry the message
//! }
//! ```
//!
//! Because the marker is in the SAME atomic batch as the state change and the outbox, there is
//! no window where one exists without the others: a crash before commit leaves nothing (the
//! redelivery processes it), a crash after leaves the marker (the redelivery conflicts and is
//! skipped). Rejected: checking a marker first and writing it after, which double-processes
//! when the process dies in between; and a Redis `SET NX` marker, which is not atomic with the
//! document write and is lossy by design.
//!
//! Caveats the caller owns:
//! - The marker lives in the batch's container and partition (a transactional batch is limited
//!   to one partition), so a given message must always map to the same partition. It does when
//!   the partition is derived from the message itself.
//! - Markers expire after [`INBOX_TTL`] (7 days, matching the usual topic retention); a message
//!   redelivered after that would be processed again.
//! - Only a conflict on *this* marker means "already processed"; a conflict on another id in
//!   the batch is a real business conflict, hence the check of the id in [`is_inbox_conflict`].

use std::time::Duration;

use chrono::{FixedOffset, Utc};

use crate::{Error, WriteOp};

/// How long a processed-message marker is kept.
pub const INBOX_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The document id of the marker for `message_id` processed by `consumer_group`.
pub fn inbox_marker_id(consumer_group: &str, message_id: &str) -> String {
    format!("inbox:{consumer_group}:{message_id}")
}

/// A Create of the marker `inbox:{group}:{message_id}` with a 7-day TTL; add it to the batch
/// that applies the message.
pub fn inbox_marker(consumer_group: &str, message_id: &str) -> WriteOp {
    // +05:30 so an operator reading the marker sees Indian time; the offset keeps it exact.
    let ist = FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("IST offset is within a day");
    WriteOp::Create {
        id: inbox_marker_id(consumer_group, message_id),
        body: serde_json::json!({
            "kind": "inbox-marker",
            "consumer_group": consumer_group,
            "message_id": message_id,
            "processed_at": Utc::now().with_timezone(&ist).to_rfc3339(),
        }),
        ttl: Some(INBOX_TTL),
    }
}

/// True when `err` is the conflict of the marker for (`group`, `message_id`): the message was
/// already processed and the batch must be treated as done.
pub fn is_inbox_conflict(err: &Error, group: &str, message_id: &str) -> bool {
    matches!(err, Error::Conflict { id } if *id == inbox_marker_id(group, message_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The marker is a Create (so a second one conflicts) with the documented id and 7-day TTL.
    #[test]
    fn marker_is_a_create_with_ttl() {
        let WriteOp::Create { id, body, ttl } = inbox_marker("nav-calc", "evt-1") else {
            panic!("inbox marker must be a Create so duplicates conflict");
        };
        assert_eq!(id, "inbox:nav-calc:evt-1");
        assert_eq!(ttl, Some(Duration::from_secs(604_800)));
        assert_eq!(body["message_id"], "evt-1");
        let at = body["processed_at"]
            .as_str()
            .expect("processed_at is a string");
        assert!(at.ends_with("+05:30"), "processed_at must be IST, got {at}");
    }

    /// Only the conflict on this group's marker for this message counts as "already processed".
    #[test]
    fn only_the_matching_marker_conflict_counts() {
        let conflict = Error::Conflict {
            id: inbox_marker_id("g", "m"),
        };
        assert!(is_inbox_conflict(&conflict, "g", "m"));
        assert!(!is_inbox_conflict(&conflict, "other-group", "m"));
        assert!(!is_inbox_conflict(&conflict, "g", "other-message"));
        assert!(!is_inbox_conflict(
            &Error::Conflict {
                id: "order:1".into()
            },
            "g",
            "m"
        ));
        assert!(!is_inbox_conflict(
            &Error::NotFound {
                id: inbox_marker_id("g", "m")
            },
            "g",
            "m"
        ));
    }
}
