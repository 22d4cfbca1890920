//! The allotment service running in-process against a real Kafka-protocol broker (librdkafka's
//! mock cluster over TCP, every catalog topic created) and the embedded store in a temp dir,
//! with a business clock the test moves. Events go in through the broker and come out of the
//! outbox onto the real topics, where the tests read them.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use nivesh_allotment::Config;
use nivesh_bus::devbroker::DevBroker;
use nivesh_bus::{BusProducer, InboundMessage, KafkaSettings};
use nivesh_domain::time::{Clock, FixedClock, ist_datetime};
use nivesh_events::{
    AvroCodec, Event, EventMeta, NavPublished, OrderPlaced, PaymentSucceeded, order_kind,
};
use nivesh_runtime::config::{ConfigSources, load_from};
use nivesh_runtime::service::{ServiceContext, run_on};
use nivesh_store::{EmbeddedStore, MemoryCache};
use nivesh_testkit::kafka;
use rust_decimal::Decimal;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound for every wait: tests finish in seconds or fail, never hang.
pub const WAIT: Duration = Duration::from_secs(60);

pub const EQUITY: &str = "Open Ended Schemes(Equity Scheme - Large Cap Fund)";
pub const GILT: &str = "Open Ended Schemes(Debt Scheme - Gilt Fund)";

pub fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// An instant given as IST wall-clock time.
pub fn ist(date: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    ist_datetime(date, NaiveTime::from_hms_opt(h, m, 0).unwrap()).with_timezone(&Utc)
}

pub fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

pub struct Service {
    pub broker: DevBroker,
    pub bootstrap: String,
    pub producer: BusProducer,
    pub codec: AvroCodec,
    pub clock: Arc<FixedClock>,
    pub base: String,
    /// Sends an ops bearer token by default.
    pub http: reqwest::Client,
    /// The identity provider the service trusts.
    pub idp: nivesh_testkit::TestIdp,
    store_path: std::path::PathBuf,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<nivesh_runtime::Result<()>>>,
    _tmp: tempfile::TempDir,
}

impl Service {
    /// Starts a broker and the service with `config`, the business clock at `now`.
    pub async fn start(config: Config, now: DateTime<Utc>) -> Service {
        let broker = DevBroker::start(1).expect("dev broker");
        let bootstrap = broker.bootstrap_servers();
        let tmp = tempfile::tempdir().expect("temp dir");
        let idp = nivesh_testkit::TestIdp::start().await;
        let mut vars: Vec<(String, String)> = [
            ("NIVESH__KAFKA__BOOTSTRAP_SERVERS", bootstrap.clone()),
            ("NIVESH__STORE__DATA_DIR", tmp.path().display().to_string()),
            ("NIVESH__REDIS__URL", String::new()),
            ("NIVESH__TELEMETRY__LOG_LEVEL", "warn".into()),
            ("NIVESH__HTTP__SHUTDOWN_TIMEOUT_SECS", "10".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        vars.extend(idp.env());
        let settings =
            load_from::<Config>("allotment", &ConfigSources::with_vars(vars)).expect("settings");
        let kafka = settings
            .kafka
            .to_bus("allotment")
            .expect("kafka settings")
            .with("session.timeout.ms", "6000")
            .with("heartbeat.interval.ms", "500");
        let store_path = settings.store.embedded_path("allotment");
        let store = EmbeddedStore::open(&store_path).expect("store");
        let producer = BusProducer::new(&kafka).expect("producer");
        let ctx = ServiceContext::new(
            settings.common(),
            Arc::new(store),
            Arc::new(MemoryCache::new()),
            producer,
            kafka,
        );
        let clock = Arc::new(FixedClock::new(now));
        let business: Arc<dyn Clock> = clock.clone();
        let app = nivesh_allotment::app(&ctx, &config, business);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let shutdown = ctx.shutdown.clone();
        let handle = tokio::spawn(run_on(ctx, app, listener));
        let test_producer =
            BusProducer::new(&KafkaSettings::new(&bootstrap, "allotment-test")).expect("producer");
        Service {
            broker,
            bootstrap,
            producer: test_producer,
            codec: AvroCodec::single_object(),
            clock,
            base: format!("http://{addr}"),
            // Ops reads every investor's ledger; access tests send their own token.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
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
            store_path,
            shutdown,
            handle: Some(handle),
            _tmp: tmp,
        }
    }

    /// The service's embedded store file.
    pub fn store_path(&self) -> std::path::PathBuf {
        self.store_path.clone()
    }

    /// Stops the service (what SIGTERM does) and checks it stopped cleanly.
    ///
    /// Tolerates one error: `run_on` races its cancellation branch against the background tasks
    /// that stop *because of* the cancellation, and may report a task that "stopped before
    /// shutdown" (a runtime issue, reported; not this service's).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let handle = self.handle.take().expect("running");
        let result = tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .expect("service stops within 30 s")
            .expect("service task did not panic");
        match result {
            Ok(()) => {}
            Err(nivesh_runtime::Error::Task { reason, .. })
                if reason == "stopped before shutdown" => {}
            Err(e) => panic!("service stopped with an error: {e}"),
        }
    }

    pub async fn send_raw(&self, topic: &str, key: &str, payload: Vec<u8>) {
        kafka::produce_raw(&self.producer, topic, key, payload, Vec::new()).await;
    }

    pub async fn send<E: Event>(&self, topic: &str, key: &str, event: &E) {
        kafka::produce(&self.producer, &self.codec, topic, key, event, false).await;
    }

    pub async fn publish_nav(&self, nav: &NavPublished) {
        self.send("nav.broadcast", &nav.scheme_code, nav).await;
    }

    pub async fn pay(&self, p: &PaymentSucceeded) {
        self.send("payment.success", &p.investor_id, p).await;
    }

    pub async fn place(&self, o: &OrderPlaced) {
        self.send("order.placed", &o.investor_id, o).await;
    }

    /// `GET path` with `authorization` (`None`: no header): status and JSON body.
    pub async fn get_as(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new().get(format!("{}{path}", self.base));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.expect("http");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("http");
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, body, ctype)
    }

