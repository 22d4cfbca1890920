//! `nivesh`: the developer's entry point. `nivesh up` runs the whole fleet locally on embedded
//! defaults and shows it working; `nivesh topics` prints the topic catalog.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use nivesh_fleet::fleet::{
    Fleet, FleetOptions, GatewaySim, find_repo_root, redis_reachable, request_token,
};
use nivesh_fleet::ingress;
use nivesh_fleet::process::{LogMode, bin_dir};

#[derive(Parser)]
#[command(name = "nivesh", about = "Run and inspect the Nivesh fleet locally")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build (when run through cargo) and start the dev broker, every service and the :8080 ingress.
    Up {
        /// Where services keep their embedded stores.
        #[arg(long, default_value = ".nivesh/data")]
        data_dir: PathBuf,
        /// Wipe the data directory first.
        #[arg(long)]
        fresh: bool,
        /// Redis for caches; falls back to in-process caches when it does not answer.
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        /// Address of the single public entry point.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Skip the demo (uploading the AMFI NAV file and reading a NAV back).
        #[arg(long)]
        no_demo: bool,
        /// The AMFI NAV file the demo uploads.
        #[arg(long)]
        nav_file: Option<PathBuf>,
        /// The business day the fleet runs on (YYYY-MM-DD, starting at 10:00 IST and moving in
        /// real time), so orders allot against that day's NAVs; `today` for the wall clock. The
        /// default matches the bundled AMFI file.
        #[arg(long, default_value = "2025-02-25")]
        business_date: String,
        /// Payment gateway simulator: milliseconds from payment to webhook.
        #[arg(long, default_value_t = 300)]
        gateway_latency_ms: u64,
        /// Payment gateway simulator: share of ordinary payments that fail (0..1).
        #[arg(long, default_value_t = 0.0)]
        gateway_failure_rate: f64,
    },
    /// Check a running fleet: every placed order terminal, no duplicate transaction, every
    /// holding equal to the sum of its completed transactions. Exit code 1 on any finding.
    Reconcile {
        /// The dev broker's bootstrap address (printed by `nivesh up`).
        #[arg(long, env = "NIVESH_BOOTSTRAP")]
        bootstrap: String,
        /// The public entry point.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        base: String,
        /// The dev identity provider (an admin token is minted there to read every investor).
        #[arg(long, env = "NIVESH_IDP_URL", default_value = "http://127.0.0.1:8112")]
        idp: String,
        /// Also check that every numeric NAV row of this AMFI file (uploaded earlier) is
        /// readable exactly, latest and history (no lost NAVs).
        #[arg(long)]
        nav_file: Option<PathBuf>,
        /// The business date the file was validated on (rows dated after it are rejected as
        /// future-dated and must not be published); `nivesh up`'s default is 2025-02-25.
        #[arg(long, default_value = "2025-02-25")]
        nav_business_date: chrono::NaiveDate,
    },
    /// Print a bearer token from the local dev identity provider (started by `nivesh up`), e.g.
    /// `nivesh token --role investor --investor INV0001`, `nivesh token --role ops`. Use it as
    /// `curl -H "Authorization: Bearer $(nivesh token --role admin)" ...`.
    Token {
        /// Role(s): investor, distributor, ops, compliance, admin (repeat or comma-separate).
        #[arg(long = "role", required = true, value_delimiter = ',')]
        roles: Vec<String>,
        /// The investor id (`extension_InvestorId`); needed with `--role investor`.
        #[arg(long)]
        investor: Option<String>,
        /// The distributor id (`extension_DistributorId`); needed with `--role distributor`.
        #[arg(long)]
        distributor: Option<String>,
        /// The tenant (`tid`).
        #[arg(long, default_value = "nivesh")]
        tenant: String,
        /// Subject (`sub`); default derived from the ids or roles.
        #[arg(long)]
        sub: Option<String>,
        /// Scopes (`scp`), repeat or comma-separate.
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Vec<String>,
        /// Lifetime in seconds (at most a day).
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// The dev identity provider.
        #[arg(long, env = "NIVESH_IDP_URL", default_value = "http://127.0.0.1:8112")]
        idp: String,
    },
    /// Print the topic catalog (name, key, partitions, retention) as JSON.
    Topics,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_target(false)
        .init();
    match Cli::parse().cmd {
        Cmd::Topics => {
            let topics: Vec<_> = nivesh_bus::catalog::all_topics()
                .into_iter()
                .map(|t| serde_json::json!({"name": t.name, "partitions": t.partitions, "retention_ms": t.retention_ms}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&topics)?);
            Ok(())
        }
        Cmd::Up {
            data_dir,
            fresh,
            redis_url,
            listen,
            no_demo,
            nav_file,
            business_date,
            gateway_latency_ms,
            gateway_failure_rate,
        } => {
            let business_start = business_start(&business_date)?;
            let sim = GatewaySim {
                latency_ms: gateway_latency_ms,
                failure_rate: gateway_failure_rate,
                ..GatewaySim::default()
            };
            up(
                data_dir,
                fresh,
                redis_url,
                listen,
                no_demo,
                nav_file,
                business_start,
                sim,
            )
            .await
        }
        Cmd::Token {
            roles,
            investor,
            distributor,
            tenant,
            sub,
            scopes,
            ttl,
            idp,
        } => {
            let request = nivesh_auth::TokenRequest {
                sub,
                tenant: Some(tenant),
                roles,
                scopes,
                investor_id: investor,
                distributor_id: distributor,
                audience: None,
                ttl_seconds: Some(ttl),
            };
            println!("{}", request_token(&idp, &request).await?);
            Ok(())
        }
        Cmd::Reconcile {
            bootstrap,
            base,
            idp,
            nav_file,
            nav_business_date,
        } => {
            let admin = nivesh_auth::TokenRequest {
                roles: vec!["admin".into()],
                sub: Some("nivesh-reconcile".into()),
                ttl_seconds: Some(900),
                ..Default::default()
            };
            let token = request_token(&idp, &admin).await?;
            let mut expect = nivesh_fleet::reconcile::Expectations::default();
            if let Some(path) = &nav_file {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                expect.navs = nivesh_fleet::reconcile::expected_navs(&text);
                expect.nav_business_date = Some(nav_business_date);
            }
            let report =
                nivesh_fleet::reconcile::reconcile_with(&bootstrap, &base, &token, &expect).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.ok() {
                println!("reconcile: OK");
                Ok(())
            } else {
                bail!("reconcile: findings above")
            }
        }
    }
}

