//! The limits layer of the shared HTTP stack over TCP (`run_on`, the real Redis, the real
//! authentication guard with a test identity provider): per-client and per-investor rate
//! limits with 429 + `Retry-After` + `X-RateLimit-*`, load shedding with 503 + `Retry-After`,
//! probes exempt, and failing open (with the alarm metric) when Redis is away.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use nivesh_runtime::service::{ServiceApp, connect};
use nivesh_testkit::TestIdp;
use tokio::sync::Semaphore;

use common::{client, mock_cluster, settings, start};

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

fn prefix() -> String {
    format!("{}:", nivesh_testkit::unique("limits-it"))
}

/// Anonymous requests are limited per client address: the burst passes with decreasing
/// X-RateLimit-Remaining, the next is a 429 problem with Retry-After; probes are never limited;
/// a bogus Authorization header on an unguarded route does not dodge the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_are_limited_per_client_address() {
    let cluster = mock_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let prefix = prefix();
    let s = settings(
        &cluster.bootstrap_servers(),
        tmp.path(),
        &[
            ("NIVESH__REDIS__URL", &nivesh_testkit::redis_url()),
            ("NIVESH__REDIS__KEY_PREFIX", &prefix),
            ("NIVESH__HTTP__LIMITS__RATE_LIMIT__CLIENT__BURST", "3"),
            (
                "NIVESH__HTTP__LIMITS__RATE_LIMIT__CLIENT__PER_SECOND",
                "0.2",
            ),
        ],
    );
    let ctx = connect(&s).await.unwrap();
    let app = ServiceApp::new().routes(Router::new().route("/v1/ping", get(|| async { "pong" })));
    let running = start(ctx, app).await;
    let http = client();

    for remaining in ["2", "1", "0"] {
        let r = http.get(running.url("/v1/ping")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(
            header(&r, "x-ratelimit-remaining").as_deref(),
            Some(remaining)
        );
        assert!(header(&r, "x-ratelimit-reset").is_some());
    }
    let r = http.get(running.url("/v1/ping")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(
        header(&r, "content-type").as_deref(),
        Some("application/problem+json")
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 429);
    assert!(body["request_id"].is_string(), "{body}");

    // A made-up bearer token on a route without the guard is refused too.
    let r = http
        .get(running.url("/v1/ping"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);

    for probe in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let r = http.get(running.url(probe)).send().await.unwrap();
        assert!(r.status().is_success(), "{probe}: {}", r.status());
    }
    running.stop().await.unwrap();
}

/// Behind a trusted proxy (loopback, the default: the sidecar) the per-address bucket is the
/// X-Forwarded-For client's, taken from the right (a spoofed entry further left changes
/// nothing); from a peer that is not trusted, X-Forwarded-For is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_address_comes_from_x_forwarded_for_of_trusted_proxies_only() {
    async fn get_as(http: &reqwest::Client, url: &str, xff: &str) -> u16 {
        http.get(url)
            .header("x-forwarded-for", xff)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
    for (trusted, expect_per_client) in [(None, true), (Some("10.0.0.0/8"), false)] {
        let cluster = mock_cluster();
        let tmp = tempfile::tempdir().unwrap();
        let prefix = prefix();
        let mut vars = vec![
            ("NIVESH__REDIS__URL", nivesh_testkit::redis_url()),
            ("NIVESH__REDIS__KEY_PREFIX", prefix.clone()),
            (
                "NIVESH__HTTP__LIMITS__RATE_LIMIT__CLIENT__BURST",
                "2".into(),
            ),
            (
                "NIVESH__HTTP__LIMITS__RATE_LIMIT__CLIENT__PER_SECOND",
                "0.1".into(),
            ),
        ];
        if let Some(t) = trusted {
            vars.push(("NIVESH__HTTP__LIMITS__TRUSTED_PROXIES", t.into()));
        }
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let s = settings(&cluster.bootstrap_servers(), tmp.path(), &vars);
        let ctx = connect(&s).await.unwrap();
        let app =
            ServiceApp::new().routes(Router::new().route("/v1/ping", get(|| async { "pong" })));
        let running = start(ctx, app).await;
        let http = client();
        let url = running.url("/v1/ping");

        assert_eq!(get_as(&http, &url, "203.0.113.1").await, 200);
        assert_eq!(get_as(&http, &url, "203.0.113.1").await, 200);
        assert_eq!(get_as(&http, &url, "203.0.113.1").await, 429);
        // The client cannot escape by prepending an address of its choice.
        assert_eq!(get_as(&http, &url, "198.51.100.9, 203.0.113.1").await, 429);
        let other = get_as(&http, &url, "203.0.113.2").await;
        if expect_per_client {
            assert_eq!(
                other, 200,
                "another client behind the proxy has its own bucket"
            );
        } else {
            assert_eq!(other, 429, "an untrusted peer's X-Forwarded-For is ignored");
        }
        running.stop().await.unwrap();
    }
}

/// Authenticated requests are charged to the verified caller's investor (and tenant) bucket:
/// one investor exhausting theirs gets 429s while another investor (same client address) and
/// the anonymous bucket are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_requests_are_limited_per_investor() {
    let cluster = mock_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let idp = TestIdp::start().await;
    let prefix = prefix();
    let mut vars: Vec<(String, String)> = vec![
        ("NIVESH__REDIS__URL".into(), nivesh_testkit::redis_url()),
        ("NIVESH__REDIS__KEY_PREFIX".into(), prefix),
        (
            "NIVESH__HTTP__LIMITS__RATE_LIMIT__INVESTOR__BURST".into(),
            "2".into(),
        ),
        (
            "NIVESH__HTTP__LIMITS__RATE_LIMIT__INVESTOR__PER_SECOND".into(),
            "0.1".into(),
        ),
        (
            "NIVESH__HTTP__LIMITS__RATE_LIMIT__CLIENT__BURST".into(),
            "1000".into(),
        ),
    ];
    vars.extend(idp.env());
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let s = settings(&cluster.bootstrap_servers(), tmp.path(), &refs);
    let ctx = connect(&s).await.unwrap();
    let routes = Router::new()
        .route(
            "/v1/me",
            get(
                |caller: nivesh_auth::Caller| async move { caller.investor_id.unwrap_or_default() },
            ),
        )
        .route_layer(nivesh_auth::require_auth(nivesh_auth::Authenticator::new(
            &ctx.settings.auth,
        )));
    let running = start(ctx, ServiceApp::new().routes(routes)).await;
    let http = client();
    let a = idp.investor("INV-A");
    let b = idp.investor("INV-B");

    for left in ["1", "0"] {
        let r = http
            .get(running.url("/v1/me"))
            .header("authorization", &a)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.headers());
        assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("2"));
        assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some(left));
        assert_eq!(r.text().await.unwrap(), "INV-A");
    }
    let r = http
        .get(running.url("/v1/me"))
        .header("authorization", &a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 429, "{body}");

    let r = http
        .get(running.url("/v1/me"))
        .header("authorization", &b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "another investor is not affected");
    // No token: 401 from the guard, not 429.
    let r = http.get(running.url("/v1/me")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    running.stop().await.unwrap();
}

