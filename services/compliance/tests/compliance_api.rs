//! The compliance service end to end over its real dependencies: events produced to the dev
//! broker over TCP land in the hash-chained ledger; the HTTP API (real bearer tokens from a dev
//! identity provider) verifies chains, returns traces, erases, grants and exports.

mod common;

use chrono::{DateTime, Duration as TimeDelta, NaiveDate, TimeZone, Utc};
use common::{OFFICER, Svc, date, sha256, start, start_with};
use nivesh_auth::{DevClaims, Role};
use nivesh_compliance::export::{EXPORTS, ExportJob, ExportStatus, StatusChange};
use nivesh_compliance::ledger::{LEDGER, record_id};
use nivesh_events::{
    AlertRaised, EventMeta, InvestorErased, InvestorOnboarded, NavPublished, OrderPlaced,
    PaymentSucceeded, TransactionCompleted,
};
use nivesh_store::{Batch, WriteOp};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// 2025-02-25 11:00 IST.
fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 2, 25, h, 30, 0).unwrap()
}

fn onboarded(investor: &str, name: &str, tenant: &str) -> InvestorOnboarded {
    InvestorOnboarded {
        meta: EventMeta::new::<InvestorOnboarded>("onboarding", None),
        investor_id: investor.into(),
        tenant: tenant.into(),
        distributor_id: Some("DIST1".into()),
        pan_masked: "XXXXXX234F".into(),
        name: name.into(),
        kyc_status: "REGISTERED".into(),
        onboarded_at: at(4),
    }
}

fn placed(investor: &str, order: &str, scheme: &str) -> OrderPlaced {
    OrderPlaced {
        meta: EventMeta::new::<OrderPlaced>("order", None),
        order_id: order.into(),
        investor_id: investor.into(),
        kind: "PURCHASE".into(),
        scheme_code: scheme.into(),
        scheme_name: None,
        scheme_category: None,
        target_scheme_code: None,
        target_scheme_category: None,
        amount: Some(dec("10000.00")),
        units: None,
        all_units: false,
        placed_at: at(5),
        sip_id: None,
        instalment_no: None,
        payment_instrument: Some("asha.rao@okicici".into()),
    }
}

fn paid(investor: &str, order: &str, scheme: &str) -> PaymentSucceeded {
    PaymentSucceeded {
        meta: EventMeta::new::<PaymentSucceeded>("payment", None),
        payment_id: format!("pay-{order}"),
        order_id: order.into(),
        investor_id: investor.into(),
        amount: dec("10000.00"),
        gateway_ref: format!("pg_{order}"),
        realised_at: at(5),
        order_kind: "PURCHASE".into(),
        scheme_code: scheme.into(),
        scheme_category: None,
        sip_id: None,
        instalment_no: None,
    }
}

fn completed(
    investor: &str,
    order: &str,
    scheme: &str,
    nav: &str,
    nav_date: NaiveDate,
) -> TransactionCompleted {
    TransactionCompleted {
        meta: EventMeta::new::<TransactionCompleted>("allotment", None),
        transaction_id: format!("txn-{order}"),
        order_id: order.into(),
        investor_id: investor.into(),
        folio: "F-1".into(),
        leg: "PURCHASE".into(),
        order_kind: "PURCHASE".into(),
        scheme_code: scheme.into(),
        nav: dec(nav),
        nav_date,
        gross_amount: dec("10000.00"),
        stamp_duty: dec("0.50"),
        exit_load: dec("0"),
        net_amount: dec("9999.50"),
        units: dec("98.765"),
        balance_units: dec("98.765"),
        lots: Vec::new(),
        allotted_at: at(10),
        sip_id: None,
        instalment_no: None,
        linked_order_leg: None,
    }
}

