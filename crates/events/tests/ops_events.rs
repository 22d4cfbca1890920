//! The operator alert round-trips through the codec with and without its optional subject, and
//! is registered in the embedded catalog at the version its struct claims.

use chrono::DateTime;
use nivesh_events::{AlertRaised, AvroCodec, Event, EventMeta, SchemaCatalog, alert_severity};

fn alert(subject: Option<&str>) -> AlertRaised {
    AlertRaised {
        meta: EventMeta::new::<AlertRaised>("compliance", subject.map(str::to_owned)),
        source_service: "compliance".into(),
        alert_code: "EXPORT_DELIVERY_FAILED".into(),
        severity: alert_severity::CRITICAL.into(),
        message: "delivery failed 3 times: permission denied".into(),
        subject_id: subject.map(str::to_owned),
        raised_at: DateTime::from_timestamp_micros(1_740_470_400_123_456).unwrap(),
    }
}

#[tokio::test]
async fn alert_raised_round_trips() {
    assert!(
        SchemaCatalog::embedded()
            .version(AlertRaised::FULL_NAME, <AlertRaised as Event>::VERSION)
            .is_some(),
        "nivesh.ops.AlertRaised v1 is not in schemas/avro"
    );
    let codec = AvroCodec::single_object();
    for a in [alert(Some("exp-1")), alert(None)] {
        let bytes = codec.encode(&a).await.unwrap();
        let back: AlertRaised = codec.decode(&bytes).await.unwrap();
        assert_eq!(back, a);
    }
}
