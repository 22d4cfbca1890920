//! The order service on a real Kafka-protocol broker (librdkafka's mock cluster over TCP, every
//! catalog topic created) and an embedded store in a temp dir, serving HTTP on a random port,
//! with a fixed business clock the test controls.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveTime, TimeDelta, Utc};
use nivesh_bus::devbroker::DevBroker;
use nivesh_bus::{BusProducer, InboundMessage, KafkaSettings};
use nivesh_domain::time::FixedClock;
use nivesh_events::{AvroCodec, Event, EventMeta, NavPublished};
use nivesh_runtime::config::{ConfigSources, load_from};
use nivesh_runtime::service::{connect, run_on};
use nivesh_testkit::{TestIdp, kafka};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound of every wait: tests finish or fail, never hang.
pub const WAIT: Duration = Duration::from_secs(60);

/// An equity scheme (15:00 cut-off), open-ended.
pub const EQUITY: &str = "119551";
/// A second open-ended equity scheme (switch target).
pub const EQUITY2: &str = "120503";
/// A close-ended scheme (refused for purchases).
pub const CLOSED: &str = "111111";

pub struct Svc {
    pub bootstrap: String,
    pub base: String,
    /// Sends an admin bearer token by default (admins see every investor of their tenant);
    /// access-control tests send their own `Authorization` header or use a bare client.
    pub http: reqwest::Client,
    /// The identity provider the service trusts.
    pub idp: TestIdp,
    /// `Bearer <admin token>`.
    pub admin: String,
    pub clock: Arc<FixedClock>,
    pub producer: BusProducer,
    pub codec: AvroCodec,
    /// The service's own store (tests read inbox markers from it to know an event was applied).
    pub store: Arc<dyn nivesh_store::DocumentStore>,
    shutdown: CancellationToken,
    handle: JoinHandle<nivesh_runtime::Result<()>>,
    _tmp: tempfile::TempDir,
    /// Last: fields drop in order, so the clients above are gone before the broker stops.
    pub broker: DevBroker,
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// The service at 10:00 IST on Tuesday 2025-02-25, with the repository's investor registry.
pub async fn start() -> Svc {
    start_with(&[]).await
}

pub async fn start_with(extra: &[(&str, &str)]) -> Svc {
    let idp = TestIdp::start().await;
    let admin = idp.admin();
    let broker = DevBroker::start(1).expect("dev broker");
    let bootstrap = broker.bootstrap_servers();
    let tmp = tempfile::tempdir().unwrap();
    let registry =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/investors.json");
    let mut vars: Vec<(String, String)> = vec![
        ("NIVESH__KAFKA__BOOTSTRAP_SERVERS".into(), bootstrap.clone()),
        (
            "NIVESH__STORE__DATA_DIR".into(),
            tmp.path().display().to_string(),
        ),
        ("NIVESH__REDIS__URL".into(), String::new()),
        ("NIVESH__TELEMETRY__LOG_LEVEL".into(), "warn".into()),
        ("NIVESH__HTTP__SHUTDOWN_TIMEOUT_SECS".into(), "5".into()),
        (
            "NIVESH__SERVICE__INVESTOR_REGISTRY".into(),
            registry.display().to_string(),
        ),
        ("NIVESH__SERVICE__SIP_RUN_INTERVAL_SECS".into(), "0".into()),
    ];
    vars.extend(idp.env());
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = load_from::<nivesh_order::Config>("order", &ConfigSources::with_vars(vars))
        .expect("settings");
    let ctx = connect(&settings).await.expect("connect");
    let clock = Arc::new(FixedClock::at_ist(
        date(2025, 2, 25),
        NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
    ));
    let (app, _svc) =
        nivesh_order::build(&ctx, settings.service.clone(), clock.clone()).expect("build");
    let shutdown = ctx.shutdown.clone();
    let codec = ctx.codec.clone();
    let store = ctx.store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(run_on(ctx, app, listener));
    let producer = BusProducer::new(&KafkaSettings::new(&bootstrap, "order-test")).unwrap();
    let svc = Svc {
        broker,
        bootstrap,
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .default_headers(
                [(
                    reqwest::header::AUTHORIZATION,
                    admin.parse().expect("header value"),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap(),
        idp,
        admin,
        clock,
        producer,
        codec,
        store,
        shutdown,
        handle,
        _tmp: tmp,
    };
    svc.seed_schemes().await;
    svc
}

impl Svc {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let res = tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("service stopped")
            .expect("service task");
        match res {
            Ok(()) => {}
            // A race in nivesh-runtime's `run_on` (reported): when the token is cancelled, the
            // select may see the relay/consumer end before the cancellation and call it early.
            Err(nivesh_runtime::Error::Task { reason, .. })
                if reason == "stopped before shutdown" => {}
            Err(e) => panic!("the service failed: {e}"),
        }
    }

    /// Publishes one event as its producer would (Avro, keyed as the catalog says).
    pub async fn produce<E: Event>(&self, topic: &str, key: &str, event: &E) {
        kafka::produce(&self.producer, &self.codec, topic, key, event, false).await;
    }

    /// Three schemes on nav.broadcast; waits until the order service knows all of them.
    async fn seed_schemes(&self) {
        for (code, name, category, scheme_type, nav) in [
            (
                EQUITY,
                "Alpha Large Cap Fund - Direct Growth",
                "Equity Scheme - Large Cap Fund",
                "Open Ended Schemes",
                "101.2345",
            ),
            (
                EQUITY2,
                "Beta Flexi Cap Fund - Direct Growth",
                "Equity Scheme - Flexi Cap Fund",
                "Open Ended Schemes",
                "50.0000",
            ),
            (
                CLOSED,
                "Gamma Fixed Term Plan Series 9",
                "Income",
                "Close Ended Schemes",
                "10.5000",
            ),
        ] {
            let e = NavPublished {
                meta: EventMeta::new::<NavPublished>("nav-publisher", None),
                scheme_code: code.into(),
                scheme_name: name.into(),
                amc: Some("Test AMC Mutual Fund".into()),
                category: Some(category.into()),
                scheme_type: Some(scheme_type.into()),
                nav: nav.parse::<Decimal>().unwrap(),
                nav_date: date(2025, 2, 24),
                anomaly: false,
                change_kind: "NEW".into(),
            };
            self.produce("nav.broadcast", code, &e).await;
        }
        for code in [EQUITY, EQUITY2, CLOSED] {
            let url = self.url(&format!("/v1/orders/schemes/{code}"));
            let http = self.http.clone();
            eventually(&format!("scheme {code} known"), || {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    http.get(&url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == StatusCode::OK)
                }
            })
            .await;
        }
    }

    /// POST /v1/orders with an optional Idempotency-Key.
    pub async fn post(&self, key: Option<&str>, body: &Value) -> Resp {
        let mut req = self.http.post(self.url("/v1/orders")).json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        Resp::from(req.send().await.expect("POST /v1/orders")).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        Resp::from(self.http.get(self.url(path)).send().await.expect("GET")).await
    }

    /// `method path` with `authorization` (`None`: no header at all) and an optional JSON body.
    pub async fn call_as(
        &self,
        method: reqwest::Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let bare = reqwest::Client::new();
        let mut req = bare
            .request(method, self.url(path))
            .header("Idempotency-Key", format!("k-{}", uuid_like()));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        Resp::from(req.send().await.expect("request")).await
    }

    pub async fn order(&self, order_id: &str) -> Value {
        let r = self.get(&format!("/v1/orders/{order_id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    /// Polls the order until `pred` holds.
    pub async fn order_until(
        &self,
        order_id: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let o = self.order(order_id).await;
            if pred(&o) {
                return o;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; order is {o:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every record on `topic` right now.
    pub async fn read(&self, topic: &str) -> Vec<InboundMessage> {
        kafka::read_all(&self.bootstrap, topic, WAIT).await
    }

    /// The events of type `E` on `topic` that satisfy `keep`.
    pub async fn events<E: Event>(&self, topic: &str, keep: impl Fn(&E) -> bool) -> Vec<E> {
        let all: Vec<E> = kafka::decode_all(&self.codec, &self.read(topic).await).await;
        all.into_iter().filter(|e| keep(e)).collect()
    }

    /// Waits until `topic` holds at least `n` events matching `keep`, then returns them all.
    pub async fn events_at_least<E: Event>(
        &self,
        topic: &str,
        n: usize,
        keep: impl Fn(&E) -> bool,
    ) -> Vec<E> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.events(topic, &keep).await;
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} events on {topic}, have {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
    }

    pub fn now(&self) -> chrono::DateTime<Utc> {
        nivesh_domain::time::Clock::now(&*self.clock)
    }
}

/// An HTTP answer, body parsed as JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 7807 problem with `status`, and returns the body.
    pub fn problem(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "{:#}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{:#}",
            self.body
        );
        assert_eq!(self.body["status"], status.as_u16());
        &self.body
    }
}

/// Polls `check` until true (bounded by [`WAIT`]).
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// A fresh idempotency-key suffix.
pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn meta<E: Event>(producer: &str) -> EventMeta {
    EventMeta::new::<E>(producer, None)
}
