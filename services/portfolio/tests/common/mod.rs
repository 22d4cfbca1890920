//! Shared fixtures: the portfolio service running in-process on a real Kafka-protocol broker
//! (DevBroker), the real Redis under a unique key prefix and the embedded store in a temp dir;
//! event builders; a topic reader; HTTP helpers.

#![allow(dead_code, unreachable_pub)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveTime, Utc};
use nivesh_bus::devbroker::DevBroker;
use nivesh_bus::{BusProducer, InboundMessage};
use nivesh_domain::time::FixedClock;
use nivesh_events::{AvroCodec, Event, EventMeta, LotMovement, NavPublished, TransactionCompleted};
use nivesh_portfolio::Config;
use nivesh_runtime::config::{ConfigSources, load_from};
use nivesh_runtime::service::{ServiceContext, run_on};
use nivesh_store::{Cache, EmbeddedStore, RedisCache};
use nivesh_testkit::kafka;
use rust_decimal::Decimal;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound of every wait: tests finish in seconds or fail, never hang.
pub const WAIT: Duration = Duration::from_secs(60);

/// The business date the tests value portfolios on.
pub fn today() -> NaiveDate {
    date("2025-02-25")
}

pub fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

pub fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A Redis cache under a fresh key prefix, plus the prefix.
pub async fn redis_cache() -> (Arc<RedisCache>, String) {
    let prefix = format!("{}:", nivesh_testkit::unique("portfolio-test"));
    let cache = RedisCache::connect(&nivesh_testkit::redis_url(), &prefix)
        .await
        .expect("the real Redis at REDIS_URL (default 127.0.0.1:6379)");
    (Arc::new(cache), prefix)
}

/// The service running in-process.
pub struct Service {
    pub broker: DevBroker,
    pub bootstrap: String,
    pub producer: BusProducer,
    pub store: Arc<EmbeddedStore>,
    pub cache: Arc<dyn Cache>,
    pub base: String,
    /// Sends an admin bearer token by default; access tests send their own.
    pub http: reqwest::Client,
    /// The identity provider the service trusts.
    pub idp: nivesh_testkit::TestIdp,
    shutdown: CancellationToken,
    handle: JoinHandle<nivesh_runtime::Result<()>>,
    _tmp: tempfile::TempDir,
}

impl Service {
    /// Broker with the catalog's topics, store in a temp dir, Redis under a unique prefix.
    pub async fn start() -> Service {
        let (cache, _) = redis_cache().await;
        Self::start_with_cache(cache).await
    }

