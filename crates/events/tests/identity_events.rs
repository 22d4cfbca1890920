//! The identity events round-trip through the codec (with and without their optional fields)
//! and are registered in the embedded catalog at the version their structs claim.

use chrono::DateTime;
use nivesh_events::{
    AvroCodec, Event, EventMeta, InvestorErased, InvestorOnboarded, KycVerified, SchemaCatalog,
    kyc_status,
};

fn registered<E: Event>() {
    assert!(
        SchemaCatalog::embedded()
            .version(E::FULL_NAME, E::VERSION)
            .is_some(),
        "{} v{} is not in schemas/avro",
        E::FULL_NAME,
        E::VERSION
    );
}

#[tokio::test]
async fn identity_events_round_trip() {
    registered::<InvestorOnboarded>();
    registered::<KycVerified>();
    registered::<InvestorErased>();
    let at = DateTime::from_timestamp_micros(1_740_470_400_123_456).unwrap();
    let codec = AvroCodec::single_object();
    for distributor in [Some("dist-a".to_string()), None] {
        let e = InvestorOnboarded {
            meta: EventMeta::new::<InvestorOnboarded>("onboarding", Some("inv-1:onboarded".into())),
            investor_id: "inv-1".into(),
            tenant: "nivesh".into(),
            distributor_id: distributor.clone(),
            pan_masked: "XXXXXX234F".into(),
            name: "Asha Verma".into(),
            kyc_status: kyc_status::REGISTERED.into(),
            onboarded_at: at,
        };
        let back: InvestorOnboarded = codec
            .decode(&codec.encode(&e).await.unwrap())
            .await
            .unwrap();
        assert_eq!(back, e);
        let e = InvestorErased {
            meta: EventMeta::new::<InvestorErased>("onboarding", None),
            investor_id: "inv-1".into(),
            tenant: "nivesh".into(),
            distributor_id: distributor,
            erased_by: "staff-compliance".into(),
            erased_at: at,
        };
        let back: InvestorErased = codec
            .decode(&codec.encode(&e).await.unwrap())
            .await
            .unwrap();
        assert_eq!(back, e);
    }
    for (status, reason) in [
        (kyc_status::VALIDATED, None),
        (
            kyc_status::REJECTED,
            Some("PAN and name do not match".to_string()),
        ),
    ] {
        let e = KycVerified {
            meta: EventMeta::new::<KycVerified>("onboarding", None),
            investor_id: "inv-1".into(),
            tenant: "nivesh".into(),
            status: status.into(),
            kra_reference: "KRA0000000001".into(),
            verified_at: at,
            reason,
        };
        let back: KycVerified = codec
            .decode(&codec.encode(&e).await.unwrap())
            .await
            .unwrap();
        assert_eq!(back, e);
    }
}