    /// Polls `GET path` until `pred` holds on a 200 body.
    pub async fn until_http(
        &self,
        path: &str,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, body, _) = self.get_json(path).await;
            if status == 200 && pred(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every record on `topic` so far, decoded as `E`.
    pub async fn read<E: Event>(&self, topic: &str) -> Vec<E> {
        kafka::decode_all(&self.codec, &read_all(&self.bootstrap, topic).await).await
    }

    /// Waits until the events on `topic` satisfy `pred`, then returns them all.
    pub async fn until<E: Event>(
        &self,
        topic: &str,
        what: &str,
        pred: impl Fn(&[E]) -> bool,
    ) -> Vec<E> {
        let deadline = Instant::now() + WAIT;
        loop {
            let events = self.read::<E>(topic).await;
            if pred(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} on {topic} ({} events so far)",
                events.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Every record on `topic` (all partitions) up to the high watermarks as of now.
pub async fn read_all(bootstrap: &str, topic: &str) -> Vec<InboundMessage> {
    kafka::read_all(bootstrap, topic, WAIT).await
}

// ---- event builders -------------------------------------------------------------------------

pub fn nav_published(
    scheme: &str,
    amc: &str,
    category: &str,
    nav: &str,
    date: NaiveDate,
) -> NavPublished {
    NavPublished {
        meta: EventMeta::new::<NavPublished>("test", None),
        scheme_code: scheme.into(),
        scheme_name: format!("Scheme {scheme} - Direct - Growth"),
        amc: Some(amc.into()),
        category: Some(category.into()),
        scheme_type: Some("Open Ended Schemes".into()),
        nav: dec(nav),
        nav_date: date,
        anomaly: false,
        change_kind: "NEW".into(),
    }
}

pub fn payment(
    order_id: &str,
    investor: &str,
    scheme: &str,
    category: &str,
    amount: &str,
    realised_at: DateTime<Utc>,
) -> PaymentSucceeded {
    PaymentSucceeded {
        meta: EventMeta::new::<PaymentSucceeded>("test", Some(order_id.into())),
        payment_id: format!("pay-{order_id}"),
        order_id: order_id.into(),
        investor_id: investor.into(),
        amount: dec(amount),
        gateway_ref: format!("gw-{order_id}"),
        realised_at,
        order_kind: order_kind::PURCHASE.into(),
        scheme_code: scheme.into(),
        scheme_category: Some(category.into()),
        sip_id: None,
        instalment_no: None,
    }
}

pub fn redemption(
    order_id: &str,
    investor: &str,
    scheme: &str,
    units: Option<&str>,
    placed_at: DateTime<Utc>,
) -> OrderPlaced {
    OrderPlaced {
        meta: EventMeta::new::<OrderPlaced>("test", Some(order_id.into())),
        order_id: order_id.into(),
        investor_id: investor.into(),
        kind: order_kind::REDEMPTION.into(),
        scheme_code: scheme.into(),
        scheme_name: None,
        scheme_category: None,
        target_scheme_code: None,
        target_scheme_category: None,
        amount: None,
        units: units.map(dec),
        all_units: units.is_none(),
        placed_at,
        sip_id: None,
        instalment_no: None,
        payment_instrument: None,
    }
}

/// Independent purchase arithmetic (plain decimals): (duty, net, units).
pub fn expected_purchase(amount: &str, nav: &str) -> (Decimal, Decimal, Decimal) {
    use rust_decimal::RoundingStrategy;
    let (a, n) = (dec(amount), dec(nav));
    let duty = (a * dec("0.005") / dec("100.005"))
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let net = a - duty;
    let units = (net / n).round_dp_with_strategy(3, RoundingStrategy::ToZero);
    (duty, net, units)
}

/// `F` + first 10 upper-case hex digits of sha256("{investor}|{amc}"), computed here.
pub fn expected_folio(investor: &str, amc: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{investor}|{amc}").as_bytes());
    let hex: String = h.iter().map(|b| format!("{b:02X}")).collect();
    format!("F{}", &hex[..10])
}