    pub async fn start_with_cache(cache: Arc<dyn Cache>) -> Service {
        let broker = tokio::task::spawn_blocking(|| DevBroker::start(1).expect("dev broker"))
            .await
            .unwrap();
        let bootstrap = broker.bootstrap_servers();
        let tmp = tempfile::tempdir().unwrap();
        let idp = nivesh_testkit::TestIdp::start().await;
        let registry =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/investors.json");
        let mut vars: Vec<(String, String)> = vec![
            (
                "NIVESH__SERVICE__INVESTOR_REGISTRY".into(),
                registry.display().to_string(),
            ),
            ("NIVESH__KAFKA__BOOTSTRAP_SERVERS".into(), bootstrap.clone()),
            (
                "NIVESH__STORE__DATA_DIR".into(),
                tmp.path().display().to_string(),
            ),
            ("NIVESH__REDIS__URL".into(), String::new()),
            ("NIVESH__TELEMETRY__LOG_LEVEL".into(), "warn".into()),
            ("NIVESH__HTTP__SHUTDOWN_TIMEOUT_SECS".into(), "5".into()),
        ];
        vars.extend(idp.env());
        let settings =
            load_from::<Config>("portfolio", &ConfigSources::with_vars(vars)).expect("settings");
        let kafka = settings.kafka.to_bus("portfolio").expect("kafka settings");
        let store = Arc::new(
            EmbeddedStore::open(settings.store.embedded_path("portfolio")).expect("store"),
        );
        let producer = BusProducer::new(&kafka).expect("producer");
        let ctx = ServiceContext::new(
            settings.common(),
            store.clone(),
            cache.clone(),
            producer.clone(),
            kafka,
        );
        let clock = Arc::new(FixedClock::at_ist(
            today(),
            NaiveTime::from_hms_opt(15, 0, 0).unwrap(),
        ));
        let app = nivesh_portfolio::app(&ctx, &settings.service, clock);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = ctx.shutdown.clone();
        let handle = tokio::spawn(run_on(ctx, app, listener));
        Service {
            broker,
            bootstrap,
            producer,
            store,
            cache,
            base,
            http: reqwest::Client::builder()
                .default_headers(
                    [(
                        reqwest::header::AUTHORIZATION,
                        idp.admin().parse().expect("header value"),
                    )]
                    .into_iter()
                    .collect(),
                )
                .build()
                .unwrap(),
            idp,
            shutdown,
            handle,
            _tmp: tmp,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let outcome = tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("service stops")
            .expect("no panic");
        outcome.expect("service ran without error");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Publish an event as its producer would (Avro single-object, keyed).
    pub async fn publish<E: Event>(&self, topic: &str, key: &str, event: &E) -> Vec<u8> {
        let codec = AvroCodec::single_object();
        kafka::produce(&self.producer, &codec, topic, key, event, false).await
    }

    pub async fn publish_raw(&self, topic: &str, key: &str, payload: Vec<u8>) {
        kafka::produce_raw(&self.producer, topic, key, payload, Vec::new()).await;
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    /// Poll `GET path` until `done` holds for the JSON body (or fail after [`WAIT`]).
    pub async fn wait_json(
        &self,
        path: &str,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let resp = self.get(path).await;
            if resp.status() == 200 {
                let v: serde_json::Value = resp.json().await.unwrap();
                if done(&v) {
                    return v;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}: {v}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every record on `topic`, polling until `enough` holds (or fail after [`WAIT`]).
    pub async fn read_until(
        &self,
        topic: &str,
        enough: impl Fn(&[InboundMessage]) -> bool,
    ) -> Vec<InboundMessage> {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = read_all(&self.bootstrap, topic).await;
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
}

/// Every record currently on `topic` (all partitions), from the beginning.
pub async fn read_all(bootstrap: &str, topic: &str) -> Vec<InboundMessage> {
    kafka::read_all(bootstrap, topic, Duration::from_secs(30)).await
}

/// Decode every record (all must be `E`).
pub async fn decode_all<E: Event>(msgs: &[InboundMessage]) -> Vec<E> {
    kafka::decode_all(&AvroCodec::single_object(), msgs).await
}

/// A purchase of `units` at `nav` on `on` for `gross` (stamp duty included), creating lot `id`.
pub fn purchase(
    investor: &str,
    id: &str,
    scheme: &str,
    on: &str,
    nav: &str,
    units: &str,
    gross: &str,
) -> TransactionCompleted {
    TransactionCompleted {
        meta: EventMeta::new::<TransactionCompleted>("allotment", None),
        transaction_id: id.into(),
        order_id: format!("ord-{id}"),
        investor_id: investor.into(),
        folio: "FOLIO1".into(),
        leg: "PURCHASE".into(),
        order_kind: "PURCHASE".into(),
        scheme_code: scheme.into(),
        nav: d(nav),
        nav_date: date(on),
        gross_amount: d(gross),
        stamp_duty: d("0.00"),
        exit_load: d("0.00"),
        net_amount: d(gross),
        units: d(units),
        balance_units: d(units),
        lots: vec![LotMovement {
            lot_id: id.into(),
            units: d(units),
            lot_nav_date: date(on),
            lot_nav: d(nav),
            cost: d(gross),
            exit_load: d("0.00"),
            days_held: 0,
        }],
        allotted_at: Utc::now(),
        sip_id: None,
        instalment_no: None,
        linked_order_leg: None,
    }
}

/// A redemption taking `lots` (lot id, units) at `nav` on `on`, paying out `net`.
pub fn redemption(
    investor: &str,
    id: &str,
    scheme: &str,
    on: &str,
    nav: &str,
    net: &str,
    lots: &[(&str, &str)],
) -> TransactionCompleted {
    let units: Decimal = lots.iter().map(|(_, u)| d(u)).sum();
    let mut e = purchase(investor, id, scheme, on, nav, "1", net);
    e.leg = "REDEMPTION".into();
    e.order_kind = "REDEMPTION".into();
    e.units = units;
    e.balance_units = d("0");
    e.lots = lots
        .iter()
        .map(|(l, u)| LotMovement {
            lot_id: (*l).into(),
            units: d(u),
            lot_nav_date: date(on),
            lot_nav: d(nav),
            cost: d("0.00"),
            exit_load: d("0.00"),
            days_held: 1,
        })
        .collect();
    e
}

/// A published NAV.
pub fn nav_published(scheme: &str, nav: &str, on: &str, kind: &str) -> NavPublished {
    NavPublished {
        meta: EventMeta::new::<NavPublished>("nav-publisher", None),
        scheme_code: scheme.into(),
        scheme_name: format!("Test Fund {scheme} - Direct - Growth"),
        amc: Some("Test Mutual Fund".into()),
        category: Some("Equity Scheme - Large Cap Fund".into()),
        scheme_type: Some("Open Ended Schemes".into()),
        nav: d(nav),
        nav_date: date(on),
        anomaly: false,
        change_kind: kind.into(),
    }
}
