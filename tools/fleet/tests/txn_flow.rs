//! End-to-end: the investor transaction flow through the whole fleet (every service a separate
//! process, the dev broker over TCP, the payment gateway simulator over HTTP), on the business day
//! of the real AMFI file, which is loaded first. Everything is checked through the public APIs
//! and the event log.

mod common;

use std::time::Duration;

use common::txn::*;
use futures::future::join_all;
use nivesh_events::{OrderPlaced, TransactionCompleted};
use nivesh_fleet::fleet::GatewaySim;
use nivesh_fleet::reconcile::{read_events, reconcile};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);

/// Independent purchase arithmetic (not nivesh-txn-rules): duty = amount × 0.005 / 100.005 rounded
/// half-up to the paisa; units = (amount − duty) / NAV truncated to 3 decimals.
fn expected_purchase(amount: &str, nav: &str) -> (Decimal, Decimal) {
    let amount = dec(amount);
    let duty = (amount * dec("0.005") / dec("100.005"))
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let units = ((amount - duty) / dec(nav)).round_dp_with_strategy(3, RoundingStrategy::ToZero);
    (duty, units)
}

async fn txns_of(bootstrap: &str, order_id: &str) -> Vec<TransactionCompleted> {
    read_events::<TransactionCompleted>(bootstrap, "transaction.completed", WAIT)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.order_id == order_id)
        .collect()
}

fn order_id(v: &Value) -> String {
    v["orderId"].as_str().expect("orderId").to_string()
}

