//! The transaction-flow events round-trip through the codec with optional fields set and null,
//! and every one is registered in the embedded catalog at the version its struct claims.

use chrono::{DateTime, NaiveDate, Utc};
use nivesh_events::{
    AvroCodec, Event, EventMeta, LotMovement, OrderFailed, OrderPlaced, PaymentFailed,
    PaymentInitiated, PaymentRefunded, PaymentSucceeded, PortfolioUpdated, SchemaCatalog,
    TransactionCompleted, TransactionFailed, leg, order_kind,
};
use rust_decimal::Decimal;

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(1_740_470_400_123_456).unwrap()
}

async fn round_trip<E: Event + PartialEq + std::fmt::Debug>(event: &E) {
    let codec = AvroCodec::single_object();
    assert!(
        SchemaCatalog::embedded()
            .version(E::FULL_NAME, E::VERSION)
            .is_some(),
        "{} v{} is not in schemas/avro",
        E::FULL_NAME,
        E::VERSION
    );
    let bytes = codec.encode(event).await.unwrap();
    let back: E = codec.decode(&bytes).await.unwrap();
    assert_eq!(&back, event, "{}", E::FULL_NAME);
}

fn placed(full: bool) -> OrderPlaced {
    OrderPlaced {
        meta: EventMeta::new::<OrderPlaced>("order", full.then(|| "idem-1".into())),
        order_id: "ord-1".into(),
        investor_id: "INV0001".into(),
        kind: if full {
            order_kind::SWITCH
        } else {
            order_kind::PURCHASE
        }
        .into(),
        scheme_code: "119551".into(),
        scheme_name: full.then(|| "Aditya Birla Sun Life Banking & PSU Debt Fund".into()),
        scheme_category: full.then(|| "Debt Scheme - Banking and PSU Fund".into()),
        target_scheme_code: full.then(|| "120503".into()),
        target_scheme_category: full.then(|| "Equity Scheme - Large Cap Fund".into()),
        amount: (!full).then(|| dec("5000.00")),
        units: full.then(|| dec("12.345")),
        all_units: false,
        placed_at: at(),
        sip_id: full.then(|| "sip-1".into()),
        instalment_no: full.then_some(3),
        payment_instrument: (!full).then(|| "investor@okbank".into()),
    }
}

/// Every event of the flow, with optionals set and with them null, decodes to what was encoded.
#[tokio::test]
async fn transaction_flow_events_round_trip() {
    round_trip(&placed(true)).await;
    round_trip(&placed(false)).await;
    round_trip(&PaymentInitiated {
        meta: EventMeta::new::<PaymentInitiated>("payment", None),
        payment_id: "pay-1".into(),
        order_id: "ord-1".into(),
        investor_id: "INV0001".into(),
        amount: dec("5000.00"),
        gateway: "pgsim".into(),
        gateway_ref: Some("pg_123".into()),
        initiated_at: at(),
    })
    .await;
    round_trip(&PaymentSucceeded {
        meta: EventMeta::new::<PaymentSucceeded>("payment", None),
        payment_id: "pay-1".into(),
        order_id: "ord-1".into(),
        investor_id: "INV0001".into(),
        amount: dec("5000.00"),
        gateway_ref: "pg_123".into(),
        realised_at: at(),
        order_kind: order_kind::SIP_INSTALMENT.into(),
        scheme_code: "119551".into(),
        scheme_category: Some("Debt Scheme - Liquid Fund".into()),
        sip_id: Some("sip-1".into()),
        instalment_no: Some(2),
    })
    .await;
    round_trip(&PaymentFailed {
        meta: EventMeta::new::<PaymentFailed>("payment", None),
        payment_id: None,
        order_id: "ord-1".into(),
        investor_id: "INV0001".into(),
        amount: dec("5000.00"),
        reason_code: "DECLINED".into(),
        reason: "declined by the issuing bank".into(),
    })
    .await;
    round_trip(&PaymentRefunded {
        meta: EventMeta::new::<PaymentRefunded>("payment", None),
        payment_id: "pay-1".into(),
        refund_id: "rfd-1".into(),
        order_id: "ord-1".into(),
        investor_id: "INV0001".into(),
        amount: dec("5000.00"),
        reason: "NAV_NOT_AVAILABLE".into(),
        refunded_at: at(),
    })
    .await;
    let lot = LotMovement {
        lot_id: "txn-0".into(),
        units: dec("10.000"),
        lot_nav_date: NaiveDate::from_ymd_opt(2025, 2, 20).unwrap(),
        lot_nav: dec("100.1234"),
        cost: dec("1001.23"),
        exit_load: dec("0.07"),
        days_held: 5,
    };
    for lots in [vec![], vec![lot.clone(), lot]] {
        round_trip(&TransactionCompleted {
            meta: EventMeta::new::<TransactionCompleted>("allotment", None),
            transaction_id: "txn-1".into(),
            order_id: "ord-1".into(),
            investor_id: "INV0001".into(),
            folio: "F-INV0001-ABSL".into(),
            leg: leg::REDEMPTION.into(),
            order_kind: order_kind::REDEMPTION.into(),
            scheme_code: "119551".into(),
            nav: dec("101.2345"),
            nav_date: NaiveDate::from_ymd_opt(2025, 2, 25).unwrap(),
            gross_amount: dec("2024.69"),
            stamp_duty: dec("0.00"),
            exit_load: dec("0.14"),
            net_amount: dec("2024.55"),
            units: dec("20.000"),
            balance_units: dec("0.000"),
            lots,
            allotted_at: at(),
            sip_id: None,
            instalment_no: None,
            linked_order_leg: Some("txn-2".into()),
        })
        .await;
    }
    round_trip(&TransactionFailed {
        meta: EventMeta::new::<TransactionFailed>("allotment", None),
        order_id: "ord-1".into(),
        investor_id: "INV0001".into(),
        order_kind: order_kind::PURCHASE.into(),
        scheme_code: "119551".into(),
        reason_code: "NAV_NOT_AVAILABLE".into(),
        reason: "no NAV for 2025-02-25 within 2 days".into(),
        payment_id: Some("pay-1".into()),
        refund_amount: Some(dec("5000.00")),
    })
    .await;
    round_trip(&OrderFailed {
        meta: EventMeta::new::<OrderFailed>("order", None),
        order_id: "ord-1".into(),
        investor_id: "INV0001".into(),
        order_kind: order_kind::PURCHASE.into(),
        scheme_code: "119551".into(),
        stage: "PAYMENT".into(),
        reason_code: "DECLINED".into(),
        reason: "declined".into(),
        payment_id: None,
        refund_amount: None,
    })
    .await;
    round_trip(&PortfolioUpdated {
        meta: EventMeta::new::<PortfolioUpdated>("portfolio", None),
        investor_id: "INV0001".into(),
        order_id: Some("ord-1".into()),
        transaction_id: None,
        scheme_code: "119551".into(),
        units: dec("49.751"),
        invested: dec("4999.75"),
        version: 7,
    })
    .await;
}
