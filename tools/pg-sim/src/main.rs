//! `nivesh-pg-sim`: the payment gateway simulator as a process. Prints
//! `PGSIM_ADDR=<host:port>` on stdout once listening (so `--listen 127.0.0.1:0` works), logs
//! to stderr, runs until SIGTERM/Ctrl-C. Every flag has an environment variable.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use nivesh_pg_sim::{Sim, SimConfig};

#[derive(Parser, Debug)]
#[command(about = "A Razorpay-like payment gateway simulator with signed webhooks")]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed as PGSIM_ADDR=...).
    #[arg(long, env = "PGSIM_LISTEN", default_value = "127.0.0.1:8190")]
    listen: String,
    /// Milliseconds between creating a payment and settling it (and sending its webhook).
    #[arg(long, env = "PGSIM_LATENCY_MS", default_value_t = 500)]
    latency_ms: u64,
    /// Probability in [0, 1] that an ordinary payment fails.
    #[arg(long, env = "PGSIM_FAILURE_RATE", default_value_t = 0.0)]
    failure_rate: f64,
    /// Where webhooks are POSTed, e.g. http://127.0.0.1:8105/v1/payments/webhook. Unset: none.
    #[arg(long, env = "PGSIM_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// Shared HMAC-SHA256 secret for webhook signatures (the payment service's
    /// `service.webhook_secret`).
    #[arg(long, env = "PGSIM_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: String,
    /// RNG seed for ids and random failures.
    #[arg(long, env = "PGSIM_SEED", default_value_t = 0)]
    seed: u64,
    /// Seconds added to the wall clock for the gateway's own timestamps (captured_at): pass the
    /// fleet's business-clock offset (`clock.offset_seconds`).
    #[arg(
        long,
        env = "PGSIM_CLOCK_OFFSET_SECS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    clock_offset_secs: i64,
    /// Delivery attempts per webhook.
    #[arg(long, env = "PGSIM_WEBHOOK_ATTEMPTS", default_value_t = 5)]
    webhook_attempts: u32,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if !(0.0..=1.0).contains(&args.failure_rate) {
        bail!("--failure-rate must be between 0 and 1");
    }
    if args.webhook_secret.is_empty() {
        bail!("--webhook-secret (PGSIM_WEBHOOK_SECRET) must not be empty");
    }
    let config = SimConfig {
        latency: Duration::from_millis(args.latency_ms),
        failure_rate: args.failure_rate,
        webhook_url: args.webhook_url.filter(|u| !u.trim().is_empty()),
        webhook_secret: args.webhook_secret,
        seed: args.seed,
        clock_offset_secs: args.clock_offset_secs,
        webhook_attempts: args.webhook_attempts,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("PGSIM_ADDR={addr}");
    std::io::stdout().flush()?;
    tracing::info!(
        %addr,
        latency_ms = args.latency_ms,
        failure_rate = config.failure_rate,
        webhook_url = ?config.webhook_url,
        seed = config.seed,
        "payment gateway simulator listening"
    );
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    nivesh_pg_sim::serve(listener, Sim::new(config), shutdown).await?;
    Ok(())
}
