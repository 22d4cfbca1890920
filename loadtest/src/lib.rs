//! nivesh-loadtest: benchmarks and load scenarios against the local fleet (`src/bin/`), each
//! writing a results file under `loadtest/results/`. This library holds what they share:
//!
//! - [`fleetrun`]: the whole fleet up, the NAV day absorbed, warm-up orders, order placement;
//! - [`load`]: closed-loop and open-loop load drivers;
//! - [`stats`]: latency percentiles (p50/p95/p99/max) and per-status error tallies;
//! - [`completion`]: end-to-end order completion from events (placed → `portfolio.updated`);
//! - [`navday`]: the AMFI file's expectations, the `nav.broadcast` watcher, the read-back;
//! - [`raw`]: the raw per-order baseline (the irreducible work of accepting one order);
//! - [`cpu`]: CPU seconds per fleet process from `/proc`;
//! - [`results`]: results files with the machine and the load average at start and end.

pub mod completion;
pub mod cpu;
pub mod fleetrun;
pub mod load;
pub mod navday;
pub mod raw;
pub mod results;
pub mod stats;

use anyhow::Context;
use serde_json::{Value, json};

/// The value after `name` on the command line, parsed; `default` when absent.
pub fn flag<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .map(|s| s.parse::<T>())
        .transpose()
        .with_context(|| format!("bad value for {name}"))?
        .unwrap_or(default))
}

/// The machine a result was measured on: CPU model, cores, memory and the compiler, recorded
/// in every results file so figures are never quoted without their hardware.
pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    json!({ "cpu": cpu, "cores": cores, "memory_gib": mem_kb / 1024 / 1024, "rustc": rustc })
}

pub mod cosmos_storm;
