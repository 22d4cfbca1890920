//! The gateway in-process on a real Kafka-protocol broker (DevBroker), the real Redis under a
//! unique prefix (response cache and quota script), the embedded store in a temp dir, a dev
//! identity provider on a random port, and an OpenAI-compatible stub (axum) that records every
//! request it gets.

#![allow(dead_code, unreachable_pub)]

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::NaiveDate;
use nivesh_auth::{AuthSettings, DevClaims, DevIssuer, Role};
use nivesh_bus::devbroker::DevBroker;
use nivesh_bus::{BusProducer, InboundMessage};
use nivesh_events::{AvroCodec, Event, EventMeta, NavPublished, PortfolioUpdated};
use nivesh_genai_gateway::Config;
use nivesh_runtime::config::{ConfigSources, load_from};
use nivesh_runtime::service::{ServiceContext, run_on};
use nivesh_store::{DocumentStore, EmbeddedStore, RedisCache};
use nivesh_testkit::kafka;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(60);

pub fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

pub fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// What the stub LLM does with the next requests.
#[derive(Debug, Clone)]
pub enum StubMode {
    /// 200 with this content (after an optional delay).
    Answer(String, Duration),
    /// Answer with this status.
    Status(u16),
    /// Never answer.
    Hang,
}

#[derive(Clone)]
pub struct Stub {
    pub requests: Arc<Mutex<Vec<Value>>>,
    pub calls: Arc<AtomicUsize>,
    pub mode: Arc<Mutex<StubMode>>,
}

