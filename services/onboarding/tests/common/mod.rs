//! Shared fixtures: the onboarding service running in-process on the real runtime (dev broker,
//! embedded store in a temp dir, the real Redis under a unique key prefix), a dev identity
//! provider, the KRA simulator on 127.0.0.1:0 calling the service back, captured logs, and
//! request/event helpers.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use nivesh_bus::devbroker::DevBroker;
use nivesh_bus::{BusProducer, KafkaSettings};
use nivesh_events::{AvroCodec, Event};
use nivesh_kra_sim::{Sim, SimConfig};
use nivesh_runtime::config::{ConfigSources, load_from};
use nivesh_store::DocumentStore;
use nivesh_testkit::{DevClaims, Role, TestIdp, kafka};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "kra-callback-integration-secret";
/// Upper bound of every wait: tests finish in seconds or fail, never hang.
pub const WAIT: Duration = Duration::from_secs(60);
pub const TENANT: &str = "nivesh";

/// Everything every test's service logged (one global subscriber for the test binary).
pub fn captured_logs() -> String {
    String::from_utf8_lossy(
        &LOGS
            .get()
            .map(|l| l.lock().unwrap().clone())
            .unwrap_or_default(),
    )
    .into_owned()
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Install the capturing subscriber (debug for our crates) before the runtime installs its own.
fn capture_logs() {
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,nivesh_onboarding=trace,nivesh_runtime=debug,nivesh_bus=debug,nivesh_kra_sim=debug",
            ))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the first subscriber");
        buf
    });
}

/// How the service under test is set up.
#[derive(Default)]
pub struct Options {
    /// Extra `NIVESH__...` variables.
    pub vars: Vec<(String, String)>,
    /// Point the KRA adapter here instead of the simulator (a test-local stub).
    pub kra_url: Option<String>,
    /// Contents of a `config/onboarding.toml` for this run.
    pub service_toml: Option<String>,
}

pub struct Harness {
    /// `None` once stopped (dropped only after the service stopped).
    broker: Option<DevBroker>,
    pub bootstrap: String,
    pub producer: BusProducer,
    pub codec: AvroCodec,
    pub base: String,
    pub kra: Sim,
    pub idp: TestIdp,
    pub http: reqwest::Client,
    /// The service's own store (for assertions on what it wrote).
    pub store: Arc<dyn DocumentStore>,
    /// The Redis key prefix of this service instance.
    pub redis_prefix: String,
    pub data_dir: std::path::PathBuf,
    shutdown: CancellationToken,
    task: Option<JoinHandle<nivesh_runtime::Result<()>>>,
    _tmp: tempfile::TempDir,
}

impl Harness {
    pub async fn start(opts: Options) -> Harness {
        capture_logs();
        let broker = DevBroker::start(1).expect("dev broker");
        let bootstrap = broker.bootstrap_servers();
        let tmp = tempfile::tempdir().expect("temp dir");
        let idp = TestIdp::start().await;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");

        let kra = Sim::new(SimConfig {
            latency: Duration::from_millis(150),
            callback_url: Some(format!("{base}/v1/kyc/callback")),
            callback_secret: SECRET.into(),
            callback_attempts: 10,
        });
        let kra_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let kra_url = format!("http://{}", kra_listener.local_addr().unwrap());
        tokio::spawn(nivesh_kra_sim::serve(
            kra_listener,
            kra.clone(),
            std::future::pending(),
        ));

        let data_dir = tmp.path().to_path_buf();
        let redis_prefix = format!("{}:", nivesh_testkit::unique("onboarding-it"));
        let mut vars: Vec<(String, String)> = vec![
            ("NIVESH__KAFKA__BOOTSTRAP_SERVERS".into(), bootstrap.clone()),
            (
                "NIVESH__STORE__DATA_DIR".into(),
                data_dir.display().to_string(),
            ),
            ("NIVESH__REDIS__URL".into(), nivesh_testkit::redis_url()),
            ("NIVESH__REDIS__KEY_PREFIX".into(), redis_prefix.clone()),
            ("NIVESH__REDIS__REQUIRED".into(), "true".into()),
            ("NIVESH__TELEMETRY__LOG_FORMAT".into(), "pretty".into()),
            (
                "NIVESH__SERVICE__KRA__BASE_URL".into(),
                opts.kra_url.clone().unwrap_or(kra_url),
            ),
            ("NIVESH__SERVICE__CALLBACK_SECRET".into(), SECRET.into()),
        ];
        vars.extend(idp.env());
        vars.extend(opts.vars);
        let mut sources = ConfigSources::with_vars(vars);
        if let Some(toml) = &opts.service_toml {
            // A config directory: the repository's defaults plus this test's onboarding.toml.
            let dir = tmp.path().join("config");
            std::fs::create_dir_all(&dir).unwrap();
            let defaults =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/default.toml");
            std::fs::copy(defaults, dir.join("default.toml")).unwrap();
            std::fs::write(dir.join("onboarding.toml"), toml).unwrap();
            sources.dir = Some(dir);
        }
        let settings =
            load_from::<nivesh_onboarding::Config>("onboarding", &sources).expect("settings");
        let ctx = nivesh_runtime::service::connect(&settings)
            .await
            .expect("connect");
        let store = ctx.store.clone();
        let app = nivesh_onboarding::build(&ctx, &settings.service, settings.clock.clock())
            .await
            .expect("build");
        let shutdown = ctx.shutdown.clone();
        let task = tokio::spawn(nivesh_runtime::service::run_on(ctx, app, listener));

        let producer =
            BusProducer::new(&KafkaSettings::new(&bootstrap, "onboarding-test-producer")).unwrap();
        Harness {
            broker: Some(broker),
            bootstrap,
            producer,
            codec: AvroCodec::single_object(),
            base,
            kra,
            idp,
            http: reqwest::Client::new(),
            store,
            redis_prefix,
            data_dir,
            shutdown,
            task: Some(task),
            _tmp: tmp,
        }
    }