/// More than max_in_flight requests in progress: the excess is shed at once with a 503 problem
/// and Retry-After, probes still answer, and capacity comes back when requests finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_requests_are_shed_with_503() {
    let cluster = mock_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let s = settings(
        &cluster.bootstrap_servers(),
        tmp.path(),
        &[
            ("NIVESH__HTTP__LIMITS__MAX_IN_FLIGHT", "2"),
            ("NIVESH__HTTP__LIMITS__SHED_RETRY_AFTER_SECS", "3"),
            ("NIVESH__HTTP__LIMITS__RATE_LIMIT__ENABLED", "false"),
        ],
    );
    let ctx = connect(&s).await.unwrap();
    // Handlers count themselves in, then block until the test releases them.
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (g, e) = (gate.clone(), entered.clone());
    let routes = Router::new().route(
        "/v1/work",
        get(move || {
            let (g, e) = (g.clone(), e.clone());
            async move {
                e.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                g.acquire().await.unwrap().forget();
                "done"
            }
        }),
    );
    let running = start(ctx, ServiceApp::new().routes(routes)).await;
    let http = client();
    let url = running.url("/v1/work");
    let busy: Vec<_> = (0..2)
        .map(|_| tokio::spawn(http.get(url.clone()).send()))
        .collect();
    for _ in 0..200 {
        if entered.load(std::sync::atomic::Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(entered.load(std::sync::atomic::Ordering::SeqCst), 2);
    let shed = tokio::time::timeout(Duration::from_secs(5), http.get(url.clone()).send())
        .await
        .expect("shed at once, not queued")
        .unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(header(&shed, "retry-after").as_deref(), Some("3"));
    let body: serde_json::Value = shed.json().await.unwrap();
    assert_eq!(body["status"], 503);
    assert!(
        body["detail"].as_str().unwrap().contains("limit of 2"),
        "{body}"
    );
    let r = http.get(running.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "probes are never shed");
    let metrics = http.get(running.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(text.contains("nivesh_http_load_shed_total"), "{text}");

    gate.add_permits(100);
    for b in busy {
        assert_eq!(b.await.unwrap().unwrap().status(), 200);
    }
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    running.stop().await.unwrap();
}

/// Redis away: requests pass (fail open) without X-RateLimit headers, and the alarm metric
/// counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_fail_open_when_redis_is_away() {
    let cluster = mock_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("redis://127.0.0.1:{port}");
    let s = settings(
        &cluster.bootstrap_servers(),
        tmp.path(),
        &[
            ("NIVESH__REDIS__URL", &dead),
            // The per-address bucket is off by default; turn it on to have something to fail.
            ("NIVESH__HTTP__LIMITS__RATE_LIMIT__CLIENT__BURST", "1"),
            (
                "NIVESH__HTTP__LIMITS__RATE_LIMIT__CLIENT__PER_SECOND",
                "1.0",
            ),
        ],
    );
    let ctx = connect(&s).await.unwrap();
    let app = ServiceApp::new().routes(Router::new().route("/v1/ping", get(|| async { "pong" })));
    let running = start(ctx, app).await;
    let http = client();
    for _ in 0..5 {
        let r = http.get(running.url("/v1/ping")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(header(&r, "x-ratelimit-limit").is_none());
    }
    let text = http
        .get(running.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("nivesh_ratelimit_fail_open_total"))
        .unwrap_or_else(|| panic!("no alarm metric in {text}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 5.0, "{line}");
    running.stop().await.unwrap();
}