/// 10:00 IST on `date`, or `None` for `today` (the wall clock).
fn business_start(date: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    if date.eq_ignore_ascii_case("today") {
        return Ok(None);
    }
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .with_context(|| format!("--business-date {date}: expected YYYY-MM-DD or today"))?;
    let ist = chrono::FixedOffset::east_opt(5 * 3600 + 30 * 60).context("IST offset")?;
    let at = day
        .and_hms_opt(10, 0, 0)
        .and_then(|t| t.and_local_timezone(ist).single())
        .context("10:00 IST")?;
    Ok(Some(at.with_timezone(&chrono::Utc)))
}

#[allow(clippy::too_many_arguments)]
async fn up(
    data_dir: PathBuf,
    fresh: bool,
    redis_url: String,
    listen: String,
    no_demo: bool,
    nav_file: Option<PathBuf>,
    business_start: Option<chrono::DateTime<chrono::Utc>>,
    sim: GatewaySim,
) -> Result<()> {
    build_binaries_when_run_by_cargo()?;
    if fresh && data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)
            .with_context(|| format!("wiping {}", data_dir.display()))?;
    }
    let redis = if redis_reachable(&redis_url) {
        println!("redis: {redis_url}");
        Some(redis_url)
    } else {
        println!("redis: not reachable at {redis_url}; services use in-process caches");
        None
    };
    // Files dropped under <landing>/amfi/, <landing>/cams/ or <landing>/kfintech/ are ingested.
    let landing = data_dir.join("../landing");
    std::fs::create_dir_all(landing.join("amfi"))?;
    let opts = FleetOptions {
        bin_dir: bin_dir(),
        log_dir: data_dir.join("../logs"),
        data_dir,
        log_mode: LogMode::Prefixed,
        config_dir: find_repo_root().map(|r| r.join("config")),
        redis_url: redis,
        fixed_ports: true,
        env: vec![("NIVESH__TELEMETRY__LOG_FORMAT".into(), "text".into())],
        service_env: [(
            "nav-ingestor".to_string(),
            vec![(
                "NIVESH__SERVICE__LANDING__URL".to_string(),
                landing.display().to_string(),
            )],
        )]
        .into_iter()
        .collect(),
        brokers: 1,
        business_start,
    };
    let mut fleet = Fleet::start_broker(opts).await?;
    println!(
        "kafka (dev broker, librdkafka mock cluster): {}  (NIVESH_BOOTSTRAP for `nivesh reconcile`)",
        fleet.bootstrap()
    );
    match business_start {
        Some(t) => println!(
            "business clock: starts at {} IST",
            t.with_timezone(&chrono::FixedOffset::east_opt(19800).context("IST")?)
                .format("%Y-%m-%d %H:%M")
        ),
        None => println!("business clock: the wall clock"),
    }
    let gateway = fleet.start_gateway_sim(&sim).await?;
    println!(
        "payment gateway simulator: {gateway} (latency {} ms, failure rate {}; VPA failure@sim always declines)",
        sim.latency_ms, sim.failure_rate
    );
    println!(
        "dev identity provider: {} (tokens: `nivesh token --role investor --investor INV0001`)",
        fleet.identity_url().unwrap_or("?")
    );
    fleet.start_everything_but_gateway().await?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let app = ingress::router(&fleet.upstreams());
    tokio::spawn(async move { axum::serve(listener, app).await });

    println!("\nNivesh is up. Public API: http://{listen}");
    for (name, url) in fleet.upstreams() {
        println!("  {name:<15} {url}  (/healthz /readyz /metrics /openapi.json)");
    }
    if !no_demo {
        let file = nav_file.or_else(|| {
            find_repo_root().map(|r| r.join("../shared/data/amfi/NAVAll-2025-02-25.txt"))
        });
        match file.filter(|f| f.is_file()) {
            Some(f) => {
                if let Err(e) = demo(&fleet, &listen, &f).await {
                    println!("demo failed: {e:#}");
                }
            }
            None => println!("demo skipped: no AMFI NAV file found (pass --nav-file)"),
        }
    }
    println!(
        "\nLanding zone: drop NAV files into {}/{{amfi,cams,kfintech}}/",
        landing.display()
    );
    println!("Press Ctrl-C to stop.");

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tick.tick() => { fleet.restart_crashed().await?; }
        }
    }
    println!("stopping: services first (they drain and commit), then the broker");
    fleet.stop().await
}