    pub fn distributor(&self, id: &str) -> String {
        self.idp.distributor(id)
    }

    pub fn admin(&self) -> String {
        self.idp.admin()
    }

    pub fn compliance(&self) -> String {
        self.idp.role(Role::Compliance)
    }

    pub fn investor(&self, id: &str) -> String {
        self.idp.investor(id)
    }

    pub fn admin_of(&self, tenant: &str) -> String {
        self.idp
            .bearer(&DevClaims::with_roles(&[Role::Admin]).tenant(tenant))
    }

    /// POST JSON with a bearer (`None`: no Authorization header).
    pub async fn post(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> (u16, Value, String) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(b) = bearer {
            req = req.header("authorization", b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, r.json().await.unwrap_or(Value::Null), ct)
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(b) = bearer {
            req = req.header("authorization", b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Onboard as distributor `d`; panics unless 201. Returns the masked view.
    pub async fn onboard(&self, d: &str, body: &Value) -> Value {
        let (status, view, _) = self
            .post("/v1/investors", Some(&self.distributor(d)), body)
            .await;
        assert_eq!(status, 201, "onboarding failed: {view}");
        view
    }

    /// Poll the investor (as admin) until `done` holds (or [`WAIT`]).
    pub async fn wait_investor(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (status, v) = self
                .get(&format!("/v1/investors/{id}"), Some(&self.admin()))
                .await;
            if status == 200 && done(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "investor {id} never reached the expected state: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Publish an event as its producer would (keyed by `key`).
    pub async fn publish<E: Event>(&self, topic: &str, key: &str, event: &E) {
        kafka::produce(&self.producer, &self.codec, topic, key, event, true).await;
    }

    /// Read `topic` from the beginning until `done` holds for the events read (or [`WAIT`]).
    pub async fn wait_for<E, F>(&self, topic: &str, done: F) -> Vec<E>
    where
        E: Event + Clone,
        F: Fn(&[E]) -> bool + Send + 'static,
    {
        kafka::events_until(&self.bootstrap, topic, &self.codec, WAIT, done).await
    }

    /// Everything on `topic` as of now.
    pub async fn read_all<E: Event>(&self, topic: &str) -> Vec<E> {
        let msgs = kafka::read_all(&self.bootstrap, topic, WAIT).await;
        kafka::decode_all(&self.codec, &msgs).await
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
    /// risk blocking in its destructor; the process ends right after.
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
            std::mem::forget(self.broker.take());
        }
    }
}

/// The Verhoeff check digit of `first11`, appended: a checksum-valid Aadhaar-shaped number.
pub fn aadhaar_like(first11: &str) -> String {
    let digits: Vec<u8> = first11.bytes().map(|b| b - b'0').collect();
    format!(
        "{first11}{}",
        nivesh_onboarding::aadhaar::verhoeff_check_digit(&digits)
    )
}

/// A complete, valid onboarding body.
pub fn investor_body(pan: &str, aadhaar: Option<&str>) -> Value {
    let mut v = json!({
        "pan": pan,
        "name": "Asha Verma",
        "dateOfBirth": "1990-04-12",
        "contact": {"email": "asha.verma@example.com", "mobile": "+91 98765 43210"},
        "bankAccount": {"accountNumber": "001234567890", "ifsc": "HDFC0001234", "accountType": "SAVINGS"},
        "nominees": [{"name": "Ravi Verma", "relationship": "SPOUSE", "sharePercent": "100"}]
    });
    if let Some(a) = aadhaar {
        v["aadhaar"] = json!(a);
    }
    v
}

/// A PAN unique to this call whose digits are `digits` (4 digits; 9999 / 8888 are the KRA
/// simulator's REJECTED / ON_HOLD triggers).
pub fn pan_with(digits: &str) -> String {
    let letters: Vec<char> = uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| (b'A' + b % 26) as char)
        .collect();
    // 4th letter P: an individual.
    format!(
        "{}{}{}P{}{digits}{}",
        letters[0], letters[1], letters[2], letters[3], letters[4]
    )
}
