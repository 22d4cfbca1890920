//! One investor per PAN per tenant: retried, duplicated and concurrent `POST /v1/investors`
//! land on one investor; another distributor gets 409; a claim whose record was never written
//! is resumed; an erased investor's PAN can be onboarded again.

mod common;

use std::time::Duration;

use common::{Harness, Options, TENANT, investor_body, pan_with};
use hmac::{Hmac, Mac};
use nivesh_events::InvestorOnboarded;
use nivesh_onboarding::claims::{INDEX_KEY_ID, INDEX_KEY_PARTITION, IndexKeyDoc, claim_message};
use nivesh_onboarding::vault::{Kms, LocalKeyFileKms, VAULT_CONTAINER};
use nivesh_store::{Batch, Continuation, WriteOp};
use nivesh_testkit::DevClaims;
use serde_json::{Value, json};
use sha2::Sha256;

/// POST /v1/investors with `bearer`: (status, body, content type, Idempotent-Replay header).
async fn post_investor(
    h: &Harness,
    bearer: &str,
    body: &Value,
) -> (u16, Value, String, Option<String>) {
    let r = h
        .http
        .post(format!("{}/v1/investors", h.base))
        .header("authorization", bearer)
        .json(body)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let ct = header("content-type").unwrap_or_default();
    let replay = header("idempotent-replay");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null), ct, replay)
}

/// Every PAN claim in the store: (partition key, body).
async fn claims(h: &Harness) -> Vec<(String, Value)> {
    let (docs, _) = h
        .store
        .change_feed("pan_claims", &Continuation::default(), 1000)
        .await
        .unwrap();
    docs.into_iter()
        .map(|d| (d.partition_key, d.body))
        .collect()
}