impl Stub {
    pub fn set(&self, mode: StubMode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn answer(&self, content: &str) {
        self.set(StubMode::Answer(content.to_string(), Duration::ZERO));
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Every request body as text (what left the gateway).
    pub fn recorded(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|v| v.to_string())
            .collect()
    }

    /// The user message of the last request.
    pub fn last_user_message(&self) -> String {
        let reqs = self.requests.lock().unwrap();
        let last = reqs.last().expect("the LLM was called");
        last["messages"][1]["content"].as_str().unwrap().to_string()
    }
}

async fn completions(State(stub): State<Stub>, Json(body): Json<Value>) -> Response {
    stub.calls.fetch_add(1, Ordering::SeqCst);
    stub.requests.lock().unwrap().push(body);
    let mode = stub.mode.lock().unwrap().clone();
    match mode {
        StubMode::Answer(content, delay) => {
            tokio::time::sleep(delay).await;
            Json(json!({
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "model": "stub-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}
            }))
            .into_response()
        }
        StubMode::Status(code) => (
            StatusCode::from_u16(code).unwrap(),
            Json(json!({"error": {"message": "stubbed failure"}})),
        )
            .into_response(),
        StubMode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

async fn serve(router: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

pub async fn start_stub() -> (Stub, String) {
    let stub = Stub {
        requests: Arc::default(),
        calls: Arc::default(),
        mode: Arc::new(Mutex::new(StubMode::Answer(
            "No answer configured.".into(),
            Duration::ZERO,
        ))),
    };
    let base = serve(
        axum::Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(stub.clone()),
    )
    .await;
    (stub, format!("{base}/v1"))
}

pub struct Svc {
    pub bootstrap: String,
    pub producer: BusProducer,
    pub codec: AvroCodec,
    pub store: Arc<EmbeddedStore>,
    pub base: String,
    pub http: reqwest::Client,
    pub issuer: DevIssuer,
    pub stub: Stub,
    pub redis_prefix: String,
    shutdown: CancellationToken,
    handle: JoinHandle<nivesh_runtime::Result<()>>,
    _tmp: tempfile::TempDir,
    pub broker: DevBroker,
}

/// The gateway with the OpenAI stub as its provider (or `local` when `extra` says so).
pub async fn start(extra: &[(&str, &str)]) -> Svc {
    start_on(extra, &nivesh_testkit::redis_url()).await
}

/// [`start`] with Redis (cache and quotas) at `redis_url`.
pub async fn start_on(extra: &[(&str, &str)], redis_url: &str) -> Svc {
    let (stub, stub_base) = start_stub().await;
    let idp_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer_url = format!("http://{}", idp_listener.local_addr().unwrap());
    let issuer = DevIssuer::generate(&issuer_url);
    let idp = issuer.clone().router();
    tokio::spawn(async move { axum::serve(idp_listener, idp).await });
    let auth = AuthSettings::for_issuer(&issuer_url);

    let broker = tokio::task::spawn_blocking(|| DevBroker::start(1).expect("dev broker"))
        .await
        .unwrap();
    let bootstrap = broker.bootstrap_servers();
    let tmp = tempfile::tempdir().unwrap();
    let mut vars: Vec<(String, String)> = vec![
        ("NIVESH__KAFKA__BOOTSTRAP_SERVERS".into(), bootstrap.clone()),
        (
            "NIVESH__STORE__DATA_DIR".into(),
            tmp.path().display().to_string(),
        ),
        ("NIVESH__REDIS__URL".into(), redis_url.to_string()),
        ("NIVESH__TELEMETRY__LOG_LEVEL".into(), "warn".into()),
        ("NIVESH__HTTP__SHUTDOWN_TIMEOUT_SECS".into(), "5".into()),
        ("NIVESH__AUTH__ISSUER".into(), auth.issuer.clone()),
        ("NIVESH__AUTH__JWKS_URL".into(), auth.jwks_url.clone()),
        ("NIVESH__SERVICE__LLM__PROVIDER".into(), "openai".into()),
        ("NIVESH__SERVICE__LLM__BASE_URL".into(), stub_base),
        ("NIVESH__SERVICE__LLM__API_KEY".into(), "sk-test".into()),
        ("NIVESH__SERVICE__LLM__TIMEOUT_MS".into(), "1500".into()),
        (
            "NIVESH__SERVICE__LLM__ATTEMPT_TIMEOUT_MS".into(),
            "600".into(),
        ),
        ("NIVESH__SERVICE__LLM__MAX_ATTEMPTS".into(), "2".into()),
        ("NIVESH__SERVICE__LLM__BACKOFF_MS".into(), "20".into()),
        // No breaker verdict within a test: every failure mode reaches the stub.
        (
            "NIVESH__SERVICE__LLM__BREAKER_MINIMUM_CALLS".into(),
            "50".into(),
        ),
        ("NIVESH__SERVICE__INDEX_REFRESH_MS".into(), "200".into()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let settings =
        load_from::<Config>("genai-gateway", &ConfigSources::with_vars(vars)).expect("settings");
    let redis_prefix = format!("{}:", nivesh_testkit::unique("genai-test"));
    let cache = Arc::new(
        RedisCache::connect(redis_url, &redis_prefix)
            .await
            .expect("the real Redis at REDIS_URL (default 127.0.0.1:6379)"),
    );
    let kafka_settings = settings.kafka.to_bus("genai-gateway").expect("kafka");
    let store = Arc::new(
        EmbeddedStore::open(settings.store.embedded_path("genai-gateway")).expect("store"),
    );
    let producer = BusProducer::new(&kafka_settings).expect("producer");
    let ctx = ServiceContext::new(
        settings.common(),
        store.clone(),
        cache.clone(),
        producer.clone(),
        kafka_settings,
    );
    let app =
        nivesh_genai_gateway::app(&ctx, &settings.service, Some((*cache).clone())).expect("app");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = ctx.shutdown.clone();
    let handle = tokio::spawn(run_on(ctx, app, listener));
    Svc {
        bootstrap,
        producer,
        codec: AvroCodec::single_object(),
        store,
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        issuer,
        stub,
        redis_prefix,
        shutdown,
        handle,
        _tmp: tmp,
        broker,
    }
}

impl Svc {
    pub async fn stop(self) {
        self.shutdown.cancel();
        let outcome = tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("service stops")
            .expect("no panic");
        outcome.expect("service ran without error");
    }

    pub fn investor_token(&self, investor: &str) -> String {
        self.issuer.mint(&DevClaims::investor(investor))
    }

    pub fn staff_token(&self, roles: &[Role]) -> String {
        self.issuer.mint(&DevClaims::with_roles(roles))
    }

    pub async fn publish<E: Event>(&self, topic: &str, key: &str, event: &E) {
        kafka::produce(&self.producer, &self.codec, topic, key, event, false).await;
    }

    pub async fn nav(&self, code: &str, name: &str, nav: &str, on: &str, anomaly: bool) {
        let e = NavPublished {
            meta: EventMeta::new::<NavPublished>("nav-publisher", None),
            scheme_code: code.into(),
            scheme_name: name.into(),
            amc: Some("Test AMC".into()),
            category: Some("Equity Scheme - Large Cap Fund".into()),
            scheme_type: Some("Open Ended Schemes".into()),
            nav: d(nav),
            nav_date: date(on),
            anomaly,
            change_kind: "NEW".into(),
        };
        self.publish("nav.broadcast", code, &e).await;
    }

    pub async fn holding(
        &self,
        investor: &str,
        code: &str,
        units: &str,
        invested: &str,
        version: i64,
    ) {
        let e = PortfolioUpdated {
            meta: EventMeta::new::<PortfolioUpdated>("portfolio", None),
            investor_id: investor.into(),
            order_id: None,
            transaction_id: None,
            scheme_code: code.into(),
            units: d(units),
            invested: d(invested),
            version,
        };
        self.publish("portfolio.updated", investor, &e).await;
    }

    /// Wait until the read model no longer holds `id` in `container`/`partition`.
    pub async fn wait_gone(&self, container: &str, partition: &str, id: &str) {
        let deadline = Instant::now() + WAIT;
        while self
            .store
            .get(container, partition, id)
            .await
            .unwrap()
            .is_some()
        {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {container}/{partition}/{id} to go"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until the read model holds `id` in `container`/`partition`.
    pub async fn wait_doc(&self, container: &str, partition: &str, id: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self
                .store
                .get(container, partition, id)
                .await
                .unwrap()
                .is_some()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {container}/{partition}/{id}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Seed INV0001 (100 units of 119551 at NAV 25.5) and INV0002 (777.777 units of 120503).
    pub async fn seed_two_investors(&self) {
        self.nav(
            "119551",
            "Alpha Bluechip Fund - Direct Growth",
            "24.0",
            "2025-01-31",
            false,
        )
        .await;
        self.nav(
            "119551",
            "Alpha Bluechip Fund - Direct Growth",
            "25.5",
            "2025-02-25",
            false,
        )
        .await;
        self.nav(
            "120503",
            "Zeta Smallcap Fund - Direct Growth",
            "88.125",
            "2025-02-25",
            false,
        )
        .await;
        self.holding("INV0001", "119551", "100", "2400", 1).await;
        self.holding("INV0002", "120503", "777.777", "65000", 1)
            .await;
        self.wait_doc("genai_schemes", "119551", "nav:2025-02-25")
            .await;
        self.wait_doc("genai_schemes", "120503", "facts").await;
        self.wait_doc("genai_investors", "nivesh:INV0001", "h:119551")
            .await;
        self.wait_doc("genai_investors", "nivesh:INV0002", "h:120503")
            .await;
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `POST /v1/genai/ask` as `token`; asserts 200 and returns the body.
    pub async fn ask(&self, token: &str, question: &str) -> Value {
        let resp = self
            .post(
                "/v1/genai/ask",
                Some(token),
                json!({ "question": question }),
            )
            .await;
        assert_eq!(resp.status(), 200, "ask {question}");
        resp.json().await.unwrap()
    }

    /// Records on `topic` (polling until `enough`).
    pub async fn read_until(
        &self,
        topic: &str,
        enough: impl Fn(&[InboundMessage]) -> bool,
    ) -> Vec<InboundMessage> {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = kafka::read_all(&self.bootstrap, topic, Duration::from_secs(2)).await;
            if enough(&all) {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "timed out reading {topic}: {} records",
                all.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn decode<E: Event>(&self, msgs: &[InboundMessage]) -> Vec<E> {
        kafka::decode_all(&self.codec, msgs).await
    }
}

/// A one-page PDF (standard Helvetica font) showing `lines`, with a correct xref table.
pub fn minimal_pdf(lines: &[&str]) -> Vec<u8> {
    let mut content = String::from("BT /F1 12 Tf 72 720 Td 16 TL ");
    for l in lines {
        content.push_str(&format!(
            "({}) Tj T* ",
            l.replace('(', "\\(").replace(')', "\\)")
        ));
    }
    content.push_str("ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_string(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_string(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for off in offsets {
        table.push_str(&format!("{off:010} 00000 n \n"));
    }
    pdf.extend_from_slice(table.as_bytes());
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// A TCP proxy in front of the real Redis that can be cut: every connection through it is
/// dropped and new ones are refused, as when Redis goes down.
pub struct RedisProxy {
    pub url: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl RedisProxy {
    pub async fn start() -> RedisProxy {
        let target = nivesh_testkit::redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let conns = tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                conns.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        RedisProxy { url, tasks, accept }
    }

    /// Redis "goes down": the listener closes and every open connection is dropped.
    pub fn cut(&self) {
        self.accept.abort();
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}
