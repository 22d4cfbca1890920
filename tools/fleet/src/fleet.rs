//! The local fleet: one dev-broker process, one process per service, the ingress, supervision.
//! `nivesh up` uses it with fixed ports and prefixed logs; end-to-end tests use it with free ports,
//! log files and a fresh data directory per test, and SIGKILL/restart single services.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use nivesh_auth::TokenRequest;
use tokio::sync::oneshot;

use crate::process::{Launch, LogMode, Managed, bin_dir, wait_http_ok};
use crate::services::{SERVICES, ServiceSpec, service};

/// How to run the fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub bin_dir: PathBuf,
    /// Each service keeps its own store under here (`<data_dir>/<service>.sqlite`).
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
    pub log_mode: LogMode,
    /// Config files for the services (`config/` of the repository).
    pub config_dir: Option<PathBuf>,
    /// Redis for caches; `None` makes every service use its in-process cache.
    pub redis_url: Option<String>,
    /// `true`: each service on its fixed port from [`SERVICES`]; `false`: free ports (tests).
    pub fixed_ports: bool,
    /// Extra environment for every service (e.g. `NIVESH__TELEMETRY__LOG_FORMAT`).
    pub env: Vec<(String, String)>,
    /// Extra environment per service name.
    pub service_env: HashMap<String, Vec<(String, String)>>,
    pub brokers: u32,
    /// The business clock: "now" for every service is this instant at fleet start and moves in
    /// real time from there (`[clock] offset_seconds`), so a past NAV day can be replayed.
    /// `None`: the wall clock.
    pub business_start: Option<DateTime<Utc>>,
}

impl FleetOptions {
    /// Defaults for a test: fresh temp-style dirs under `root`, free ports, logs to files.
    pub fn for_test(root: &Path) -> Self {
        FleetOptions {
            bin_dir: bin_dir(),
            data_dir: root.join("data"),
            log_dir: root.join("logs"),
            log_mode: LogMode::File,
            config_dir: find_repo_root().map(|r| r.join("config")),
            redis_url: None,
            fixed_ports: false,
            env: Vec::new(),
            service_env: HashMap::new(),
            brokers: 1,
            business_start: None,
        }
    }
}

/// The repository root (the directory holding `config/` and the workspace `Cargo.toml`), found
/// from the current directory or the crate's manifest dir at build time.
pub fn find_repo_root() -> Option<PathBuf> {
    let starts = [
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    starts.into_iter().flatten().find_map(|start| {
        start
            .ancestors()
            .find(|d| d.join("config").is_dir() && d.join("Cargo.toml").is_file())
            .map(Path::to_path_buf)
    })
}

/// Is a Redis server answering at `url` (redis://host:port[/db])?
pub fn redis_reachable(url: &str) -> bool {
    let rest = url
        .trim_start_matches("redis://")
        .trim_start_matches("rediss://");
    let host_port = rest
        .rsplit('@')
        .next()
        .unwrap_or(rest)
        .split('/')
        .next()
        .unwrap_or("");
    let Ok(addr) = host_port.parse::<SocketAddr>().or_else(|_| {
        use std::net::ToSocketAddrs;
        host_port
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or(())
    }) else {
        return false;
    };
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// A free local TCP port (bound, read, released; the small race is acceptable for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Running {
    launch: Launch,
    process: Managed,
    port: u16,
}

/// A running fleet (or part of one).
pub struct Fleet {
    opts: FleetOptions,
    bootstrap: String,
    broker: Managed,
    services: BTreeMap<String, Running>,
    /// Ports handed out before a service started (another process needed its address first).
    reserved: BTreeMap<String, u16>,
    /// Auxiliary processes that stand in for external systems (the payment gateway simulator).
    aux: BTreeMap<String, Aux>,
    /// The business clock's offset from the wall clock, when one is set.
    clock_offset_secs: Option<i64>,
}

/// A process standing in for an external system.
struct Aux {
    process: Managed,
    launch: Launch,
    url: String,
}

const CLOCK_ENV: &str = "NIVESH__CLOCK__OFFSET_SECONDS";
/// The KRA simulator (tools/kra-sim) that onboarding registers KYC with.
const KRA_SIM: &str = "kra-sim";
const AUTH_ISSUER_ENV: &str = "NIVESH__AUTH__ISSUER";
const AUTH_JWKS_ENV: &str = "NIVESH__AUTH__JWKS_URL";
/// The dev identity provider's name (log prefix, data subdirectory) and fixed local port.
const DEV_IDP: &str = "dev-idp";
pub const DEV_IDP_PORT: u16 = 8112;

/// An HTTP client that sends `Authorization: Bearer <token>` on every request.
pub fn bearer_client(token: &str, timeout: Duration) -> Result<reqwest::Client> {
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .context("bearer token is not a valid header value")?;
    value.set_sensitive(true);
    let headers = [(reqwest::header::AUTHORIZATION, value)]
        .into_iter()
        .collect();
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .default_headers(headers)
        .build()?)
}

