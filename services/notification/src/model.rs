//! What the service stores per notification and serves from the API, and where it lives.
//!
//! Container [`NOTIFICATIONS`], partitioned by investor id (everything one event causes is in
//! one partition, so the inbox marker, dedupe records and history of an investor commit
//! together). Document ids:
//! - `n:{recorded_at µs, 20 digits}:{event id}:{channel}`: the notification, sortable by time
//!   (the API lists them newest first by a descending id range);
//! - `d:{event id}:{channel}`: the dedupe record, created (`WriteOp::Create`) in the same batch
//!   as the notification, so an (event, channel) is recorded at most once;
//! - `o:{order id}`: what `order.placed` said about an order (scheme name, switch target);
//! - `inbox:notification:{event id}`: the event is fully handled.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const NOTIFICATIONS: &str = "notifications";

/// Prefix of notification document ids.
pub const NOTIFICATION_PREFIX: &str = "n:";

/// The notification id and dedupe key: `{event id}:{channel}`.
pub fn notification_key(event_id: &str, channel: &str) -> String {
    format!("{event_id}:{channel}")
}

pub fn dedupe_id(key: &str) -> String {
    format!("d:{key}")
}

/// `n:{µs since the epoch, zero-padded}:{key}`: ids sort by the time the notification was
/// recorded.
pub fn notification_doc_id(recorded_micros: i64, key: &str) -> String {
    format!("{NOTIFICATION_PREFIX}{:020}:{key}", recorded_micros.max(0))
}

pub fn order_context_id(order_id: &str) -> String {
    format!("o:{order_id}")
}

/// The outcome of one (event, channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationStatus {
    /// Accepted by the mail system or the provider.
    Sent,
    /// Refused for good (malformed address, unknown number): not retried.
    Failed,
    /// Nobody to send it to: the investor is not in the registry or has no address on this
    /// channel.
    Undeliverable,
}

impl NotificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Sent => "SENT",
            NotificationStatus::Failed => "FAILED",
            NotificationStatus::Undeliverable => "UNDELIVERABLE",
        }
    }
}

/// The event a notification was caused by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventRef {
    pub event_id: String,
    /// Full record name, e.g. `nivesh.txn.TransactionCompleted`.
    pub event_type: String,
    pub topic: String,
    pub order_id: String,
    /// When the event happened (IST).
    #[schema(value_type = String, format = DateTime, example = "2025-02-25T15:10:00+05:30")]
    pub occurred_at: DateTime<FixedOffset>,
}

/// One message to one investor on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// `{event id}:{channel}`; also the email Message-ID / provider idempotency key source.
    pub notification_id: String,
    pub investor_id: String,
    /// `email`, `sms` or `push`.
    pub channel: String,
    pub status: NotificationStatus,
    /// Template id, e.g. `units_allotted`.
    pub template: String,
    /// Address it went to (absent when undeliverable).
    pub recipient: Option<String>,
    pub subject: Option<String>,
    /// The rendered text as sent.
    pub body: String,
    /// Why it failed or could not be delivered.
    pub error: Option<String>,
    /// The mail system's or provider's reference.
    pub provider_ref: Option<String>,
    /// Delivery attempt of the event that recorded it (1 = first try).
    pub attempt: u32,
    pub event: EventRef,
    /// When the outcome was recorded (IST).
    #[schema(value_type = String, format = DateTime, example = "2025-02-25T15:10:02+05:30")]
    pub recorded_at: DateTime<FixedOffset>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Notification ids sort by recording time, including across digit-count changes.
    #[test]
    fn ids_sort_by_time() {
        let a = notification_doc_id(999_999, "e:email");
        let b = notification_doc_id(1_000_000, "e:email");
        assert!(a < b, "{a} < {b}");
        assert!(a.starts_with(NOTIFICATION_PREFIX));
        assert_eq!(dedupe_id(&notification_key("e", "sms")), "d:e:sms");
    }
}