fn nav(scheme: &str, value: &str, nav_date: NaiveDate) -> NavPublished {
    NavPublished {
        meta: EventMeta::new::<NavPublished>("nav-publisher", None),
        scheme_code: scheme.into(),
        scheme_name: format!("Scheme {scheme} - Direct Growth"),
        amc: None,
        category: None,
        scheme_type: Some("Open Ended Schemes".into()),
        nav: dec(value),
        nav_date,
        anomaly: false,
        change_kind: "NEW".into(),
    }
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Events become ledger records with a valid chain; a duplicate event appends once; the trace
/// (JSON and CSV + manifest) returns them with PII decrypted while the store only holds
/// ciphertext; a record altered in the store breaks verification at exactly that record.
#[tokio::test]
async fn ledger_chain_dedupe_trace_and_tamper() {
    let svc = start().await;
    svc.grant_officer().await;
    let inv = "INV-L1";
    svc.produce(
        "investor.onboarded",
        inv,
        &onboarded(inv, "Asha Rao", "nivesh"),
    )
    .await;
    svc.ledger_has(inv, 1).await;
    let order = placed(inv, "ord-1", "119551");
    svc.produce_with(
        "order.placed",
        inv,
        &order,
        vec![("traceparent".into(), TRACEPARENT.as_bytes().to_vec())],
    )
    .await;
    svc.produce("order.placed", inv, &order).await; // the same event again
    svc.produce("payment.success", inv, &paid(inv, "ord-1", "119551"))
        .await;
    svc.ledger_has(inv, 3).await;
    svc.produce(
        "transaction.completed",
        inv,
        &completed(inv, "ord-1", "119551", "101.2345", date(2025, 2, 25)),
    )
    .await;
    svc.produce(
        "nav.broadcast",
        "119551",
        &nav("119551", "101.2345", date(2025, 2, 25)),
    )
    .await;
    let report = svc.ledger_has(inv, 4).await;
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["lastSequence"], 4);
    svc.ledger_has("scheme-119551", 1).await;

    // The trace as the officer (grant active): every record, PII readable, trace id kept.
    let r = svc
        .get(
            &svc.officer(),
            &format!("/v1/compliance/investors/{inv}/trace?from=2025-01-01"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    assert_eq!(r.body["count"], 4);
    let records = r.body["records"].as_array().unwrap();
    let types: Vec<&str> = records
        .iter()
        .map(|x| x["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "nivesh.order.OrderPlaced")
            .count(),
        1,
        "{types:?}"
    );
    assert!(types.contains(&"nivesh.identity.InvestorOnboarded"));
    assert!(types.contains(&"nivesh.txn.TransactionCompleted"));
    let onboarding = records
        .iter()
        .find(|x| x["event_type"] == "nivesh.identity.InvestorOnboarded")
        .unwrap();
    assert_eq!(onboarding["payload"]["name"], "Asha Rao");
    let placed_rec = records
        .iter()
        .find(|x| x["event_type"] == "nivesh.order.OrderPlaced")
        .unwrap();
    assert_eq!(placed_rec["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        placed_rec["payload"]["payment_instrument"],
        "asha.rao@okicici"
    );
    assert_eq!(placed_rec["payload"]["amount"], "10000.00");
    assert_eq!(placed_rec["actor"], "order");
    assert!(
        placed_rec["occurred_at"]
            .as_str()
            .unwrap()
            .ends_with("+05:30")
    );

    // The store holds ciphertext only.
    let store = svc.svc.ledger().store().clone();
    let seq = onboarding["seq"].as_u64().unwrap();
    let raw = store
        .get(LEDGER, inv, &record_id(seq))
        .await
        .unwrap()
        .unwrap();
    assert!(!raw.body.to_string().contains("Asha"), "{}", raw.body);
    assert!(raw.body["payload"]["name"]["$enc"].is_string());

    // A window that excludes everything is empty.
    let r = svc
        .get(
            &svc.officer(),
            &format!("/v1/compliance/investors/{inv}/trace?from=2020-01-01&to=2020-12-31"),
        )
        .await;
    assert_eq!(r.body["count"], 0, "{:#}", r.body);

    // CSV + manifest: the header's hash and the manifest endpoint's hash match the body.
    let q = "from=2025-01-01T00:00:00%2B05:30&to=2030-01-01";
    let csv = svc
        .get(
            &svc.officer(),
            &format!("/v1/compliance/investors/{inv}/trace?{q}&format=csv"),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let body_sha = sha256(&csv.bytes);
    assert_eq!(csv.header("x-manifest-sha256"), Some(body_sha.as_str()));
    let text = String::from_utf8(csv.bytes.clone()).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.contains("Asha Rao"));
    let manifest = svc
        .get(
            &svc.officer(),
            &format!("/v1/compliance/investors/{inv}/trace/manifest?{q}"),
        )
        .await;
    assert_eq!(manifest.status, StatusCode::OK, "{:#}", manifest.body);
    assert_eq!(manifest.body["sha256"], body_sha.as_str());
    assert_eq!(manifest.body["rowCount"], 4);

    // Tamper with record 2 directly in the store: verify names exactly record 2.
    let doc = store
        .get(LEDGER, inv, &record_id(2))
        .await
        .unwrap()
        .unwrap();
    let mut body = doc.body.clone();
    body["payload"]["tampered"] = json!("yes");
    store
        .commit(Batch::new(LEDGER, inv).op(WriteOp::Upsert {
            id: record_id(2),
            body,
            ttl: None,
        }))
        .await
        .unwrap();
    let r = svc
        .get(&svc.admin(), &format!("/v1/compliance/ledger/{inv}/verify"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["ok"], false, "{:#}", r.body);
    assert_eq!(r.body["brokenAt"], 2, "{:#}", r.body);
    assert!(r.body["reason"].as_str().unwrap().contains("hash mismatch"));

    // Every compliance call was audited in the officer's access partition, which verifies.
    let access = format!("access-nivesh-{OFFICER}");
    let r = svc
        .get(
            &svc.admin(),
            &format!("/v1/compliance/ledger/{access}/verify"),
        )
        .await;
    assert_eq!(r.body["ok"], true, "{:#}", r.body);
    assert!(r.body["records"].as_u64().unwrap() >= 4, "{:#}", r.body);
    svc.stop().await;
}

/// `investor.erased` crypto-shreds the investor's key: PII reads "[erased]", the chain still
/// verifies, non-PII stays readable; the erasure endpoint does the same for another investor.
#[tokio::test]
async fn erasure_shreds_pii_and_chain_still_verifies() {
    let svc = start().await;
    let inv = "INV-E1";
    svc.produce(
        "investor.onboarded",
        inv,
        &onboarded(inv, "Ravi Kumar", "nivesh"),
    )
    .await;
    svc.produce("order.placed", inv, &placed(inv, "ord-e1", "119551"))
        .await;
    svc.ledger_has(inv, 2).await;
    let trace = format!("/v1/compliance/investors/{inv}/trace?from=2025-01-01");
    let before = svc.get(&svc.admin(), &trace).await;
    assert!(before.bytes.windows(10).any(|w| w == b"Ravi Kumar"));

    svc.produce(
        "investor.erased",
        inv,
        &InvestorErased {
            meta: EventMeta::new::<InvestorErased>("onboarding", None),
            investor_id: inv.into(),
            tenant: "nivesh".into(),
            distributor_id: Some("DIST1".into()),
            erased_by: "admin-1".into(),
            erased_at: at(12),
        },
    )
    .await;
    let report = svc.ledger_has(inv, 3).await;
    assert_eq!(report["ok"], true, "{report:#}");
    let after = svc
        .get_until(&trace, "PII erased", |b| {
            b["records"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["payload"]["name"] == "[erased]"))
        })
        .await;
    let text = after.to_string();
    assert!(!text.contains("Ravi"), "{text}");
    assert!(!text.contains("asha.rao@okicici"), "{text}");
    let placed_rec = after["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["event_type"] == "nivesh.order.OrderPlaced")
        .unwrap();
    assert_eq!(placed_rec["payload"]["payment_instrument"], "[erased]");
    assert_eq!(placed_rec["payload"]["order_id"], "ord-e1");

    // Through the API, for a second investor.
    let inv2 = "INV-E2";
    svc.produce(
        "investor.onboarded",
        inv2,
        &onboarded(inv2, "Meera Iyer", "nivesh"),
    )
    .await;
    svc.ledger_has(inv2, 1).await;
    let r = svc
        .post(
            &svc.admin(),
            &format!("/v1/compliance/investors/{inv2}/erasure"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    assert_eq!(r.body["keyDestroyed"], true);
    let report = svc.ledger_has(inv2, 2).await;
    assert_eq!(report["ok"], true);
    let t = svc
        .get(
            &svc.admin(),
            &format!("/v1/compliance/investors/{inv2}/trace?from=2025-01-01"),
        )
        .await;
    assert!(!t.body.to_string().contains("Meera"), "{:#}", t.body);
    svc.stop().await;
}

async fn export_until(svc: &Svc, id: &str, status: &str) -> Value {
    svc.get_until(&format!("/v1/compliance/exports/{id}"), status, |b| {
        b["status"] == status
    })
    .await
}

/// An export with a NAV never published is Rejected with that item as a reason; once the NAV
/// is published a retry delivers the file, whose hash matches its manifest.
#[tokio::test]
async fn sebi_export_rejects_missing_nav_then_delivers_after_retry() {
    let svc = start().await;
    let d = date(2025, 2, 25);
    svc.produce("nav.broadcast", "119551", &nav("119551", "101.2345", d))
        .await;
    svc.ledger_has("scheme-119551", 1).await;
    for (inv, order, scheme, value) in [
        ("INV-X1", "ord-x1", "119551", "101.2345"),
        ("INV-X2", "ord-x2", "120503", "50.0000"),
    ] {
        svc.produce("payment.success", inv, &paid(inv, order, scheme))
            .await;
        svc.produce(
            "transaction.completed",
            inv,
            &completed(inv, order, scheme, value, d),
        )
        .await;
        svc.ledger_has(inv, 2).await;
    }
    let r = svc
        .post(
            &svc.admin(),
            "/v1/compliance/exports",
            &json!({"kind": "SEBI_TRANSACTIONS", "date": d}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:#}", r.body);
    let id = r.body["exportId"].as_str().unwrap().to_string();
    let job = export_until(&svc, &id, "Rejected").await;
    let reasons: Vec<&str> = job["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("120503") && reasons[0].contains("2025-02-25"),
        "{reasons:?}"
    );
    assert!(job["filePath"].is_null());

    svc.produce("nav.broadcast", "120503", &nav("120503", "50.0000", d))
        .await;
    svc.ledger_has("scheme-120503", 1).await;
    let r = svc
        .post(
            &svc.admin(),
            &format!("/v1/compliance/exports/{id}/retry"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:#}", r.body);
    let job = export_until(&svc, &id, "Delivered").await;
    let path = job["filePath"].as_str().unwrap();
    let file = std::fs::read(path).unwrap();
    assert_eq!(job["manifest"]["sha256"], sha256(&file).as_str());
    assert_eq!(job["manifest"]["rowCount"], 2);
    assert_eq!(job["manifest"]["layoutVersion"], "SEBI-TXN-2025.1");
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(format!("{path}.manifest.json")).unwrap()).unwrap();
    assert_eq!(on_disk["sha256"], job["manifest"]["sha256"]);
    let text = String::from_utf8(file).unwrap();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("TRADE_DATE,TRANSACTION_ID,ORDER_ID")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .any(|l| l.contains("txn-ord-x2") && l.contains("50.0000") && l.contains("pay-ord-x2")),
        "{text}"
    );
    // A delivered export is not retried.
    let r = svc
        .post(
            &svc.admin(),
            &format!("/v1/compliance/exports/{id}/retry"),
            &json!({}),
        )
        .await;
    r.problem(StatusCode::CONFLICT);
    svc.stop().await;
}

/// Delivery into an unwritable place: three attempts, then NeedsRetry and an AlertRaised on
/// ops.alerts naming the export.
#[tokio::test]
async fn export_delivery_failure_alerts_and_needs_retry() {
    let svc = start_with(|tmp| {
        let file = tmp.join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        vec![(
            "NIVESH__SERVICE__EXPORT_DIR".into(),
            file.join("exports").display().to_string(),
        )]
    })
    .await;
    let d = date(2025, 2, 26);
    settled_purchase(&svc, "INV-F1", "ord-f1", "102.0000", d).await;
    let r = svc
        .post(
            &svc.admin(),
            "/v1/compliance/exports",
            &json!({"kind": "SEBI_TRANSACTIONS", "date": d}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:#}", r.body);
    let id = r.body["exportId"].as_str().unwrap().to_string();
    let job = export_until(&svc, &id, "NeedsRetry").await;
    assert_eq!(job["deliveryAttempts"], 3, "{job:#}");
    assert!(
        job["lastError"].as_str().unwrap().contains("not-a-dir"),
        "{job:#}"
    );
    let statuses: Vec<&str> = job["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["Pending", "Validated", "NeedsRetry"]);
    let wanted = id.clone();
    let alerts = nivesh_testkit::kafka::events_until::<AlertRaised, _>(
        &svc.bootstrap,
        "ops.alerts",
        &svc.codec,
        common::WAIT,
        move |all| {
            all.iter()
                .any(|a| a.subject_id.as_deref() == Some(wanted.as_str()))
        },
    )
    .await;
    let alert = alerts
        .iter()
        .find(|a| a.subject_id.as_deref() == Some(id.as_str()))
        .unwrap();
    assert_eq!(alert.alert_code, "EXPORT_DELIVERY_FAILED");
    assert_eq!(alert.source_service, "compliance");
    assert_eq!(alert.severity, "CRITICAL");
    svc.stop().await;
}

/// A job left in an in-progress status as if its replica had died (lease run out). Seeded
/// straight into the store, exactly as a stopped runner leaves it.
async fn seed_interrupted_job(
    svc: &Svc,
    export_id: &str,
    d: NaiveDate,
    status: ExportStatus,
    lease_until: DateTime<Utc>,
) {
    let at = Utc::now() - TimeDelta::minutes(10);
    let history = [ExportStatus::Pending, ExportStatus::Validated]
        .into_iter()
        .take(if status == ExportStatus::Pending {
            1
        } else {
            2
        })
        .map(|status| StatusChange {
            status,
            at: at.to_rfc3339(),
            detail: None,
        })
        .collect();
    let job = ExportJob {
        export_id: export_id.into(),
        kind: "SEBI_TRANSACTIONS".into(),
        date: d,
        tenant: "nivesh".into(),
        status,
        reasons: Vec::new(),
        delivery_attempts: 0,
        last_error: None,
        file_path: None,
        manifest: None,
        requested_by: "staff-admin".into(),
        history,
        lease_until: Some(lease_until),
    };
    svc.svc
        .ledger()
        .store()
        .commit(Batch::new(EXPORTS, export_id).op(WriteOp::Upsert {
            id: "job".into(),
            body: serde_json::to_value(&job).unwrap(),
            ttl: None,
        }))
        .await
        .unwrap();
}

fn resumed_entries(job: &Value) -> usize {
    job["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| {
            h["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("resumed after an interruption"))
        })
        .count()
}

/// An export interrupted by a restart (Validated, lease run out) is resumed by exactly one
/// claimant (two concurrent scans) and delivered; a job whose runner still holds its lease is
/// left alone; a second interruption after delivery reruns the job without rewriting the file
/// or its manifest (same SHA-256 already delivered).
#[tokio::test]
async fn interrupted_export_is_resumed_once_and_redelivery_is_idempotent() {
    let svc = start_with(|_| {
        vec![(
            "NIVESH__SERVICE__EXPORT_RESUME_INTERVAL_SECS".into(),
            "1".into(),
        )]
    })
    .await;
    let d = date(2025, 2, 27);
    settled_purchase(&svc, "INV-R1", "ord-r1", "103.0000", d).await;

    // Seeded first, so every scan that sees the interrupted job has seen this one too.
    let live = "exp-live-runner";
    seed_interrupted_job(
        &svc,
        live,
        d,
        ExportStatus::Pending,
        Utc::now() + TimeDelta::hours(1),
    )
    .await;
    let id = "exp-interrupted";
    seed_interrupted_job(
        &svc,
        id,
        d,
        ExportStatus::Validated,
        Utc::now() - TimeDelta::minutes(1),
    )
    .await;
    let (a, b) = tokio::join!(svc.svc.resume_interrupted(), svc.svc.resume_interrupted());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(!a.contains(&live.to_string()) && !b.contains(&live.to_string()));

    let job = export_until(&svc, id, "Delivered").await;
    assert_eq!(resumed_entries(&job), 1, "{job:#}");
    let statuses: Vec<&str> = job["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["Pending", "Validated", "Pending", "Validated", "Delivered"]
    );
    assert!(job["leaseUntil"].is_null(), "{job:#}");
    let path = job["filePath"].as_str().unwrap().to_string();
    assert!(path.ends_with(&format!("SEBI_TRANSACTIONS_2025-02-27_{id}.csv")));
    let file = std::fs::read(&path).unwrap();
    assert_eq!(job["manifest"]["sha256"], sha256(&file).as_str());
    assert_eq!(job["manifest"]["rowCount"], 1);
    let manifest_path = format!("{path}.manifest.json");
    let manifest_before = std::fs::read(&manifest_path).unwrap();

    let r = svc
        .get(&svc.admin(), &format!("/v1/compliance/exports/{live}"))
        .await;
    assert_eq!(r.body["status"], "Pending", "{:#}", r.body);
    assert_eq!(resumed_entries(&r.body), 0, "{:#}", r.body);

    // Interrupted again after the delivery (as if the runner died before saving Delivered).
    seed_interrupted_job(
        &svc,
        id,
        d,
        ExportStatus::Validated,
        Utc::now() - TimeDelta::minutes(1),
    )
    .await;
    let job = export_until(&svc, id, "Delivered").await;
    assert_eq!(job["manifest"]["sha256"], sha256(&file).as_str());
    assert_eq!(std::fs::read(&path).unwrap(), file);
    assert_eq!(
        std::fs::read(&manifest_path).unwrap(),
        manifest_before,
        "the manifest of an identical delivery is not rewritten"
    );
    svc.stop().await;
}

/// No token 401; investor, distributor and ops 403; compliance without a grant 403, with an
/// expired grant 403, with an active grant 200; only admins grant; another tenant's investor is
/// a 404 even with a grant.
#[tokio::test]
async fn access_needs_role_and_active_grant_and_respects_tenants() {
    let svc = start().await;
    let inv = "INV-A1";
    svc.produce(
        "investor.onboarded",
        inv,
        &onboarded(inv, "Kiran Shah", "nivesh"),
    )
    .await;
    svc.ledger_has(inv, 1).await;
    let path = format!("/v1/compliance/investors/{inv}/trace");

    let r = svc.http.get(svc.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    for token in [
        svc.idp.investor(inv),
        svc.idp.distributor("DIST1"),
        svc.idp.ops(),
    ] {
        svc.get(&token, &path).await.problem(StatusCode::FORBIDDEN);
    }
    // Compliance role, no grant.
    svc.get(&svc.officer(), &path)
        .await
        .problem(StatusCode::FORBIDDEN);
    // Only admins grant.
    let now = Utc::now();
    let r = svc
        .post(
            &svc.officer(),
            "/v1/compliance/grants",
            &json!({"subject": OFFICER,
            "validFrom": now, "validUntil": now + TimeDelta::hours(1), "reason": "self-service"}),
        )
        .await;
    r.problem(StatusCode::FORBIDDEN);
    // An expired grant.
    let r = svc
        .grant(
            OFFICER,
            now - TimeDelta::hours(3),
            now - TimeDelta::hours(1),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:#}", r.body);
    svc.get(&svc.officer(), &path)
        .await
        .problem(StatusCode::FORBIDDEN);
    // A grant that has not started yet.
    svc.grant(
        OFFICER,
        now + TimeDelta::hours(1),
        now + TimeDelta::hours(2),
    )
    .await;
    svc.get(&svc.officer(), &path)
        .await
        .problem(StatusCode::FORBIDDEN);
    // Invalid window.
    svc.grant(OFFICER, now, now - TimeDelta::minutes(1))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    // An active grant.
    svc.grant_officer().await;
    let r = svc.get(&svc.officer(), &path).await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    assert_eq!(r.body["count"], 1);
    // Admin always.
    assert_eq!(svc.get(&svc.admin(), &path).await.status, StatusCode::OK);

    // Tenant isolation: an officer of another tenant, with a grant there, sees nothing here.
    let other = DevClaims::with_roles(&[Role::Compliance]).tenant("acme");
    let other_admin = DevClaims::with_roles(&[Role::Admin]).tenant("acme");
    let r = svc
        .post(&svc.bearer(&other_admin), "/v1/compliance/grants", &json!({"subject": OFFICER,
            "validFrom": now - TimeDelta::minutes(1), "validUntil": now + TimeDelta::hours(1), "reason": "acme audit"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:#}", r.body);
    svc.get(&svc.bearer(&other), &path)
        .await
        .problem(StatusCode::NOT_FOUND);
    svc.get(
        &svc.bearer(&other_admin),
        &format!("/v1/compliance/ledger/{inv}/verify"),
    )
    .await
    .problem(StatusCode::NOT_FOUND);

    // Denied attempts are audited too.
    let officer_access = format!("access-nivesh-{OFFICER}");
    let r = svc
        .get(
            &svc.admin(),
            &format!("/v1/compliance/ledger/{officer_access}/verify"),
        )
        .await;
    assert_eq!(r.body["ok"], true, "{:#}", r.body);
    let records = svc
        .svc
        .ledger()
        .between(&officer_access, now - TimeDelta::hours(1), Utc::now())
        .await
        .unwrap();
    assert!(records.iter().any(|r| r.payload["outcome"] == "denied"));
    assert!(records.iter().any(|r| r.payload["outcome"] == "allowed"));
    svc.stop().await;
}

/// One purchase of scheme 119551 on `d` with everything an export needs: the day's NAV, the
/// payment and the allotment (at 10:00 that day), all recorded in the ledger.
async fn settled_purchase(svc: &Svc, inv: &str, order: &str, nav_value: &str, d: NaiveDate) {
    svc.produce("nav.broadcast", "119551", &nav("119551", nav_value, d))
        .await;
    svc.produce("payment.success", inv, &paid(inv, order, "119551"))
        .await;
    svc.produce("transaction.completed", inv, &{
        let mut t = completed(inv, order, "119551", nav_value, d);
        t.allotted_at = d.and_hms_opt(10, 0, 0).expect("valid time").and_utc();
        t
    })
    .await;
    svc.ledger_has(inv, 2).await;
    svc.ledger_has("scheme-119551", 1).await;
}