/// Asks a dev identity provider (`base`, e.g. http://127.0.0.1:8112) for a token: what
/// `nivesh token` and the fleet's tests use.
pub async fn request_token(base: &str, request: &TokenRequest) -> Result<String> {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/dev/tokens", base.trim_end_matches('/')))
        .json(request)
        .send()
        .await
        .with_context(|| format!("calling the dev identity provider at {base}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.context("token response body")?;
    if !status.is_success() {
        return Err(anyhow!(
            "the dev identity provider answered {status}: {body}"
        ));
    }
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no access_token in {body}"))
}

/// The payment gateway simulator's knobs (`nivesh-pg-sim`, tools/pg-sim).
#[derive(Debug, Clone)]
pub struct GatewaySim {
    /// Time from creating a payment to its webhook.
    pub latency_ms: u64,
    /// Probability that an ordinary payment fails (VPA `failure@sim` always fails).
    pub failure_rate: f64,
    pub seed: u64,
}

impl Default for GatewaySim {
    fn default() -> Self {
        GatewaySim {
            latency_ms: 300,
            failure_rate: 0.0,
            seed: 7,
        }
    }
}

impl Fleet {
    /// Start the dev broker (topics created from the catalog) and nothing else yet.
    pub async fn start_broker(mut opts: FleetOptions) -> Result<Fleet> {
        std::fs::create_dir_all(&opts.data_dir)?;
        let clock_offset_secs = opts.business_start.map(|start| {
            // Fixed once for the fleet's life, so restarted services keep the same business time.
            let offset = (start - Utc::now()).num_seconds();
            opts.env.push((CLOCK_ENV.into(), offset.to_string()));
            offset
        });
        // The seeded investor registry (KYC status, contacts) until onboarding owns investors.
        if let Some(registry) = opts
            .config_dir
            .as_ref()
            .map(|d| d.join("investors.json"))
            .filter(|p| p.is_file())
        {
            for svc in ["order", "notification", "portfolio"] {
                opts.service_env.entry(svc.into()).or_default().push((
                    "NIVESH__SERVICE__INVESTOR_REGISTRY".into(),
                    registry.display().to_string(),
                ));
            }
        }
        let mut launch = Launch::new("dev-broker", opts.bin_dir.join("dev-broker"), &opts.log_dir);
        launch.log_mode = opts.log_mode;
        launch.args = vec!["--brokers".into(), opts.brokers.to_string()];
        let (tx, rx) = oneshot::channel();
        let broker = launch.spawn(Some(("NIVESH_BOOTSTRAP=", tx))).await?;
        let bootstrap = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .context("dev broker did not publish its bootstrap address within 30s")?
            .context("dev broker exited before publishing its bootstrap address")?;
        let mut fleet = Fleet {
            opts,
            bootstrap,
            broker,
            services: BTreeMap::new(),
            reserved: BTreeMap::new(),
            aux: BTreeMap::new(),
            clock_offset_secs,
        };
        // Every API needs a bearer token: the identity provider comes with the broker, before
        // any service, and every service's `[auth]` points at it.
        fleet.start_identity_provider().await?;
        Ok(fleet)
    }

    /// Start the dev identity provider (tools/dev-idp: port 8112 under `nivesh up`, a free port
    /// in tests; its key under `<data_dir>/dev-idp`, kept across restarts) and point every
    /// service's `[auth]` at it (`NIVESH__AUTH__ISSUER` / `NIVESH__AUTH__JWKS_URL`). Returns its
    /// base URL, which is also the `iss` of its tokens.
    pub async fn start_identity_provider(&mut self) -> Result<String> {
        if let Some(aux) = self.aux.get(DEV_IDP) {
            return Ok(aux.url.clone());
        }
        let listen = if self.opts.fixed_ports {
            format!("127.0.0.1:{DEV_IDP_PORT}")
        } else {
            "127.0.0.1:0".to_string()
        };
        let mut launch = Launch::new(
            DEV_IDP,
            self.opts.bin_dir.join("nivesh-dev-idp"),
            &self.opts.log_dir,
        );
        launch.log_mode = self.opts.log_mode;
        launch.args = vec![
            "--listen".into(),
            listen,
            "--data-dir".into(),
            self.opts.data_dir.join(DEV_IDP).display().to_string(),
        ];
        let (tx, rx) = oneshot::channel();
        let process = launch.spawn(Some(("DEVIDP_ADDR=", tx))).await?;
        let addr = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .context("the dev identity provider did not publish its address within 30s")?
            .context("the dev identity provider exited before publishing its address")?;
        if let Some(i) = launch.args.iter().position(|a| a == "--listen") {
            launch.args[i + 1] = addr.clone();
        }
        let url = format!("http://{addr}");
        self.opts
            .env
            .retain(|(k, _)| k != AUTH_ISSUER_ENV && k != AUTH_JWKS_ENV);
        self.opts.env.push((AUTH_ISSUER_ENV.into(), url.clone()));
        self.opts
            .env
            .push((AUTH_JWKS_ENV.into(), format!("{url}/.well-known/jwks.json")));
        self.aux.insert(
            DEV_IDP.into(),
            Aux {
                process,
                launch,
                url: url.clone(),
            },
        );
        Ok(url)
    }

    /// The dev identity provider's base URL.
    pub fn identity_url(&self) -> Option<&str> {
        self.aux.get(DEV_IDP).map(|a| a.url.as_str())
    }

    /// A bearer token from the dev identity provider (`POST /v1/dev/tokens`).
    pub async fn token(&self, request: &TokenRequest) -> Result<String> {
        let url = self
            .identity_url()
            .ok_or_else(|| anyhow!("the dev identity provider is not running"))?;
        request_token(url, request).await
    }

    /// A token for an investor acting on their own account.
    pub async fn investor_token(&self, investor_id: &str) -> Result<String> {
        self.token(&TokenRequest {
            roles: vec!["investor".into()],
            investor_id: Some(investor_id.into()),
            ..TokenRequest::default()
        })
        .await
    }

    /// An HTTP client sending a bearer token of staff with `roles` on every request (tests and
    /// tools that act for the platform: NAV uploads, reconciliation, order lookups).
    pub async fn staff_client(&self, roles: &[&str]) -> Result<reqwest::Client> {
        bearer_client(&self.staff_token(roles).await?, Duration::from_secs(30))
    }

    /// A token for staff with the given roles (`ops`, `compliance`, `admin`).
    pub async fn staff_token(&self, roles: &[&str]) -> Result<String> {
        self.token(&TokenRequest {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..TokenRequest::default()
        })
        .await
    }

    /// The broker's bootstrap address (random port), handed to every service.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub fn options(&self) -> &FleetOptions {
        &self.opts
    }

    fn launch_for(&self, spec: &ServiceSpec, port: u16) -> Launch {
        let mut l = Launch::new(
            spec.name,
            self.opts.bin_dir.join(spec.binary),
            &self.opts.log_dir,
        );
        l.log_mode = self.opts.log_mode;
        l = l
            .env("NIVESH__HTTP__ADDR", format!("127.0.0.1:{port}"))
            .env("NIVESH__KAFKA__BOOTSTRAP_SERVERS", &self.bootstrap)
            .env(
                "NIVESH__STORE__DATA_DIR",
                self.opts.data_dir.display().to_string(),
            );
        if let Some(dir) = &self.opts.config_dir {
            l = l.env("NIVESH_CONFIG_DIR", dir.display().to_string());
        }
        l = match &self.opts.redis_url {
            Some(url) => l.env("NIVESH__REDIS__URL", url),
            None => l.env("NIVESH__REDIS__URL", ""),
        };
        for (k, v) in self
            .opts
            .env
            .iter()
            .chain(self.opts.service_env.get(spec.name).into_iter().flatten())
        {
            l = l.env(k, v);
        }
        l
    }

    /// Start one service and wait until its `/healthz` answers.
    pub async fn start(&mut self, name: &str) -> Result<String> {
        let spec = service(name).ok_or_else(|| anyhow!("unknown service {name}"))?;
        // Onboarding needs its KRA (and the KRA's callback secret) before it can start.
        if name == "onboarding" && !self.aux.contains_key(KRA_SIM) {
            self.start_kra_sim().await?;
        }
        let port = self.port_for(name)?;
        let launch = self.launch_for(spec, port);
        let process = launch.spawn(None).await?;
        self.services.insert(
            name.to_string(),
            Running {
                launch,
                process,
                port,
            },
        );
        let url = self.url(name)?;
        wait_http_ok(&format!("{url}/healthz"), Duration::from_secs(60))
            .await
            .with_context(|| self.did_not_come_up(name))?;
        Ok(url)
    }

    /// The error context of a service that never answered `/healthz`: where its log is and its
    /// last lines (a test's log directory is deleted with its temporary directory).
    fn did_not_come_up(&self, name: &str) -> String {
        let path = self.opts.log_dir.join(format!("{name}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        format!(
            "{name} did not come up; see {} (last lines:\n{tail})",
            path.display()
        )
    }

    /// The port `name` has or will get: lets another process (a webhook sender) learn a
    /// service's address before the service starts.
    pub fn port_for(&mut self, name: &str) -> Result<u16> {
        let spec = service(name).ok_or_else(|| anyhow!("unknown service {name}"))?;
        if let Some(r) = self.services.get(name) {
            return Ok(r.port);
        }
        let fresh = if self.opts.fixed_ports {
            spec.port
        } else {
            free_port()
        };
        Ok(*self.reserved.entry(name.to_string()).or_insert(fresh))
    }

    /// Start the payment gateway simulator with its webhooks aimed at the payment service (whose
    /// port is reserved now) and configure payment to call it with the same HMAC secret. Call
    /// before starting payment. Returns the simulator's base URL.
    pub async fn start_gateway_sim(&mut self, sim: &GatewaySim) -> Result<String> {
        let payment_port = self.port_for("payment")?;
        let secret = format!("whsec_{}", uuid::Uuid::new_v4().simple());
        let listen = if self.opts.fixed_ports {
            "127.0.0.1:8190".to_string()
        } else {
            "127.0.0.1:0".to_string()
        };
        let mut launch = Launch::new(
            "pg-sim",
            self.opts.bin_dir.join("nivesh-pg-sim"),
            &self.opts.log_dir,
        );
        launch.log_mode = self.opts.log_mode;
        launch.args = vec![
            "--listen".into(),
            listen,
            "--latency-ms".into(),
            sim.latency_ms.to_string(),
            "--failure-rate".into(),
            sim.failure_rate.to_string(),
            "--seed".into(),
            sim.seed.to_string(),
            "--webhook-url".into(),
            format!("http://127.0.0.1:{payment_port}/v1/payments/webhook"),
            "--clock-offset-secs".into(),
            self.clock_offset_secs.unwrap_or(0).to_string(),
        ];
        launch = launch.env("PGSIM_WEBHOOK_SECRET", &secret);
        let (tx, rx) = oneshot::channel();
        let process = launch.spawn(Some(("PGSIM_ADDR=", tx))).await?;
        let addr = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .context("the gateway simulator did not publish its address within 30s")?
            .context("the gateway simulator exited before publishing its address")?;
        // A restart (business-clock change) must come back on the same address.
        if let Some(i) = launch.args.iter().position(|a| a == "--listen") {
            launch.args[i + 1] = addr.clone();
        }
        let url = format!("http://{addr}");
        self.add_service_env("payment", "NIVESH__SERVICE__GATEWAY__BASE_URL", &url);
        self.add_service_env("payment", "NIVESH__SERVICE__WEBHOOK_SECRET", &secret);
        self.aux.insert(
            "pg-sim".into(),
            Aux {
                process,
                launch,
                url: url.clone(),
            },
        );
        Ok(url)
    }

    /// The gateway simulator's base URL, when started.
    pub fn gateway_url(&self) -> Option<&str> {
        self.aux.get("pg-sim").map(|a| a.url.as_str())
    }

    /// Start the KRA simulator (tools/kra-sim: port 8191 under `nivesh up`, a free port in
    /// tests) with its callbacks aimed at the onboarding service (whose port is reserved now),
    /// and configure onboarding to call it with the same HMAC secret. [`Fleet::start`] calls it
    /// before onboarding when needed. Returns the simulator's base URL.
    pub async fn start_kra_sim(&mut self) -> Result<String> {
        if let Some(aux) = self.aux.get(KRA_SIM) {
            return Ok(aux.url.clone());
        }
        let onboarding_port = self.port_for("onboarding")?;
        let secret = format!("kra_{}", uuid::Uuid::new_v4().simple());
        let listen = if self.opts.fixed_ports {
            "127.0.0.1:8191".to_string()
        } else {
            "127.0.0.1:0".to_string()
        };
        let mut launch = Launch::new(
            KRA_SIM,
            self.opts.bin_dir.join("nivesh-kra-sim"),
            &self.opts.log_dir,
        );
        launch.log_mode = self.opts.log_mode;
        launch.args = vec![
            "--listen".into(),
            listen,
            "--callback-url".into(),
            format!("http://127.0.0.1:{onboarding_port}/v1/kyc/callback"),
        ];
        launch = launch.env("KRASIM_CALLBACK_SECRET", &secret);
        let (tx, rx) = oneshot::channel();
        let process = launch.spawn(Some(("KRASIM_ADDR=", tx))).await?;
        let addr = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .context("the KRA simulator did not publish its address within 30s")?
            .context("the KRA simulator exited before publishing its address")?;
        if let Some(i) = launch.args.iter().position(|a| a == "--listen") {
            launch.args[i + 1] = addr.clone();
        }
        let url = format!("http://{addr}");
        self.add_service_env("onboarding", "NIVESH__SERVICE__KRA__BASE_URL", &url);
        self.add_service_env("onboarding", "NIVESH__SERVICE__CALLBACK_SECRET", &secret);
        self.aux.insert(
            KRA_SIM.into(),
            Aux {
                process,
                launch,
                url: url.clone(),
            },
        );
        Ok(url)
    }

    /// The KRA simulator's base URL, when started.
    pub fn kra_url(&self) -> Option<&str> {
        self.aux.get(KRA_SIM).map(|a| a.url.as_str())
    }

    /// Move the business clock to `at` (it runs on from there): every service and the gateway
    /// simulator are stopped gracefully and started again with the new offset, on the same ports
    /// and data. End-to-end tests use it to reach the next SIP date; nothing else changes.
    pub async fn set_business_time(&mut self, at: DateTime<Utc>) -> Result<()> {
        let offset = (at - Utc::now()).num_seconds();
        self.clock_offset_secs = Some(offset);
        self.opts.env.retain(|(k, _)| k != CLOCK_ENV);
        self.opts.env.push((CLOCK_ENV.into(), offset.to_string()));
        for r in self.services.values_mut() {
            r.process.send_term();
        }
        for r in self.services.values_mut() {
            r.process.wait_or_kill(Duration::from_secs(15)).await?;
        }
        if let Some(aux) = self.aux.get_mut("pg-sim") {
            aux.process.terminate(Duration::from_secs(5)).await?;
            if let Some(i) = aux
                .launch
                .args
                .iter()
                .position(|a| a == "--clock-offset-secs")
            {
                aux.launch.args[i + 1] = offset.to_string();
            }
            let (tx, rx) = oneshot::channel();
            aux.process = aux.launch.spawn(Some(("PGSIM_ADDR=", tx))).await?;
            tokio::time::timeout(Duration::from_secs(30), rx)
                .await
                .context("the gateway simulator did not come back within 30s")?
                .context("the gateway simulator exited on restart")?;
        }
        let names: Vec<String> = self.services.keys().cloned().collect();
        for name in names {
            let spec = service(&name).ok_or_else(|| anyhow!("unknown service {name}"))?;
            let port = self.services[&name].port;
            let launch = self.launch_for(spec, port);
            let r = self
                .services
                .get_mut(&name)
                .ok_or_else(|| anyhow!("{name} vanished"))?;
            r.launch = launch;
            r.process = r.launch.spawn(None).await?;
            wait_http_ok(
                &format!("http://127.0.0.1:{port}/healthz"),
                Duration::from_secs(60),
            )
            .await
            .with_context(|| self.did_not_come_up(&name))?;
        }
        Ok(())
    }

    /// Everything: the gateway simulator, then every service.
    pub async fn start_everything(&mut self, sim: &GatewaySim) -> Result<()> {
        self.start_gateway_sim(sim).await?;
        self.start_everything_but_gateway().await
    }

    /// Every service (the gateway simulator already started).
    pub async fn start_everything_but_gateway(&mut self) -> Result<()> {
        for name in Fleet::all_service_names() {
            self.start(name).await?;
        }
        Ok(())
    }

    /// Add environment for one service (takes effect at its next start).
    pub fn add_service_env(&mut self, name: &str, key: &str, value: impl Into<String>) {
        self.opts
            .service_env
            .entry(name.to_string())
            .or_default()
            .push((key.to_string(), value.into()));
    }

    /// Start several services concurrently-ish (spawn all, then wait for each).
    pub async fn start_all(&mut self, names: &[&str]) -> Result<()> {
        for name in names {
            self.start(name).await?;
        }
        Ok(())
    }

    /// Base URL of a running service.
    pub fn url(&self, name: &str) -> Result<String> {
        let r = self
            .services
            .get(name)
            .ok_or_else(|| anyhow!("{name} not started"))?;
        Ok(format!("http://127.0.0.1:{}", r.port))
    }

    /// SIGKILL one service (no graceful shutdown: the crash we must survive).
    pub async fn kill9(&mut self, name: &str) -> Result<()> {
        let r = self
            .services
            .get_mut(name)
            .ok_or_else(|| anyhow!("{name} not started"))?;
        r.process.kill9().await
    }

    /// Take every dev broker down (connections closed and refused; records kept): SIGUSR1 to the
    /// dev-broker process. The chaos suite's broker outage.
    pub fn broker_down(&self) -> Result<()> {
        self.broker.signal(nix::sys::signal::Signal::SIGUSR1)
    }

    /// Bring every dev broker back up (SIGUSR2 to the dev-broker process).
    pub fn broker_up(&self) -> Result<()> {
        self.broker.signal(nix::sys::signal::Signal::SIGUSR2)
    }

    /// OS process id of a running service.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.services.get(name).and_then(|r| r.process.pid())
    }

    /// Start a previously started service again on the same port and data.
    pub async fn restart(&mut self, name: &str) -> Result<()> {
        let r = self
            .services
            .get_mut(name)
            .ok_or_else(|| anyhow!("{name} not started"))?;
        r.process = r.launch.spawn(None).await?;
        let url = format!("http://127.0.0.1:{}/healthz", r.port);
        wait_http_ok(&url, Duration::from_secs(60)).await
    }

    /// Restart any service that exited on its own (crash-only design: the supervisor's one job).
    pub async fn restart_crashed(&mut self) -> Result<Vec<String>> {
        let mut restarted = Vec::new();
        for (name, r) in self.services.iter_mut() {
            if let Some(status) = r.process.try_exited() {
                tracing::warn!(service = %name, %status, "exited; restarting");
                r.process = r.launch.spawn(None).await?;
                restarted.push(name.clone());
            }
        }
        Ok(restarted)
    }

    /// Running services and their base URLs.
    pub fn upstreams(&self) -> HashMap<String, String> {
        self.services
            .iter()
            .map(|(n, r)| (n.clone(), format!("http://127.0.0.1:{}", r.port)))
            .collect()
    }

    /// Graceful stop: SIGTERM every service at once (they finish in-flight work, commit, flush),
    /// wait for each (SIGKILL after a grace period), then stop the broker.
    pub async fn stop(mut self) -> Result<()> {
        for r in self.services.values_mut() {
            r.process.send_term();
        }
        for r in self.services.values_mut() {
            r.process.wait_or_kill(Duration::from_secs(15)).await?;
        }
        for a in self.aux.values_mut() {
            a.process.terminate(Duration::from_secs(5)).await?;
        }
        self.broker.terminate(Duration::from_secs(5)).await
    }

    /// All service names, in start order (producers of a flow before its consumers is not needed:
    /// topics exist before any service starts).
    pub fn all_service_names() -> Vec<&'static str> {
        SERVICES.iter().map(|s| s.name).collect()
    }
}
