//! Shared fixtures: the payment service running in-process on the real runtime (dev broker,
//! embedded store in a temp dir, the real Redis), the gateway simulator on 127.0.0.1:0, event
//! builders, topic readers and HTTP stubs for gateway faults.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use nivesh_bus::devbroker::DevBroker;
use nivesh_bus::{BusProducer, KafkaSettings};
use nivesh_events::{AvroCodec, Event, EventMeta, OrderFailed, OrderPlaced, order_kind};
use nivesh_payment::config::GatewayConfig;
use nivesh_pg_sim::{Sim, SimConfig};
use nivesh_runtime::config::{ConfigSources, load_from};
use nivesh_testkit::kafka;
use rust_decimal::Decimal;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "whsec-integration-test";
/// Upper bound of every wait: tests finish in seconds or fail, never hang.
pub const WAIT: Duration = Duration::from_secs(60);

/// How the service and simulator of one test are set up.
pub struct Options {
    /// Start the simulator (else `gateway_url` must be given).
    pub sim: Option<SimConfig>,
    /// The simulator sends webhooks to the service.
    pub webhooks: bool,
    pub gateway_url: Option<String>,
    pub reconcile: bool,
    pub reconcile_min_age_secs: u64,
    pub expire_after_secs: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sim: Some(sim_config()),
            webhooks: true,
            gateway_url: None,
            reconcile: false,
            reconcile_min_age_secs: 1,
            expire_after_secs: 3600,
        }
    }
}

pub fn sim_config() -> SimConfig {
    SimConfig {
        latency: Duration::from_millis(100),
        webhook_secret: SECRET.into(),
        seed: 11,
        ..SimConfig::default()
    }
}

pub struct Harness {
    /// `None` once stopped. Dropped only after the service stopped: destroying the mock cluster
    /// while the service's clients are still connected can block forever.
    broker: Option<DevBroker>,
    pub bootstrap: String,
    pub producer: BusProducer,
    pub codec: AvroCodec,
    pub base: String,
    pub sim: Option<Sim>,
    /// Sends an ops bearer token by default (webhooks go through a bare client).
    pub http: reqwest::Client,
    /// The identity provider the service trusts.
    pub idp: nivesh_testkit::TestIdp,
    shutdown: CancellationToken,
    task: Option<JoinHandle<nivesh_runtime::Result<()>>>,
    _tmp: tempfile::TempDir,
}

impl Harness {
    pub async fn start(opts: Options) -> Harness {
        let broker = DevBroker::start(1).expect("dev broker");
        let bootstrap = broker.bootstrap_servers();
        let tmp = tempfile::tempdir().expect("temp dir");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");

        let (sim, gateway_url) = match opts.sim {
            Some(mut config) => {
                if opts.webhooks {
                    config.webhook_url = Some(format!("{base}/v1/payments/webhook"));
                }
                let (url, sim) = start_sim(config).await;
                (Some(sim), url)
            }
            None => (None, opts.gateway_url.clone().expect("gateway url")),
        };

        let data_dir = tmp.path().display().to_string();
        let prefix = format!("{}:", nivesh_testkit::unique("payment-it"));
        let idp = nivesh_testkit::TestIdp::start().await;
        let mut vars: Vec<(String, String)> = vec![
            ("NIVESH__KAFKA__BOOTSTRAP_SERVERS".into(), bootstrap.clone()),
            ("NIVESH__STORE__DATA_DIR".into(), data_dir),
            ("NIVESH__REDIS__URL".into(), nivesh_testkit::redis_url()),
            ("NIVESH__REDIS__KEY_PREFIX".into(), prefix),
            (
                "NIVESH__TELEMETRY__LOG_LEVEL".into(),
                "warn,nivesh_payment=info".into(),
            ),
            ("NIVESH__TELEMETRY__LOG_FORMAT".into(), "pretty".into()),
            ("NIVESH__SERVICE__GATEWAY__BASE_URL".into(), gateway_url),
            (
                "NIVESH__SERVICE__GATEWAY__BACKOFF_BASE_MS".into(),
                "20".into(),
            ),
            ("NIVESH__SERVICE__WEBHOOK_SECRET".into(), SECRET.into()),
            (
                "NIVESH__SERVICE__RECONCILE__ENABLED".into(),
                opts.reconcile.to_string(),
            ),
            (
                "NIVESH__SERVICE__RECONCILE__INTERVAL_SECS".into(),
                "1".into(),
            ),
            (
                "NIVESH__SERVICE__RECONCILE__MIN_AGE_SECS".into(),
                opts.reconcile_min_age_secs.to_string(),
            ),
            (
                "NIVESH__SERVICE__RECONCILE__EXPIRE_AFTER_SECS".into(),
                opts.expire_after_secs.to_string(),
            ),
        ];
        vars.extend(idp.env());
        let settings =
            load_from::<nivesh_payment::Config>("payment", &ConfigSources::with_vars(vars))
                .expect("settings");
        let ctx = nivesh_runtime::service::connect(&settings)
            .await
            .expect("connect");
        let app =
            nivesh_payment::build(&ctx, &settings.service, settings.clock.clock()).expect("build");
        let shutdown = ctx.shutdown.clone();
        let task = tokio::spawn(nivesh_runtime::service::run_on(ctx, app, listener));

        let producer =
            BusProducer::new(&KafkaSettings::new(&bootstrap, "payment-test-producer")).unwrap();
        Harness {
            broker: Some(broker),
            bootstrap,
            producer,
            codec: AvroCodec::single_object(),
            base,
            sim,
            http: reqwest::Client::builder()
                .default_headers(
                    [(
                        reqwest::header::AUTHORIZATION,
                        idp.ops().parse().expect("header value"),
                    )]
                    .into_iter()
                    .collect(),
                )
                .build()
                .unwrap(),
            idp,
            shutdown,
            task: Some(task),
            _tmp: tmp,
        }
    }

