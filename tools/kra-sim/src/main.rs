//! `nivesh-kra-sim`: the KRA simulator as a process. Prints `KRASIM_ADDR=<host:port>` on stdout
//! once listening (so `--listen 127.0.0.1:0` works), logs to stderr, runs until SIGTERM/Ctrl-C.
//! Every flag has an environment variable.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use nivesh_kra_sim::{Sim, SimConfig};

#[derive(Parser, Debug)]
#[command(about = "A KYC Registration Agency simulator with signed asynchronous callbacks")]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed as KRASIM_ADDR=...).
    #[arg(long, env = "KRASIM_LISTEN", default_value = "127.0.0.1:8191")]
    listen: String,
    /// Milliseconds between a registration and its verdict (and callback).
    #[arg(long, env = "KRASIM_LATENCY_MS", default_value_t = 300)]
    latency_ms: u64,
    /// Where callbacks are POSTed, e.g. http://127.0.0.1:8110/v1/kyc/callback. Unset: none.
    #[arg(long, env = "KRASIM_CALLBACK_URL")]
    callback_url: Option<String>,
    /// Shared HMAC-SHA256 secret for callback signatures (onboarding's `service.callback_secret`).
    #[arg(long, env = "KRASIM_CALLBACK_SECRET", hide_env_values = true)]
    callback_secret: String,
    /// Delivery attempts per callback.
    #[arg(long, env = "KRASIM_CALLBACK_ATTEMPTS", default_value_t = 5)]
    callback_attempts: u32,
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
    if args.callback_secret.is_empty() {
        bail!("--callback-secret (KRASIM_CALLBACK_SECRET) must not be empty");
    }
    let config = SimConfig {
        latency: Duration::from_millis(args.latency_ms),
        callback_url: args.callback_url.filter(|u| !u.trim().is_empty()),
        callback_secret: args.callback_secret,
        callback_attempts: args.callback_attempts,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("KRASIM_ADDR={addr}");
    std::io::stdout().flush()?;
    tracing::info!(%addr, latency_ms = args.latency_ms, callback_url = ?config.callback_url, "KRA simulator listening");
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
    nivesh_kra_sim::serve(listener, Sim::new(config), shutdown).await?;
    Ok(())
}
