//! Typed events into outbox records: encode with the service's codec, carry the event id as the
//! message id (consumers dedupe on it), the event type and id as headers, and the current trace
//! context (W3C `traceparent`) so the consumer's span continues this one.

use nivesh_events::{AvroCodec, Event, HEADER_EVENT_ID, HEADER_EVENT_TYPE};
use nivesh_store::OutboxMessage;

/// The outbox record for `event` on `topic`, partitioned by `key`.
pub async fn outbox_message<E: Event>(
    codec: &AvroCodec,
    topic: &str,
    key: &str,
    event: &E,
) -> nivesh_events::Result<OutboxMessage> {
    let payload = codec.encode(event).await?;
    let id = event.meta().event_id.to_string();
    let mut headers = vec![
        (
            HEADER_EVENT_TYPE.to_string(),
            E::FULL_NAME.as_bytes().to_vec(),
        ),
        (HEADER_EVENT_ID.to_string(), id.as_bytes().to_vec()),
    ];
    nivesh_bus::trace::inject_current(&mut headers);
    Ok(OutboxMessage {
        message_id: id,
        topic: topic.to_string(),
        key: key.to_string(),
        payload,
        headers,
    })
}