    pub fn sim(&self) -> &Sim {
        self.sim.as_ref().expect("this test runs the simulator")
    }

    /// Publish an event as its producer would (keyed by investor id).
    pub async fn publish<E: Event>(&self, topic: &str, key: &str, event: &E) {
        kafka::produce(&self.producer, &self.codec, topic, key, event, true).await;
    }

    pub async fn publish_raw(
        &self,
        topic: &str,
        key: &str,
        payload: Vec<u8>,
        headers: Vec<(String, Vec<u8>)>,
    ) {
        kafka::produce_raw(&self.producer, topic, key, payload, headers).await;
    }

    /// Read `topic` from the beginning until `done` holds for the events read (or [`WAIT`]).
    pub async fn wait_for<E, F>(&self, topic: &str, done: F) -> Vec<E>
    where
        E: Event + Clone,
        F: Fn(&[E]) -> bool + Send + 'static,
    {
        kafka::events_until(&self.bootstrap, topic, &self.codec, WAIT, done).await
    }

    /// Everything on `topic` as of now (each partition read to its high watermark).
    pub async fn read_all<E: Event>(&self, topic: &str) -> Vec<E> {
        let msgs = kafka::read_all(&self.bootstrap, topic, WAIT).await;
        kafka::decode_all(&self.codec, &msgs).await
    }

    /// Every event on `topic` for `order_id` once `done` holds for them.
    pub async fn wait_for_order<E, F>(
        &self,
        topic: &str,
        order_of: fn(&E) -> &str,
        order_id: &str,
        done: F,
    ) -> Vec<E>
    where
        E: Event + Clone,
        F: Fn(&[E]) -> bool + Send + 'static,
    {
        let id = order_id.to_string();
        let all = self
            .wait_for::<E, _>(topic, move |es: &[E]| {
                let mine: Vec<E> = es.iter().filter(|e| order_of(e) == id).cloned().collect();
                done(&mine)
            })
            .await;
        all.into_iter()
            .filter(|e| order_of(e) == order_id)
            .collect()
    }

