//! A Cosmos DB 429 storm under a steady order load, every service on the Cosmos adapter over the
//! Azure SDK's in-process emulator, the storm from the SDK's fault injection (see
//! `nivesh_loadtest::cosmos_storm`). Writes `loadtest/results/cosmos-storm-<time>.json` and
//! exits non-zero unless the storm happened and the reconciliation is clean.
//!
//! Build the emulator binaries first (a separate target dir, so normal builds are untouched):
//! `CARGO_TARGET_DIR=~/.cache/nivesh/target-cosmos-emu cargo build --release --workspace --bins --features nivesh-runtime/cosmos-emulator`
//!
//! `cargo run --release -p nivesh-loadtest --bin cosmos-storm -- [--load-s 60] [--storm-at-s 20]
//!  [--storm-for-s 20] [--rate 20] [--clients 16] [--storm-rate 0.5] [--retry-after-ms 100]
//!  [--partitions 1] [--latency-ms 50] [--embedded nav-ingestor,nav-publisher]` (binaries from `NIVESH_BIN_DIR`, else
//! `~/.cache/nivesh/target-cosmos-emu/release`).

use std::time::Duration;

use anyhow::{Result, bail};
use nivesh_loadtest::cosmos_storm::{StormRun, run, write_results};
use nivesh_loadtest::flag;

fn main() -> Result<()> {
    let d = StormRun::default();
    let secs = |name: &str, default: Duration| -> Result<Duration> {
        Ok(Duration::from_secs_f64(flag(name, default.as_secs_f64())?))
    };
    let storm = StormRun {
        load: secs("--load-s", d.load)?,
        storm_at: secs("--storm-at-s", d.storm_at)?,
        storm_for: secs("--storm-for-s", d.storm_for)?,
        orders_per_s: flag("--rate", d.orders_per_s)?,
        clients: flag("--clients", d.clients)?,
        storm_rate: flag("--storm-rate", d.storm_rate)?,
        storm_retry_after_ms: flag("--retry-after-ms", d.storm_retry_after_ms)?,
        partitions: flag("--partitions", d.partitions)?,
        gateway_latency_ms: flag("--latency-ms", d.gateway_latency_ms)?,
        settle_timeout: secs("--settle-timeout-s", d.settle_timeout)?,
        embedded: flag("--embedded", d.embedded.join(","))?
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string())
            .collect(),
        ..d
    };
    if storm.storm_at + storm.storm_for > storm.load {
        bail!("the storm must end within the load (--storm-at-s + --storm-for-s <= --load-s)");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(run(&storm))?;
    let path = write_results(&report)?;
    println!("results: {}", path.display());
    if report["ok"] != serde_json::json!(true) {
        bail!("the storm run found problems: {}", report["checks"]);
    }
    Ok(())
}
