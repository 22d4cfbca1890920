//! `nivesh-dev-idp`: the local identity provider (`nivesh_auth::DevIssuer` as a process).
//! Serves `GET /.well-known/openid-configuration`, `GET /.well-known/jwks.json` and
//! `POST /v1/dev/tokens`. Its ES256 key lives in `<data-dir>/dev-idp-es256.pem`: generated on
//! the first start, reused afterwards, so tokens stay valid across restarts. Prints
//! `DEVIDP_ADDR=<host:port>` on stdout once listening (so `--listen 127.0.0.1:0` works), logs to
//! stderr, runs until SIGTERM/Ctrl-C. Every flag has an environment variable.
//!
//! Development and tests only: anyone who can reach it can mint any role.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use nivesh_auth::DevIssuer;

/// The key file inside the data directory.
const KEY_FILE: &str = "dev-idp-es256.pem";

#[derive(Parser, Debug)]
#[command(about = "Local development identity provider: ES256 tokens and a JWKS")]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed as DEVIDP_ADDR=...).
    #[arg(long, env = "DEVIDP_LISTEN", default_value = "127.0.0.1:8112")]
    listen: String,
    /// Where the signing key is kept (created if missing).
    #[arg(long, env = "DEVIDP_DATA_DIR", default_value = ".nivesh/data/dev-idp")]
    data_dir: PathBuf,
    /// The `iss` of the tokens; default `http://<listen address>` (what services expect as
    /// `[auth] issuer`).
    #[arg(long, env = "DEVIDP_ISSUER")]
    issuer: Option<String>,
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
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let issuer_name = args.issuer.unwrap_or_else(|| format!("http://{addr}"));
    let key_path = args.data_dir.join(KEY_FILE);
    let existed = key_path.exists();
    let issuer = DevIssuer::load_or_generate(&key_path, &issuer_name)
        .with_context(|| format!("loading or creating {}", key_path.display()))?;
    println!("DEVIDP_ADDR={addr}");
    std::io::stdout().flush()?;
    tracing::info!(
        %addr,
        issuer = %issuer.issuer(),
        kid = %issuer.kid(),
        key = %key_path.display(),
        key_reused = existed,
        "dev identity provider listening (development only: it mints any role on request)"
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
    axum::serve(listener, issuer.router())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