    /// `GET /v1/payments/{order}?investorId=` as `authorization` (`None`: no header).
    pub async fn get_payment_as(
        &self,
        investor: &str,
        order: &str,
        authorization: Option<&str>,
    ) -> u16 {
        let mut req = reqwest::Client::new().get(format!(
            "{}/v1/payments/{order}?investorId={investor}",
            self.base
        ));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// `GET /v1/payments/{order}?investorId=`.
    pub async fn get_payment(&self, investor: &str, order: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(format!(
                "{}/v1/payments/{order}?investorId={investor}",
                self.base
            ))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// POST a webhook body with the given headers.
    pub async fn post_webhook(
        &self,
        body: &[u8],
        timestamp: Option<String>,
        signature: Option<String>,
    ) -> reqwest::Response {
        // No bearer token: the gateway authenticates webhooks with the HMAC signature only.
        let mut req = reqwest::Client::new()
            .post(format!("{}/v1/payments/webhook", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(ts) = timestamp {
            req = req.header("X-Nivesh-Timestamp", ts);
        }
        if let Some(sig) = signature {
            req = req.header("X-Nivesh-Signature", sig);
        }
        req.send().await.unwrap()
    }

    /// A webhook signed with the shared secret now.
    pub async fn post_signed_webhook(&self, body: &[u8]) -> reqwest::Response {
        let ts = Utc::now().timestamp();
        let sig = nivesh_pg_sim::signature::sign(SECRET.as_bytes(), ts, body);
        self.post_webhook(body, Some(ts.to_string()), Some(sig))
            .await
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let stopped = tokio::time::timeout(Duration::from_secs(30), task).await;
            assert!(
                matches!(stopped, Ok(Ok(Ok(())))),
                "the service did not stop cleanly: {stopped:?}"
            );
        }
        self.broker.take();
    }
}

impl Drop for Harness {
    /// The failure path (a panicking test): stop the service and leak the broker rather than
    /// risk blocking the test process in its destructor; the process ends right after.
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
            std::mem::forget(self.broker.take());
        }
    }
}

/// The simulator on 127.0.0.1:0; returns its base URL.
pub async fn start_sim(config: SimConfig) -> (String, Sim) {
    let sim = Sim::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = sim.clone();
    tokio::spawn(
        async move { nivesh_pg_sim::serve(listener, served, std::future::pending()).await },
    );
    (format!("http://{addr}"), sim)
}

pub fn order_placed(
    investor: &str,
    order_id: &str,
    kind: &str,
    amount: Decimal,
    instrument: Option<&str>,
) -> OrderPlaced {
    let sip = kind == order_kind::SIP_INSTALMENT;
    OrderPlaced {
        meta: EventMeta::new::<OrderPlaced>("order", Some(format!("idem-{order_id}"))),
        order_id: order_id.into(),
        investor_id: investor.into(),
        kind: kind.into(),
        scheme_code: "119551".into(),
        scheme_name: Some("Aditya Birla Sun Life Liquid Fund - Direct - Growth".into()),
        scheme_category: Some("Debt Scheme - Liquid Fund".into()),
        target_scheme_code: None,
        target_scheme_category: None,
        amount: Some(amount),
        units: None,
        all_units: false,
        placed_at: Utc::now(),
        sip_id: sip.then(|| "sip-7".into()),
        instalment_no: sip.then_some(3),
        payment_instrument: instrument.map(str::to_string),
    }
}

pub fn order_failed(investor: &str, order_id: &str, refund: Option<Decimal>) -> OrderFailed {
    OrderFailed {
        meta: EventMeta::new::<OrderFailed>("order", None),
        order_id: order_id.into(),
        investor_id: investor.into(),
        order_kind: order_kind::PURCHASE.into(),
        scheme_code: "119551".into(),
        stage: "ALLOTMENT".into(),
        reason_code: "NAV_UNAVAILABLE".into(),
        reason: "no NAV within the limit".into(),
        payment_id: refund.map(|_| order_id.to_string()),
        refund_amount: refund,
    }
}

pub fn new_order_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A request seen by a stub gateway.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
}

/// A hand-written gateway stub: `respond(n, seen)` decides the answer to the n-th request
/// (0-based); every request is recorded.
pub struct Stub {
    pub url: String,
    pub seen: Arc<std::sync::Mutex<Vec<Seen>>>,
    pub count: Arc<AtomicUsize>,
}

pub type Responder = Arc<
    dyn Fn(usize, Seen, axum::body::Bytes) -> BoxFuture<'static, axum::response::Response>
        + Send
        + Sync
        + 'static,
>;

pub async fn stub(respond: Responder) -> Stub {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (seen2, count2) = (seen.clone(), count.clone());
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method,
              uri: axum::http::Uri,
              headers: axum::http::HeaderMap,
              body: axum::body::Bytes| {
            let (seen, count, respond) = (seen2.clone(), count2.clone(), respond.clone());
            async move {
                let s = Seen {
                    method: method.to_string(),
                    path: uri
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    idempotency_key: headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                };
                seen.lock().unwrap().push(s.clone());
                let n = count.fetch_add(1, Ordering::SeqCst);
                respond(n, s, body).await
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Stub {
        url: format!("http://{addr}"),
        seen,
        count,
    }
}

/// Gateway settings pointing at `url`, with short timeouts and backoff for tests.
pub fn gateway_config(url: &str) -> GatewayConfig {
    GatewayConfig {
        base_url: url.into(),
        request_timeout_ms: 300,
        connect_timeout_ms: 300,
        max_attempts: 3,
        backoff_base_ms: 10,
        backoff_max_ms: 50,
        breaker_minimum_calls: 50,
        breaker_open_secs: 60,
        ..GatewayConfig::default()
    }
}
