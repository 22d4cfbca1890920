//! The compliance service on a real Kafka-protocol broker (librdkafka's mock cluster over TCP,
//! every catalog topic created), an embedded store in a temp dir, HTTP on a random port, and a
//! dev identity provider (JWKS over HTTP) minting the callers' tokens.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use nivesh_auth::{DevClaims, Role};
use nivesh_bus::devbroker::DevBroker;
use nivesh_bus::{BusProducer, InboundMessage, KafkaSettings};
use nivesh_compliance::ComplianceService;
use nivesh_domain::time::SystemClock;
use nivesh_events::{AvroCodec, Event};
use nivesh_runtime::config::{ConfigSources, load_from};
use nivesh_runtime::service::{connect, run_on};
use nivesh_testkit::auth::TestIdp;
use nivesh_testkit::kafka;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound of every wait: tests finish or fail, never hang.
pub const WAIT: Duration = Duration::from_secs(60);
/// The subject of the compliance officer's tokens (`DevClaims::with_roles(&[Compliance])`).
pub const OFFICER: &str = "staff-compliance";

pub struct Svc {
    pub bootstrap: String,
    pub base: String,
    pub http: reqwest::Client,
    pub idp: TestIdp,
    pub producer: BusProducer,
    pub codec: AvroCodec,
    pub svc: Arc<ComplianceService>,
    pub tmp: tempfile::TempDir,
    shutdown: CancellationToken,
    handle: JoinHandle<nivesh_runtime::Result<()>>,
    /// Last: fields drop in order, so the clients above are gone before the broker stops.
    pub broker: DevBroker,
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub async fn start() -> Svc {
    start_with(|_| Vec::new()).await
}

/// Starts the service; `extra` adds settings given the temp dir (e.g. an export dir).
pub async fn start_with(extra: impl FnOnce(&std::path::Path) -> Vec<(String, String)>) -> Svc {
    let broker = DevBroker::start(1).expect("dev broker");
    let bootstrap = broker.bootstrap_servers();
    let tmp = tempfile::tempdir().unwrap();
    let idp = TestIdp::start().await;
    let auth = idp.settings();
    let layout = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/compliance/sebi-transactions.toml");
    let mut vars: Vec<(String, String)> = vec![
        ("NIVESH__KAFKA__BOOTSTRAP_SERVERS".into(), bootstrap.clone()),
        (
            "NIVESH__STORE__DATA_DIR".into(),
            tmp.path().display().to_string(),
        ),
        ("NIVESH__REDIS__URL".into(), String::new()),
        ("NIVESH__TELEMETRY__LOG_LEVEL".into(), "warn".into()),
        ("NIVESH__HTTP__SHUTDOWN_TIMEOUT_SECS".into(), "5".into()),
        ("NIVESH__AUTH__ISSUER".into(), auth.issuer),
        ("NIVESH__AUTH__JWKS_URL".into(), auth.jwks_url),
        ("NIVESH__AUTH__AUDIENCE".into(), auth.audience),
        (
            "NIVESH__SERVICE__KEK_FILE".into(),
            tmp.path().join("kek.b64").display().to_string(),
        ),
        (
            "NIVESH__SERVICE__EXPORT_LAYOUT".into(),
            layout.display().to_string(),
        ),
        (
            "NIVESH__SERVICE__EXPORT_DIR".into(),
            tmp.path().join("exports").display().to_string(),
        ),
        ("NIVESH__SERVICE__DELIVERY_BACKOFF_MS".into(), "50".into()),
    ];
    vars.extend(extra(tmp.path()));
    let settings =
        load_from::<nivesh_compliance::Config>("compliance", &ConfigSources::with_vars(vars))
            .expect("settings");
    let ctx = connect(&settings).await.expect("connect");
    let (app, svc) =
        nivesh_compliance::build(&ctx, settings.service.clone(), Arc::new(SystemClock))
            .expect("build");
    let shutdown = ctx.shutdown.clone();
    let codec = ctx.codec.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(run_on(ctx, app, listener));
    let producer = BusProducer::new(&KafkaSettings::new(&bootstrap, "compliance-test")).unwrap();
    Svc {
        broker,
        bootstrap,
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        idp,
        producer,
        codec,
        svc,
        tmp,
        shutdown,
        handle,
    }
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
            Err(nivesh_runtime::Error::Task { reason, .. })
                if reason == "stopped before shutdown" => {}
            Err(e) => panic!("the service failed: {e}"),
        }
    }

    /// Publishes one event with the headers an outbox writes (+ `extra` headers).
    pub async fn produce<E: Event>(&self, topic: &str, key: &str, event: &E) {
        self.produce_with(topic, key, event, Vec::new()).await;
    }

    pub async fn produce_with<E: Event>(
        &self,
        topic: &str,
        key: &str,
        event: &E,
        extra: Vec<(String, Vec<u8>)>,
    ) {
        let payload = self.codec.encode(event).await.expect("encode");
        let mut headers = self.codec.headers(event);
        headers.extend(extra);
        kafka::produce_raw(&self.producer, topic, key, payload, headers).await;
    }

    pub fn admin(&self) -> String {
        self.idp.admin()
    }

    /// The compliance officer's token (`sub` = [`OFFICER`], tenant `nivesh`).
    pub fn officer(&self) -> String {
        self.idp.role(Role::Compliance)
    }

    pub fn bearer(&self, claims: &DevClaims) -> String {
        self.idp.bearer(claims)
    }

    /// A grant for `subject` (as the admin).
    pub async fn grant(&self, subject: &str, from: DateTime<Utc>, until: DateTime<Utc>) -> Resp {
        self.post(
            &self.admin(),
            "/v1/compliance/grants",
            &json!({"subject": subject, "validFrom": from, "validUntil": until,
                    "reason": "quarterly SEBI inspection"}),
        )
        .await
    }

    /// An active one-hour grant for the officer.
    pub async fn grant_officer(&self) {
        let now = Utc::now();
        let r = self
            .grant(
                OFFICER,
                now - chrono::Duration::minutes(5),
                now + chrono::Duration::hours(1),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:#}", r.body);
    }

    pub async fn get(&self, token: &str, path: &str) -> Resp {
        Resp::from(
            self.http
                .get(self.url(path))
                .header("authorization", token)
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> Resp {
        Resp::from(
            self.http
                .post(self.url(path))
                .header("authorization", token)
                .json(body)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    /// Polls `GET path` (as the admin) until `pred` holds on a 200 body.
    pub async fn get_until(&self, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = self.get(&self.admin(), path).await;
            if r.status == StatusCode::OK && pred(&r.body) {
                return r.body;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last answer {} {:#}",
                r.status,
                r.body
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits until a ledger partition verifies with exactly `n` records.
    pub async fn ledger_has(&self, partition: &str, n: u64) -> Value {
        self.get_until(
            &format!("/v1/compliance/ledger/{partition}/verify"),
            &format!("{n} records in {partition}"),
            |b| b["records"] == n,
        )
        .await
    }

    /// Every record on `topic` right now.
    pub async fn read(&self, topic: &str) -> Vec<InboundMessage> {
        kafka::read_all(&self.bootstrap, topic, WAIT).await
    }
}

/// An HTTP answer: status, headers, raw body and the body parsed as JSON (Null if not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
    pub body: Value,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("body").to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            bytes,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 7807 problem with `status`.
    pub fn problem(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "{:#}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{:#}",
            self.body
        );
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

/// Lower-case hex SHA-256.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