/// The claim key computed independently: the wrapped index key read from the store, unwrapped
/// with the service's local key file, HMAC-SHA256 over the documented message.
async fn expected_claim_key(h: &Harness, tenant: &str, pan: &str) -> String {
    let doc = h
        .store
        .get(VAULT_CONTAINER, INDEX_KEY_PARTITION, INDEX_KEY_ID)
        .await
        .unwrap()
        .expect("the wrapped index key is stored");
    let doc: IndexKeyDoc = serde_json::from_value(doc.body).unwrap();
    let kms = LocalKeyFileKms::open_or_create(&LocalKeyFileKms::default_path(&h.data_dir)).unwrap();
    let key = kms.unwrap_key(&doc.wrapped_key).await.unwrap();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(claim_message(tenant, pan).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `investor.onboarded` events for investors whose masked PAN is `pan`'s, once `id`'s arrived.
async fn onboarded_for(h: &Harness, id: &str, pan: &str) -> Vec<InvestorOnboarded> {
    let idc = id.to_string();
    h.wait_for("investor.onboarded", move |es: &[InvestorOnboarded]| {
        es.iter().any(|e| e.investor_id == idc)
    })
    .await;
    // Give a wrongly duplicated event time to be relayed too before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let masked = format!("XXXXXX{}", &pan[6..]);
    h.read_all::<InvestorOnboarded>("investor.onboarded")
        .await
        .into_iter()
        .filter(|e| e.pan_masked == masked)
        .collect()
}

async fn distributor_ids(h: &Harness, d: &str) -> Vec<String> {
    let (status, list) = h
        .get(&format!("/v1/distributors/{d}/investors"), Some(&h.admin()))
        .await;
    assert_eq!(status, 200, "{list}");
    list["investors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["investorId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_answers_the_same_investor_and_another_distributor_gets_409() {
    let h = Harness::start(Options::default()).await;
    let pan = pan_with("1234");
    let body = investor_body(&pan, None);
    let dist_a = h.distributor("dist-a");

    let (s1, v1, _, replay1) = post_investor(&h, &dist_a, &body).await;
    assert_eq!(s1, 201, "{v1}");
    assert_eq!(replay1, None);
    let id = v1["investorId"].as_str().unwrap().to_string();

    // The same body again (a retry after a timeout): 200, the same investor, marked a replay.
    let (s2, v2, _, replay2) = post_investor(&h, &dist_a, &body).await;
    assert_eq!(s2, 200, "{v2}");
    assert_eq!(replay2.as_deref(), Some("true"));
    assert_eq!(v2["investorId"], id.as_str());
    assert_eq!(v2["distributorId"], "dist-a");
    // An admin onboarding the PAN on dist-a's behalf is the same owner too.
    let mut for_a = body.clone();
    for_a["distributorId"] = json!("dist-a");
    let (s3, v3, _, replay3) = post_investor(&h, &h.admin(), &for_a).await;
    assert_eq!((s3, replay3.as_deref()), (200, Some("true")), "{v3}");
    assert_eq!(v3["investorId"], id.as_str());

    // Another distributor, same PAN: 409 problem+json that names neither the investor nor
    // the distributor who registered it.
    let (s, p, ct, replay) = post_investor(&h, &h.distributor("dist-b"), &body).await;
    assert_eq!(s, 409, "{p}");
    assert_eq!(replay, None);
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    assert_eq!(p["status"], 409);
    assert_eq!(
        p["detail"],
        "an investor with this PAN is already registered"
    );
    let text = p.to_string();
    assert!(
        !text.contains(&id) && !text.contains("dist-a") && !text.contains(&pan),
        "{text}"
    );
    // An admin onboarding it for nobody (or for dist-b) is not the owner either.
    let (s, p, _, _) = post_investor(&h, &h.admin(), &body).await;
    assert_eq!(s, 409, "{p}");

    // One investor: one claim, one list entry, one KRA registration, one onboarded event.
    let all = claims(&h).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].1["investor_id"], id.as_str());
    assert_eq!(all[0].1["distributor_id"], "dist-a");
    assert_eq!(all[0].0, expected_claim_key(&h, TENANT, &pan).await);
    assert_eq!(distributor_ids(&h, "dist-a").await, vec![id.clone()]);
    assert!(distributor_ids(&h, "dist-b").await.is_empty());
    assert!(h.kra.registration(&id).is_some());
    let events = onboarded_for(&h, &id, &pan).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].investor_id, id);

    // Another tenant is another namespace: the same PAN is a new investor there.
    let other_tenant = h
        .idp
        .bearer(&DevClaims::distributor("dist-a").tenant("other-tenant"));
    let (s, v, _, _) = post_investor(&h, &other_tenant, &body).await;
    assert_eq!(s, 201, "{v}");
    assert_ne!(v["investorId"], id.as_str());
    assert_eq!(v["tenant"], "other-tenant");

    // Erasure releases the claim: the person may be onboarded again (a new investor).
    let (s, _, _) = h
        .post(
            &format!("/v1/investors/{id}/erasure"),
            Some(&h.admin()),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let key = expected_claim_key(&h, TENANT, &pan).await;
    assert!(
        h.store
            .get("pan_claims", &key, "claim")
            .await
            .unwrap()
            .is_none(),
        "the claim outlived the erasure"
    );
    let (s, v, _, replay) = post_investor(&h, &h.distributor("dist-b"), &body).await;
    assert_eq!((s, replay), (201, None), "{v}");
    let new_id = v["investorId"].as_str().unwrap();
    assert_ne!(new_id, id);
    let (s, erased) = h
        .get(&format!("/v1/investors/{id}"), Some(&h.admin()))
        .await;
    assert_eq!((s, erased["status"].as_str()), (200, Some("ERASED")));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_identical_posts_make_one_investor() {
    let h = Harness::start(Options::default()).await;
    let pan = pan_with("5678");
    let body = investor_body(&pan, None);
    let bearer = h.distributor("dist-c");
    let answers =
        futures::future::join_all((0..10).map(|_| post_investor(&h, &bearer, &body))).await;
    let ids: Vec<&str> = answers
        .iter()
        .map(|(s, v, _, _)| {
            assert!(*s == 201 || *s == 200, "{s}: {v}");
            v["investorId"].as_str().unwrap()
        })
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    let created: Vec<&(u16, Value, String, Option<String>)> =
        answers.iter().filter(|a| a.0 == 201).collect();
    assert_eq!(created.len(), 1, "exactly one request created the investor");
    for (s, _, _, replay) in &answers {
        assert_eq!(*s == 200, replay.as_deref() == Some("true"));
    }
    let id = ids[0].to_string();
    assert_eq!(claims(&h).await.len(), 1);
    assert_eq!(distributor_ids(&h, "dist-c").await, vec![id.clone()]);
    let events = onboarded_for(&h, &id, &pan).await;
    assert_eq!(events.len(), 1, "{events:?}");
    // Every answer is REGISTERED or PENDING on the way; the investor ends REGISTERED or later.
    let v = h
        .wait_investor(&id, |v| v["kyc"]["status"] != "PENDING")
        .await;
    assert_eq!(v["distributorId"], "dist-c");
    h.stop().await;
}

/// A crash between the claim and the record: the owner's retry creates the record under the
/// claimed investor id; another distributor is refused without touching the claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_without_its_record_is_resumed_by_its_owner() {
    let h = Harness::start(Options::default()).await;
    let pan = pan_with("2222");
    let body = investor_body(&pan, None);
    let key = expected_claim_key(&h, TENANT, &pan).await;
    let claimed = format!("inv-{}", uuid::Uuid::now_v7().simple());
    let claim = json!({
        "kind": "pan-claim",
        "investor_id": claimed,
        "tenant": TENANT,
        "distributor_id": "dist-a",
        "created_by": "distributor-dist-a",
        "created_at": "2026-01-05T04:30:00Z",
    });
    h.store
        .commit(Batch::new("pan_claims", &key).op(WriteOp::Create {
            id: "claim".into(),
            body: claim.clone(),
            ttl: None,
        }))
        .await
        .unwrap();

    let (s, p, _, _) = post_investor(&h, &h.distributor("dist-b"), &body).await;
    assert_eq!(s, 409, "{p}");
    assert!(!p.to_string().contains(&claimed));
    let (s, v, _, replay) = post_investor(&h, &h.distributor("dist-a"), &body).await;
    assert_eq!((s, replay), (201, None), "{v}");
    assert_eq!(v["investorId"], claimed.as_str());
    assert_eq!(v["kyc"]["status"], "REGISTERED");
    let stored = h
        .store
        .get("pan_claims", &key, "claim")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.body, claim, "the claim is kept as it was");
    let record = h
        .store
        .get("investors", &claimed, "investor")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.body["pan_claim"], key.as_str());
    assert_eq!(distributor_ids(&h, "dist-a").await, vec![claimed.clone()]);
    h.stop().await;
}
