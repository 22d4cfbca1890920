//! The PII scan (logs, every Kafka topic, every Redis key of the service) and the commission
//! engine (exact amounts, idempotency), against the real broker and Redis.

mod common;

use std::str::FromStr;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use common::{Harness, Options, aadhaar_like, captured_logs, investor_body, pan_with};
use nivesh_events::{EventMeta, KycVerified, NavPublished, TransactionCompleted, leg, order_kind};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};

/// After a full onboarding run with a real Aadhaar-shaped number and a PAN (KYC verdict,
/// cached reads, erasure of a second investor), no Aadhaar digits and no unmasked PAN appear in
/// the service's logs, in any message on any topic, or in any Redis key or value.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_pii_in_logs_kafka_or_redis() {
    let h = Harness::start(Options::default()).await;
    let aadhaar = aadhaar_like("58273946152");
    let pan = pan_with("7531");
    let view = h
        .onboard("dist-pii", &investor_body(&pan, Some(&aadhaar)))
        .await;
    let id = view["investorId"].as_str().unwrap().to_string();
    h.wait_investor(&id, |v| v["kyc"]["status"] == "VALIDATED")
        .await;
    // Cached reads by everyone allowed, and the distributor's list.
    for bearer in [h.distributor("dist-pii"), h.investor(&id), h.admin()] {
        let (s, _) = h.get(&format!("/v1/investors/{id}"), Some(&bearer)).await;
        assert_eq!(s, 200);
    }
    let (s, _) = h
        .get("/v1/distributors/dist-pii/investors", Some(&h.admin()))
        .await;
    assert_eq!(s, 200);
    // A second investor, erased; and a rejected validation that carried the PAN and Aadhaar.
    let aadhaar2 = aadhaar_like("67283940517");
    let pan2 = pan_with("8642");
    let v2 = h
        .onboard("dist-pii", &investor_body(&pan2, Some(&aadhaar2)))
        .await;
    let id2 = v2["investorId"].as_str().unwrap().to_string();
    let (s, _, _) = h
        .post(
            &format!("/v1/investors/{id2}/erasure"),
            Some(&h.admin()),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let mut bad = investor_body(&pan, Some(&aadhaar));
    bad["name"] = json!("");
    let (s, _, _) = h
        .post("/v1/investors", Some(&h.distributor("dist-pii")), &bad)
        .await;
    assert_eq!(s, 422);
    let idc = id.clone();
    h.wait_for("kyc.verified", move |es: &[KycVerified]| {
        es.iter().any(|e| e.investor_id == idc)
    })
    .await;
    // Let the outbox relay publish everything committed (the erasure event).
    let idc = id2.clone();
    h.wait_for(
        "investor.erased",
        move |es: &[nivesh_events::InvestorErased]| es.iter().any(|e| e.investor_id == idc),
    )
    .await;

    let secrets: Vec<String> = vec![
        aadhaar.clone(),
        aadhaar2.clone(),
        format!("{} {} {}", &aadhaar[..4], &aadhaar[4..8], &aadhaar[8..]),
        aadhaar[..8].to_string(),
        aadhaar2[..8].to_string(),
        pan.clone(),
        pan2.clone(),
    ];
    let leaks = |what: &str, haystack: &[u8]| {
        let text = String::from_utf8_lossy(haystack);
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "{what} contains PII {s:?}: {}",
                text.chars().take(400).collect::<String>()
            );
        }
    };

    // 1. Logs (the test binary's captured tracing output).
    let logs = captured_logs();
    assert!(
        logs.contains("KYC verdict applied") && logs.contains(&id),
        "the service's logs were not captured"
    );
    leaks("the service log", logs.as_bytes());

    // 2. Every message (payload, key and headers) on every topic of the catalog.
    let mut scanned = 0;
    for topic in nivesh_bus::catalog::all_topics() {
        let msgs = nivesh_testkit::kafka::read_all(&h.bootstrap, &topic.name, common::WAIT).await;
        for m in &msgs {
            scanned += 1;
            leaks(&format!("{} payload", topic.name), &m.payload);
            leaks(
                &format!("{} key", topic.name),
                m.key.as_deref().unwrap_or_default(),
            );
            for (k, v) in &m.headers {
                leaks(&format!("{} header {k}", topic.name), v);
            }
        }
    }
    assert!(
        scanned >= 4,
        "expected onboarding events on the topics, scanned {scanned}"
    );

    // 3. Every Redis key of this service instance, and its value.
    let client = redis::Client::open(nivesh_testkit::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", h.redis_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        keys.iter().any(|k| k.contains(&id)),
        "the masked view was expected in Redis: {keys:?}"
    );
    for key in &keys {
        leaks("a Redis key", key.as_bytes());
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(kind, "string", "unexpected Redis type for {key}");
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        leaks(&format!("Redis value of {key}"), &value.unwrap_or_default());
    }

    // 4. The PAN claims: only the still-registered investor's PAN is claimed (the erased one's
    // claim was released), under a keyed hash: neither the PAN nor a plain SHA-256 of it, and
    // exactly the HMAC-SHA256 under the index key, which is stored only wrapped.
    let (claims, _) = h
        .store
        .change_feed("pan_claims", &nivesh_store::Continuation::default(), 100)
        .await
        .unwrap();
    assert_eq!(claims.len(), 1, "{claims:?}");
    let claim = &claims[0];
    assert_eq!(claim.body["investor_id"], id.as_str());
    leaks("the claim partition key", claim.partition_key.as_bytes());
    leaks("the claim", claim.body.to_string().as_bytes());
    let sha = |s: &str| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(s.as_bytes()));
    let message = nivesh_onboarding::claims::claim_message(common::TENANT, &pan);
    for plain in [
        pan.clone(),
        sha(&pan),
        sha(&pan.to_lowercase()),
        sha(&format!("{}|{pan}", common::TENANT)),
        sha(&format!("{}:{pan}", common::TENANT)),
        sha(&message),
    ] {
        assert_ne!(claim.partition_key, plain);
    }
    let key_doc = h
        .store
        .get(
            nivesh_onboarding::vault::VAULT_CONTAINER,
            nivesh_onboarding::claims::INDEX_KEY_PARTITION,
            nivesh_onboarding::claims::INDEX_KEY_ID,
        )
        .await
        .unwrap()
        .expect("the wrapped index key");
    let wrapped: nivesh_onboarding::claims::IndexKeyDoc =
        serde_json::from_value(key_doc.body.clone()).unwrap();
    let kms = nivesh_onboarding::vault::LocalKeyFileKms::open_or_create(
        &nivesh_onboarding::vault::LocalKeyFileKms::default_path(&h.data_dir),
    )
    .unwrap();
    let index_key = nivesh_onboarding::vault::Kms::unwrap_key(&kms, &wrapped.wrapped_key)
        .await
        .unwrap();
    assert_eq!(index_key.len(), 32);
    let stored = key_doc.body.to_string();
    assert!(!stored.contains(&hex::encode(&index_key[..])));
    {
        use base64::Engine as _;
        assert!(
            !stored.contains(&base64::engine::general_purpose::STANDARD.encode(&index_key[..]))
        );
    }
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&index_key).unwrap();
    hmac::Mac::update(&mut mac, message.as_bytes());
    assert_eq!(
        claim.partition_key,
        hex::encode(hmac::Mac::finalize(mac).into_bytes())
    );
    h.stop().await;
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn transaction(
    investor: &str,
    txn_id: &str,
    scheme: &str,
    leg_: &str,
    net: Decimal,
    nav_date: NaiveDate,
) -> TransactionCompleted {
    TransactionCompleted {
        meta: EventMeta::new::<TransactionCompleted>("allotment", Some(txn_id.into())),
        transaction_id: txn_id.into(),
        order_id: format!("ord-{txn_id}"),
        investor_id: investor.into(),
        folio: "F-1".into(),
        leg: leg_.into(),
        order_kind: if leg_ == leg::REDEMPTION {
            order_kind::REDEMPTION.into()
        } else {
            order_kind::PURCHASE.into()
        },
        scheme_code: scheme.into(),
        nav: d("103.9450"),
        nav_date,
        gross_amount: net + d("0.50"),
        stamp_duty: d("0.50"),
        exit_load: Decimal::ZERO,
        net_amount: net,
        units: (net / d("103.9450")).round_dp(3),
        balance_units: (net / d("103.9450")).round_dp(3),
        lots: Vec::new(),
        allotted_at: Utc::now(),
        sip_id: None,
        instalment_no: None,
        linked_order_leg: None,
    }
}