/// Purchase, partial redemption with exit load, a 3-instalment SIP, a switch and a declined
/// payment, each visible through the APIs with the exact figures; then 20 concurrent duplicates of
/// one Idempotency-Key make one order and one allotment; bad input is refused with problem+json and
/// publishes nothing; and the reconciliation check passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_flow_end_to_end_on_the_real_nav_day() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = GatewaySim {
        latency_ms: 100,
        ..GatewaySim::default()
    };
    let Some((mut fleet, order)) = fleet_with_navs(&tmp, sim).await else {
        return;
    };
    let bootstrap = fleet.bootstrap().to_string();
    let portfolio = fleet.url("portfolio").unwrap();
    let notification = fleet.url("notification").unwrap();
    // Admin: places and reads orders of every investor of the tenant, runs SIPs, reads
    // allotments and payments; investor-scoped checks below use investor tokens.
    let c = fleet.staff_client(&["admin"]).await.expect("admin client");

    // 1. Purchase: units equal the independently computed figure.
    let placed = place(
        &c,
        &order,
        &json!({"investorId": "INV0002", "kind": "PURCHASE", "schemeCode": EQUITY,
                "amount": "10000.00", "paymentInstrument": "diya@okaxis"}),
    )
    .await;
    let purchase_id = order_id(&placed);
    let done = wait_terminal(&c, &order, &purchase_id, WAIT).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let (duty, units) = expected_purchase("10000.00", EQUITY_NAV);
    let t = txns_of(&bootstrap, &purchase_id).await;
    assert_eq!(t.len(), 1, "one allotment for the purchase");
    assert_eq!(t[0].nav, dec(EQUITY_NAV));
    assert_eq!(t[0].nav_date.to_string(), "2025-02-25");
    assert_eq!(t[0].stamp_duty, duty);
    assert_eq!(t[0].units, units, "units = (10000 - duty) / NAV, truncated");
    let statuses: Vec<&str> = done["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    for s in ["PLACED", "PAYMENT_PENDING", "PAID", "ALLOTTED", "COMPLETED"] {
        assert!(statuses.contains(&s), "timeline lacks {s}: {statuses:?}");
    }
    // Every service checks the same dev-idp tokens itself: INV0002 sees their order, payment,
    // allotment and portfolio; INV0001 gets 404s for them; no token is a 401.
    let own = nivesh_fleet::fleet::bearer_client(
        &fleet.investor_token("INV0002").await.unwrap(),
        Duration::from_secs(30),
    )
    .unwrap();
    let other = nivesh_fleet::fleet::bearer_client(
        &fleet.investor_token("INV0001").await.unwrap(),
        Duration::from_secs(30),
    )
    .unwrap();
    let reads = [
        format!("{order}/v1/orders/{purchase_id}"),
        format!("{portfolio}/v1/investors/INV0002/portfolio"),
        format!(
            "{}/v1/payments/{purchase_id}?investorId=INV0002",
            fleet.url("payment").unwrap()
        ),
        format!(
            "{}/v1/allotments/{purchase_id}?investorId=INV0002",
            fleet.url("allotment").unwrap()
        ),
    ];
    for url in &reads {
        assert_eq!(get_json(&own, url).await.0, 200, "own: {url}");
        assert_eq!(
            get_json(&other, url).await.0,
            404,
            "another investor: {url}"
        );
        assert_eq!(
            get_json(&reqwest::Client::new(), url).await.0,
            401,
            "no token: {url}"
        );
    }

    // 2. Partial redemption the same day: 1 % exit load (equity, held < 365 days).
    let redeem = place(
        &c,
        &order,
        &json!({"investorId": "INV0002", "kind": "REDEMPTION", "schemeCode": EQUITY,
                "units": "20.000"}),
    )
    .await;
    let redeem_id = order_id(&redeem);
    let done = wait_terminal(&c, &order, &redeem_id, WAIT).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let r = txns_of(&bootstrap, &redeem_id).await;
    assert_eq!(r.len(), 1);
    let gross = dec("20.000") * dec(EQUITY_NAV);
    assert_eq!(r[0].gross_amount, gross.round_dp(2));
    assert!(
        r[0].exit_load > Decimal::ZERO,
        "exit load charged: {:?}",
        r[0]
    );
    assert_eq!(
        r[0].exit_load,
        (gross * dec("0.01")).round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero),
        "1 % of the redemption value"
    );
    assert_eq!(r[0].net_amount, r[0].gross_amount - r[0].exit_load);
    assert_eq!(r[0].balance_units, units - dec("20.000"));

    // 3. A switch of 10 units into the index fund: two legs, the proceeds bought in.
    let switch = place(
        &c,
        &order,
        &json!({"investorId": "INV0002", "kind": "SWITCH", "schemeCode": EQUITY,
                "targetSchemeCode": INDEX, "units": "10.000"}),
    )
    .await;
    let switch_id = order_id(&switch);
    let done = wait_terminal(&c, &order, &switch_id, WAIT).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let legs = txns_of(&bootstrap, &switch_id).await;
    let out = legs
        .iter()
        .find(|t| t.leg == "SWITCH_OUT")
        .expect("out leg");
    let inn = legs.iter().find(|t| t.leg == "SWITCH_IN").expect("in leg");
    assert_eq!(out.scheme_code, EQUITY);
    assert_eq!(inn.scheme_code, INDEX);
    assert_eq!(
        inn.gross_amount, out.net_amount,
        "the proceeds are switched in"
    );
    let (_, in_units) = expected_purchase(&out.net_amount.to_string(), INDEX_NAV);
    assert_eq!(inn.units, in_units);

    // The portfolio shows both schemes with exactly those units.
    let (status, p) = get_json(&c, &format!("{portfolio}/v1/investors/INV0002/portfolio")).await;
    assert_eq!(status, 200, "{p}");
    let held = |scheme: &str| -> Decimal {
        p["holdings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["schemeCode"] == scheme)
            .map(|h| dec(h["units"].as_str().unwrap()))
            .sum()
    };
    assert_eq!(held(EQUITY), units - dec("30.000"));
    assert_eq!(held(INDEX), in_units);

    // 5. A declined payment ends the order FAILED and tells the investor.
    let failed = place(
        &c,
        &order,
        &json!({"investorId": "INV0004", "kind": "PURCHASE", "schemeCode": EQUITY,
                "amount": "2500.00", "paymentInstrument": "failure@sim"}),
    )
    .await;
    let failed_id = order_id(&failed);
    let done = wait_terminal(&c, &order, &failed_id, WAIT).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert!(txns_of(&bootstrap, &failed_id).await.is_empty());
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, n) = get_json(
            &c,
            &format!("{notification}/v1/investors/INV0004/notifications"),
        )
        .await;
        let text = n.to_string();
        if text.contains(&failed_id) || text.to_lowercase().contains("payment failed") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no payment-failed notification: {n}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // 6. The same Idempotency-Key 20 times at once: one order, one allotment, identical answers.
    let key = nivesh_testkit::unique("dup");
    let body = json!({"investorId": "INV0005", "kind": "PURCHASE", "schemeCode": EQUITY,
                      "amount": "1500.00", "paymentInstrument": "arjun@okhdfc"});
    let answers = join_all((0..20).map(|_| post_order(&c, &order, &key, &body))).await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(s, v)| {
            assert!(*s == 201 || *s == 200, "duplicate answered {s}: {v}");
            order_id(v)
        })
        .collect();
    assert_eq!(ids.len(), 1, "20 duplicates made {} orders", ids.len());
    let dup_id = ids.into_iter().next().unwrap();
    let done = wait_terminal(&c, &order, &dup_id, WAIT).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let placed: Vec<OrderPlaced> = read_events(&bootstrap, "order.placed", WAIT).await.unwrap();
    assert_eq!(
        placed.iter().filter(|o| o.order_id == dup_id).count(),
        1,
        "one order.placed"
    );
    assert_eq!(txns_of(&bootstrap, &dup_id).await.len(), 1, "one allotment");

    // 4. A 3-instalment SIP on the 25th: instalment 1 today; then the business clock moves to
    //    each next 25th, the ops run places that instalment, its payment is realised at 10:00
    //    IST, so it waits for that evening's NAV, which arrives in a registrar (CAMS) file.
    let sip = place(
        &c,
        &order,
        &json!({"investorId": "INV0003", "kind": "SIP", "schemeCode": INDEX, "amount": "1000.00",
                "dayOfMonth": 25, "startDate": "2025-02-25", "instalments": 3,
                "paymentInstrument": "vihaan@okicici"}),
    )
    .await;
    let sip_id = sip["sipId"].as_str().expect("sipId").to_string();
    let months = [
        ("2025-02-25", None),
        ("2025-03-25", Some("158.4410")),
        ("2025-04-25", Some("161.0087")),
    ];
    for (n, (day, nav)) in months.iter().enumerate() {
        if n > 0 {
            fleet_time(&mut fleet, day).await;
        }
        let order = fleet.url("order").unwrap();
        for _ in 0..2 {
            // Running twice must not place the instalment twice.
            let r = c
                .post(format!("{order}/v1/sips/run?asOf={day}"))
                .header("Idempotency-Key", nivesh_testkit::unique("sip-run"))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "sip run {day}: {}", r.status());
        }
        if let Some(nav) = nav {
            // The day's NAV is published after the payment: the allotment waits for it.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let csv = format!(
                "Scheme Code,ISIN,Scheme Name,NAV Date,NAV\n{INDEX},INF789F01XA0,UTI Nifty 50 Index Fund - Growth Option- Direct,{day},{nav}\n"
            );
            let ingestor = fleet.url("nav-ingestor").unwrap();
            let r = c
                .post(format!("{ingestor}/v1/nav/files?source=CAMS"))
                .body(csv)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "CAMS upload: {}", r.status());
        }
        // This month's instalment completes at this month's NAV before the clock moves on.
        let nav = nav.unwrap_or(INDEX_NAV);
        let placed: Vec<OrderPlaced> = read_events(&bootstrap, "order.placed", WAIT).await.unwrap();
        let numbers: Vec<i32> = placed
            .iter()
            .filter(|o| o.sip_id.as_deref() == Some(sip_id.as_str()))
            .filter_map(|o| o.instalment_no)
            .collect();
        let expected: Vec<i32> = (1..=n as i32 + 1).collect();
        let mut sorted = numbers.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, expected, "instalments placed by {day}, each once");
        let this = placed
            .iter()
            .find(|o| {
                o.sip_id.as_deref() == Some(sip_id.as_str())
                    && o.instalment_no == Some(n as i32 + 1)
            })
            .unwrap();
        let done = wait_terminal(&c, &order, &this.order_id, WAIT).await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
        let t = txns_of(&bootstrap, &this.order_id).await;
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[0].nav_date.to_string(),
            *day,
            "instalment priced on its own day"
        );
        assert_eq!(t[0].units, expected_purchase("1000.00", nav).1);
    }
    let order = fleet.url("order").unwrap();
    let (_, sip_now) = get_json(&c, &format!("{order}/v1/sips/{sip_id}")).await;
    assert_eq!(sip_now["status"], "COMPLETED", "{sip_now}");

    // 7. Bad input: 4xx problem+json, nothing published.
    let before = read_events::<OrderPlaced>(&bootstrap, "order.placed", WAIT)
        .await
        .unwrap()
        .len();
    let bad: Vec<(&str, Value)> = vec![
        (
            "valid-key-unknown-scheme",
            json!({"investorId": "INV0002", "kind": "PURCHASE",
            "schemeCode": "999999", "amount": "1000.00", "paymentInstrument": "diya@okaxis"}),
        ),
        (
            "valid-key-zero-amount",
            json!({"investorId": "INV0002", "kind": "PURCHASE",
            "schemeCode": EQUITY, "amount": "0", "paymentInstrument": "diya@okaxis"}),
        ),
        (
            "valid-key-negative-amount",
            json!({"investorId": "INV0002", "kind": "PURCHASE",
            "schemeCode": EQUITY, "amount": "-500.00", "paymentInstrument": "diya@okaxis"}),
        ),
        (
            "bad key!",
            json!({"investorId": "INV0002", "kind": "PURCHASE",
            "schemeCode": EQUITY, "amount": "1000.00", "paymentInstrument": "diya@okaxis"}),
        ),
        (
            "valid-key-over-redeem",
            json!({"investorId": "INV0002", "kind": "REDEMPTION",
            "schemeCode": EQUITY, "units": "100000.000"}),
        ),
    ];
    for (key, body) in &bad {
        let key = if key.starts_with("valid-key") {
            nivesh_testkit::unique(key)
        } else {
            key.to_string()
        };
        let r = c
            .post(format!("{order}/v1/orders"))
            .header("Idempotency-Key", &key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let problem: Value = r.json().await.unwrap_or(Value::Null);
        assert!((400..500).contains(&status), "{key}: {status} {problem}");
        assert!(
            ctype.starts_with("application/problem+json"),
            "{key}: {ctype}"
        );
        assert!(problem["title"].is_string(), "{key}: {problem}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = read_events::<OrderPlaced>(&bootstrap, "order.placed", WAIT)
        .await
        .unwrap()
        .len();
    assert_eq!(before, after, "bad input published nothing");

    // 8. The reconciliation check over everything above.
    let admin = fleet.staff_token(&["admin"]).await.unwrap();
    let report = reconcile(&bootstrap, &order_and_portfolio(&fleet), &admin)
        .await
        .unwrap();
    assert!(report.ok(), "{report:#?}");
    assert!(report.holdings_checked >= 3, "{report:#?}");
    fleet.stop().await.unwrap();
}

/// Move the whole fleet's business clock to 10:00 IST on `day`.
async fn fleet_time(fleet: &mut nivesh_fleet::fleet::Fleet, day: &str) {
    use chrono::TimeZone;
    let ist = chrono::FixedOffset::east_opt(19_800).unwrap();
    let at = ist
        .from_local_datetime(
            &chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .unwrap()
                .and_hms_opt(10, 0, 0)
                .unwrap(),
        )
        .unwrap();
    fleet
        .set_business_time(at.with_timezone(&chrono::Utc))
        .await
        .unwrap();
}

/// The reconciliation check calls `/v1/orders` and `/v1/investors/*/portfolio`; without the
/// ingress, give it a tiny router of its own.
fn order_and_portfolio(fleet: &nivesh_fleet::fleet::Fleet) -> String {
    let app = nivesh_fleet::ingress::router(&fleet.upstreams());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}
