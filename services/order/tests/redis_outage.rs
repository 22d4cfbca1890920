//! Acceptance: Redis is killed while investors place and read orders and read the scheme/NAV
//! view. The test runs its OWN redis-server on a free port (never the shared one on 6379),
//! SIGKILLs it mid-load and starts it again on the same port.
//!
//! Asserted: no 5xx at any point; `/readyz` answers 200 `degraded` (the cache check fails, the
//! critical store and broker do not) while Redis is away and `ready` again after; the rate
//! limiter fails open while Redis is away (no `X-RateLimit-*` headers, the alarm metric counts)
//! and enforces again once Redis is back (headers return, buckets are in the new Redis);
//! idempotent replays keep answering with the same order throughout.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{EQUITY, Svc, start_with};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A private redis-server on `port`, answering PING before this returns.
async fn start_redis(port: u16) -> Child {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis_cli(port, &["ping"]).await.as_deref() != Some("PONG") {
        assert!(Instant::now() < deadline, "redis-server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

fn purchase(amount: u32) -> Value {
    json!({"investorId": "INV0001", "kind": "PURCHASE", "schemeCode": EQUITY,
           "amount": format!("{amount}.00"), "paymentInstrument": "investor.one@okicici"})
}

struct Round {
    requests: usize,
    rate_limited_headers: usize,
}

/// Place an order, replay it (same key), read it and the scheme view; every answer must be
/// below 500 and the replay must name the same order.
async fn round(svc: &Svc, n: u32) -> Round {
    let mut seen = Round {
        requests: 0,
        rate_limited_headers: 0,
    };
    let key = format!("redis-outage-{n}");
    let mut first_id = None;
    for _ in 0..2 {
        let r = svc
            .http
            .post(svc.url("/v1/orders"))
            .header("Idempotency-Key", &key)
            .json(&purchase(1000 + n))
            .send()
            .await
            .expect("POST");
        seen.requests += 1;
        seen.rate_limited_headers += r.headers().contains_key("x-ratelimit-limit") as usize;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "POST {n}: {status} {body}");
        let id = body["orderId"].as_str().unwrap().to_string();
        match &first_id {
            None => first_id = Some(id),
            Some(first) => assert_eq!(first, &id, "the replay answers with the same order"),
        }
    }
    let id = first_id.unwrap();
    for path in [
        format!("/v1/orders/{id}"),
        format!("/v1/orders/schemes/{EQUITY}"),
    ] {
        let r = svc.http.get(svc.url(&path)).send().await.expect("GET");
        seen.requests += 1;
        seen.rate_limited_headers += r.headers().contains_key("x-ratelimit-limit") as usize;
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
    }
    seen
}

async fn readiness(svc: &Svc) -> (StatusCode, Value) {
    let r = svc.http.get(svc.url("/readyz")).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_mid_load_no_5xx_degraded_then_full_recovery() {
    let port = free_port();
    let mut redis = start_redis(port).await;
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = format!("{}:", nivesh_testkit::unique("order-redis-outage"));
    let svc = start_with(&[
        ("NIVESH__REDIS__URL", &url),
        ("NIVESH__REDIS__KEY_PREFIX", &prefix),
        ("NIVESH__REDIS__COMMAND_TIMEOUT_MS", "200"),
        // The per-address bucket is off by default; on here so the anonymous scheme read is
        // limited (and carries X-RateLimit-*) while Redis is up, like every other request.
        ("NIVESH__HTTP__LIMITS__RATE_LIMIT__CLIENT__BURST", "10000"),
        (
            "NIVESH__HTTP__LIMITS__RATE_LIMIT__CLIENT__PER_SECOND",
            "5000.0",
        ),
    ])
    .await;

    // Redis up: ready, rate limits enforced (headers on every answer).
    let (status, body) = readiness(&svc).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready")),
        "{body}"
    );
    let mut n = 0;
    for _ in 0..5 {
        let r = round(&svc, n).await;
        assert_eq!(r.rate_limited_headers, r.requests);
        n += 1;
    }

    // Kill it mid-load: requests keep flowing from a concurrent task while Redis dies.
    let load = {
        let http = svc.http.clone();
        let url = svc.url(&format!("/v1/orders/schemes/{EQUITY}"));
        tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(4);
            let mut count = 0;
            while Instant::now() < until {
                let r = http.get(&url).send().await.expect("GET");
                assert!(!r.status().is_server_error(), "{}", r.status());
                count += 1;
            }
            count
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill().await.expect("SIGKILL redis-server");
    let mut degraded_rounds = 0;
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(4) {
        let r = round(&svc, n).await;
        assert_eq!(r.rate_limited_headers, 0, "fail open: no limit headers");
        n += 1;
        degraded_rounds += 1;
    }
    assert!(load.await.unwrap() > 10);
    assert!(degraded_rounds >= 3, "{degraded_rounds}");
    let (status, body) = readiness(&svc).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a cache outage never makes the service unready"
    );
    assert_eq!(body["status"], "degraded", "{body}");
    let metrics = svc
        .http
        .get(svc.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("nivesh_ratelimit_fail_open_total"),
        "the alarm metric is raised"
    );

    // Redis back on the same port: readiness recovers and limits are enforced again.
    let _redis = start_redis(port).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = readiness(&svc).await;
        if status == StatusCode::OK && body["status"] == "ready" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness did not recover: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = round(&svc, n).await;
        n += 1;
        if r.rate_limited_headers == r.requests {
            break;
        }
        assert!(Instant::now() < deadline, "rate limits not enforced again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let keys = redis_cli(port, &["--scan", "--pattern", &format!("{prefix}rl:*")])
        .await
        .unwrap_or_default();
    assert!(!keys.is_empty(), "the buckets live in the restarted Redis");
    svc.stop().await;
}