/// When started by `cargo run`, make sure every service binary of the same profile is built, so
/// the README's single command works on a fresh clone.
fn build_binaries_when_run_by_cargo() -> Result<()> {
    let Ok(cargo) = std::env::var("CARGO") else {
        return Ok(());
    };
    let release = bin_dir().file_name().is_some_and(|n| n == "release");
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--workspace", "--bins"]);
    if let Some(root) = find_repo_root() {
        cmd.current_dir(root);
    }
    if release {
        cmd.arg("--release");
    }
    if !cmd.status().context("running cargo build")?.success() {
        bail!("cargo build failed");
    }
    Ok(())
}

/// Upload the real AMFI file through the public entry point and read NAVs back: the NAV
/// pipeline's main job, end to end, across processes and the broker.
async fn demo(fleet: &Fleet, listen: &str, file: &std::path::Path) -> Result<()> {
    let base = format!("http://{listen}");
    let client = reqwest::Client::new();
    // Uploading NAV files is an operations task; reading NAVs is public.
    let ops = fleet.staff_token(&["ops"]).await?;
    let body = tokio::fs::read(file).await?;
    println!(
        "\ndemo: uploading {} ({} bytes) to POST /v1/nav/files",
        file.display(),
        body.len()
    );
    let started = std::time::Instant::now();
    let resp = client
        .post(format!("{base}/v1/nav/files?source=AMFI"))
        .bearer_auth(&ops)
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let report: serde_json::Value = resp.json().await?;
    if !status.is_success() {
        bail!("upload answered {status}: {report}");
    }
    let file_id = report["fileId"]
        .as_str()
        .context("fileId in upload response")?
        .to_string();
    println!(
        "demo: file {file_id} accepted in {:?}: {} rows, {} NAV events, {} rejected lines (first: {})",
        started.elapsed(),
        report["rows"],
        report["published"],
        report["rejected"],
        report["rejectedLines"][0]
    );
    let sample = "119551";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = client
            .get(format!("{base}/v1/nav/schemes/{sample}"))
            .send()
            .await?;
        if r.status().is_success() {
            let nav: serde_json::Value = r.json().await?;
            println!(
                "demo: GET /v1/nav/schemes/{sample} after {:?}:\n{}",
                started.elapsed(),
                serde_json::to_string_pretty(&nav)?
            );
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!("NAV for {sample} not readable within 60s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let search: serde_json::Value = client
        .get(format!(
            "{base}/v1/nav/schemes?category=liquid&q=direct%20growth&pageSize=3"
        ))
        .send()
        .await?
        .json()
        .await?;
    println!(
        "demo: GET /v1/nav/schemes?category=liquid&q=direct growth → {} matches, e.g.:",
        search["total"]
    );
    for item in search["items"].as_array().into_iter().flatten() {
        println!(
            "  {} {} NAV {} on {}",
            item["schemeCode"], item["schemeName"], item["nav"], item["navDate"]
        );
    }
    println!(
        "demo: full file report at {base}/v1/nav/files/{file_id} ; live NAVs: curl -N {base}/v1/nav/stream"
    );
    let investor = fleet.investor_token("INV0001").await?;
    order_demo(&client, &base, &investor).await
}

/// An investor's purchase through the whole flow: order -> payment (simulated gateway, signed
/// webhook) -> allotment at the day's NAV -> portfolio -> notification.
async fn order_demo(client: &reqwest::Client, base: &str, token: &str) -> Result<()> {
    let scheme = "118834"; // Mirae Asset Large & Midcap Fund - Direct Plan - Growth
    let body = serde_json::json!({
        "investorId": "INV0001", "kind": "PURCHASE", "schemeCode": scheme,
        "amount": "10000.00", "paymentInstrument": "aarav@okaxis",
    });
    let key = format!("demo-{}", uuid::Uuid::now_v7().simple());
    // The order service learns schemes from nav.broadcast; give it a moment after the NAV day.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let order = loop {
        let resp = client
            .post(format!("{base}/v1/orders"))
            .bearer_auth(token)
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().await?;
        if status.is_success() {
            break v;
        }
        if std::time::Instant::now() > deadline {
            bail!("POST /v1/orders answered {status}: {v}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let id = order["orderId"].as_str().context("orderId")?.to_string();
    println!("\ndemo: POST /v1/orders (PURCHASE ₹10,000.00 of {scheme} for INV0001) -> order {id}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let done = loop {
        let v: serde_json::Value = client
            .get(format!("{base}/v1/orders/{id}"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        let s = v["status"].as_str().unwrap_or_default().to_string();
        if s != last {
            println!("demo: order {id} is {s}");
            last = s.clone();
        }
        if s == "COMPLETED" || s == "FAILED" {
            break v;
        }
        if std::time::Instant::now() > deadline {
            bail!("order {id} still {s} after 60s");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    println!(
        "demo: GET /v1/orders/{id}:\n{}",
        serde_json::to_string_pretty(&done)?
    );
    let portfolio: serde_json::Value = client
        .get(format!("{base}/v1/investors/INV0001/portfolio"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    println!(
        "demo: GET /v1/investors/INV0001/portfolio:\n{}",
        serde_json::to_string_pretty(&portfolio)?
    );
    genai_demo(client, base, token).await;
    println!(
        "demo: notifications at {base}/v1/investors/INV0001/notifications ; check everything with `nivesh reconcile`"
    );
    println!(
        "demo: the calls above carry bearer tokens; mint your own with `nivesh token --role investor --investor INV0001` (or --role ops / admin)"
    );
    Ok(())
}

/// The GenAI gateway answering the investor from their own portfolio (local extractive provider:
/// offline, grounded, with sources). Informational: a failure here is printed, not fatal.
async fn genai_demo(client: &reqwest::Client, base: &str, token: &str) {
    let question = "What is my portfolio worth and which fund gained most this month?";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let resp = client
            .post(format!("{base}/v1/genai/ask"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "question": question }))
            .send()
            .await;
        let answer: Option<serde_json::Value> = match resp {
            Ok(r) if r.status().is_success() => r.json().await.ok(),
            _ => None,
        };
        // The gateway builds its read model from events: wait until it has valued the holding.
        let ready = answer.as_ref().is_some_and(|a| {
            let text = a["answer"].as_str().unwrap_or_default();
            a["outcome"] == "ANSWERED"
                && !text.contains("no holdings yet")
                && !text.contains("is not known yet")
        });
        if ready || std::time::Instant::now() > deadline {
            match answer {
                Some(a) => {
                    println!("\ndemo: POST /v1/genai/ask \"{question}\"");
                    println!("demo: answer ({}): {}", a["outcome"], a["answer"]);
                    println!("demo: grounding score {}", a["grounding"]["score"]);
                    for s in a["sources"].as_array().into_iter().flatten() {
                        println!("  source {} ({}): {}", s["id"], s["kind"], s["title"]);
                    }
                }
                None => println!("\ndemo: the GenAI gateway did not answer within 60s"),
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