/// Independent expectation: integer paise arithmetic with explicit half-up rounding.
fn expected_paise(amount: Decimal, bps: Decimal, divisor: i64) -> Decimal {
    // amount (rupees) * bps / 10_000 / divisor, in paise = amount * 100 * bps / (10_000 * divisor)
    let numerator = amount * Decimal::ONE_HUNDRED * bps;
    let denominator = Decimal::from(10_000i64 * divisor);
    let paise =
        (numerator / denominator).round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    paise / Decimal::ONE_HUNDRED
}

/// Commission: category rates from nav.broadcast, the default rates otherwise, exact amounts,
/// one accrual per transaction however often it is delivered, nothing for redemptions or for
/// investors not onboarded by a distributor; each distributor sees only their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commission_accrues_once_with_exact_amounts() {
    let equity = "Equity Scheme - Large Cap Fund";
    let h = Harness::start(Options {
        vars: vec![(
            "NIVESH__SERVICE__COMMISSION__DEFAULT__TRAIL_BPS".into(),
            "45".into(),
        )],
        service_toml: Some(
            r#"
[service.commission.default]
upfront_bps = "0"
trail_bps = "30"

[service.commission.categories."Equity Scheme - Large Cap Fund"]
upfront_bps = "100"
trail_bps = "85"
"#
            .into(),
        ),
        ..Options::default()
    })
    .await;
    let view = h
        .onboard("dist-c", &investor_body(&pan_with("1357"), None))
        .await;
    let investor = view["investorId"].as_str().unwrap().to_string();

    // The scheme's category arrives with its NAV.
    let nav = NavPublished {
        meta: EventMeta::new::<NavPublished>("nav-publisher", None),
        scheme_code: "120503".into(),
        scheme_name: "Axis Bluechip Fund - Direct Plan - Growth".into(),
        amc: Some("Axis Mutual Fund".into()),
        category: Some(equity.into()),
        scheme_type: Some("Open Ended Schemes".into()),
        nav: d("58.1200"),
        nav_date: NaiveDate::from_ymd_opt(2025, 2, 25).unwrap(),
        anomaly: false,
        change_kind: "NEW".into(),
    };
    h.publish("nav.broadcast", "120503", &nav).await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let rates = loop {
        let (s, r) = h
            .get(
                "/v1/commission/rates?schemeCode=120503",
                Some(&h.distributor("dist-c")),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        if !r["schemeCategory"].is_null() {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "category never learnt"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The category's rates from the file; the default's trail from the environment (wins).
    assert_eq!(rates["upfrontBps"], "100");
    assert_eq!(rates["trailBps"], "85");

    let day = NaiveDate::from_ymd_opt(2025, 2, 25).unwrap();
    let next = NaiveDate::from_ymd_opt(2025, 2, 26).unwrap();
    let equity_txn = transaction(
        &investor,
        "txn-eq-1",
        "120503",
        leg::PURCHASE,
        d("9999.50"),
        day,
    );
    let default_txn = transaction(
        &investor,
        "txn-dflt-1",
        "119551",
        leg::SWITCH_IN,
        d("12345.67"),
        next,
    );
    let redemption = transaction(
        &investor,
        "txn-red-1",
        "120503",
        leg::REDEMPTION,
        d("5000.00"),
        day,
    );
    let stranger = transaction(
        "inv-not-onboarded-here",
        "txn-x-1",
        "120503",
        leg::PURCHASE,
        d("1000"),
        day,
    );
    // The same transaction twice (same event), and once more under a new event id.
    h.publish("transaction.completed", &investor, &equity_txn)
        .await;
    h.publish("transaction.completed", &investor, &equity_txn)
        .await;
    let mut reissued = equity_txn.clone();
    reissued.meta = EventMeta::new::<TransactionCompleted>("allotment", None);
    h.publish("transaction.completed", &investor, &reissued)
        .await;
    h.publish("transaction.completed", &investor, &redemption)
        .await;
    h.publish("transaction.completed", "inv-not-onboarded-here", &stranger)
        .await;
    // Same key after the duplicates: once its accrual exists, the duplicates were handled.
    h.publish("transaction.completed", &investor, &default_txn)
        .await;

    let path = "/v1/distributors/dist-c/commissions?from=2025-02-01&to=2025-02-28";
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let report = loop {
        let (s, r) = h.get(path, Some(&h.distributor("dist-c"))).await;
        assert_eq!(s, 200, "{r}");
        if r["accruals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["transactionId"] == "txn-dflt-1")
        {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "no accrual: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let accruals = report["accruals"].as_array().unwrap();
    let ids: Vec<&str> = accruals
        .iter()
        .map(|a| a["transactionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["txn-eq-1", "txn-dflt-1"], "{report}");

    let get = |a: &Value, k: &str| d(a[k].as_str().unwrap());
    let eq = &accruals[0];
    assert_eq!(eq["rateCategory"], equity);
    assert_eq!(eq["schemeCategory"], equity);
    assert_eq!(get(eq, "amount"), d("9999.50"));
    assert_eq!(
        get(eq, "upfront"),
        expected_paise(d("9999.50"), d("100"), 1)
    );
    assert_eq!(
        get(eq, "trailAnnual"),
        expected_paise(d("9999.50"), d("85"), 1)
    );
    assert_eq!(
        get(eq, "trailDaily"),
        expected_paise(d("9999.50"), d("85"), 365)
    );
    // By hand: 99.995 -> 100.00; 84.99575 -> 85.00; 0.23286... -> 0.23
    assert_eq!(get(eq, "upfront"), d("100.00"));
    assert_eq!(get(eq, "trailAnnual"), d("85.00"));
    assert_eq!(get(eq, "trailDaily"), d("0.23"));

    let df = &accruals[1];
    assert!(df["rateCategory"].is_null());
    assert_eq!(get(df, "upfront"), Decimal::ZERO);
    assert_eq!(
        get(df, "trailAnnual"),
        expected_paise(d("12345.67"), d("45"), 1)
    );
    assert_eq!(
        get(df, "trailDaily"),
        expected_paise(d("12345.67"), d("45"), 365)
    );
    // By hand: 55.555515 -> 55.56; 0.152206... -> 0.15
    assert_eq!(get(df, "trailAnnual"), d("55.56"));
    assert_eq!(get(df, "trailDaily"), d("0.15"));

    let totals = &report["totals"];
    assert_eq!(totals["count"], 2);
    assert_eq!(get(totals, "amount"), d("22345.17"));
    assert_eq!(get(totals, "upfront"), d("100.00"));
    assert_eq!(get(totals, "trailAnnual"), d("140.56"));
    assert_eq!(get(totals, "trailDaily"), d("0.38"));

    // The date range filters by trade date.
    let (_, only_next) = h
        .get(
            "/v1/distributors/dist-c/commissions?from=2025-02-26&to=2025-02-26",
            Some(&h.distributor("dist-c")),
        )
        .await;
    assert_eq!(only_next["accruals"].as_array().unwrap().len(), 1);
    // Access: another distributor 403, admin sees all, a bad range is 400.
    let (s, _) = h.get(path, Some(&h.distributor("dist-other"))).await;
    assert_eq!(s, 403);
    let (s, r) = h.get(path, Some(&h.admin())).await;
    assert_eq!((s, r["totals"]["count"].as_i64()), (200, Some(2)));
    let (s, _) = h
        .get(
            "/v1/distributors/dist-c/commissions?from=2025-03-01&to=2025-02-01",
            Some(&h.admin()),
        )
        .await;
    assert_eq!(s, 400);
    // Still exactly two after a redelivery later on.
    h.publish("transaction.completed", &investor, &equity_txn)
        .await;
    let sentinel = transaction(
        &investor,
        "txn-sentinel",
        "119551",
        leg::PURCHASE,
        d("100"),
        next,
    );
    h.publish("transaction.completed", &investor, &sentinel)
        .await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let (_, r) = h.get(path, Some(&h.admin())).await;
        let n = r["totals"]["count"].as_i64().unwrap();
        if n == 3 {
            let ids: Vec<&str> = r["accruals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["transactionId"].as_str().unwrap())
                .collect();
            assert_eq!(ids, ["txn-eq-1", "txn-dflt-1", "txn-sentinel"]);
            break;
        }
        assert!(n < 3 && tokio::time::Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.stop().await;
}
