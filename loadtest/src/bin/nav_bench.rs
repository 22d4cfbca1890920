//! NAV-day benchmark: the full real AMFI file from landing (upload) to the last NAV readable
//! through the API and seen on `nav.broadcast`, on the whole NAV pipeline running as separate
//! processes over the dev broker. The raw baseline, measured in the same run: parsing the same
//! file in process (the irreducible work). Writes `loadtest/results/nav-bench-<time>.json`.
//!
//! `cargo run --release -p nivesh-loadtest --bin nav-bench [-- --runs 3]`

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use nivesh_fleet::fleet::{Fleet, FleetOptions, redis_reachable};
use nivesh_loadtest::fleetrun::amfi_file;
use nivesh_loadtest::navday::{
    BroadcastWatcher, Expected, expected_navs, parse_only_best, read_back, wait_for_assignment,
};
use nivesh_loadtest::results::ResultsFile;

fn main() -> Result<()> {
    let runs: usize = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3);
    let results_file = ResultsFile::begin("nav-bench");
    let file = amfi_file()?;
    let bytes = std::fs::read(&file)?;

    // Raw baseline: parse only, in process, best of 5.
    let (parse_best, stats) = parse_only_best(&bytes, 5)?;
    let (_, expected) = expected_navs(&bytes)?;
    let parse_rows_per_s = stats.rows as f64 / parse_best.as_secs_f64();
    println!(
        "parse-only: {} rows ({} NAVs) in {:?} = {:.0} rows/s",
        stats.rows, stats.navs, parse_best, parse_rows_per_s
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for run in 1..=runs {
        let r = rt.block_on(pipeline_run(&bytes, &expected))?;
        println!(
            "run {run}: upload accepted in {:.0} ms; last NAV on nav.broadcast at {:.0} ms; readable via API at {:.0} ms ({} schemes)",
            r.upload_ms, r.broadcast_ms, r.api_ms, r.schemes
        );
        results.push(r);
    }
    let mut totals: Vec<f64> = results
        .iter()
        .map(|r| r.api_ms.max(r.broadcast_ms))
        .collect();
    totals.sort_by(|a, b| a.total_cmp(b));
    let median_ms = totals[totals.len() / 2];
    let pipeline_rows_per_s = stats.rows as f64 / (median_ms / 1000.0);
    println!(
        "median landing → readable + broadcast: {median_ms:.0} ms = {pipeline_rows_per_s:.0} rows/s; ratio to parse-only: 1/{:.0}",
        parse_rows_per_s / pipeline_rows_per_s
    );

    let report = serde_json::json!({
        "benchmark": "nav-bench",
        "when": chrono::Utc::now(),
        "file": file.display().to_string(),
        "rows": stats.rows, "navs": stats.navs, "rejected": stats.rejected, "distinct_schemes": expected.len(),
        "baseline_parse_only": { "best_ms": parse_best.as_secs_f64() * 1000.0, "rows_per_s": parse_rows_per_s },
        "runs": results.iter().map(|r| serde_json::json!({
            "upload_ms": r.upload_ms, "last_broadcast_ms": r.broadcast_ms, "last_api_read_ms": r.api_ms, "schemes": r.schemes,
        })).collect::<Vec<_>>(),
        "median_landing_to_readable_ms": median_ms,
        "pipeline_rows_per_s": pipeline_rows_per_s,
        "ratio_pipeline_to_parse": pipeline_rows_per_s / parse_rows_per_s,
        "target_ms": 1000,
    });
    results_file.write(report)?;
    Ok(())
}

struct RunResult {
    upload_ms: f64,
    broadcast_ms: f64,
    api_ms: f64,
    schemes: usize,
}

async fn pipeline_run(bytes: &[u8], expected: &Expected) -> Result<RunResult> {
    let tmp = tempfile::tempdir()?;
    let mut opts = FleetOptions::for_test(tmp.path());
    let redis = nivesh_testkit::redis_url();
    if redis_reachable(&redis) {
        opts.redis_url = Some(redis);
        opts.env.push((
            "NIVESH__REDIS__KEY_PREFIX".into(),
            nivesh_testkit::unique("bench"),
        ));
    }
    opts.env.push(("RUST_LOG".into(), "warn".into()));
    let mut fleet = Fleet::start_broker(opts).await?;
    for s in ["nav-ingestor", "nav-calculator", "nav-publisher"] {
        fleet.start(s).await?;
    }
    let bootstrap = fleet.bootstrap().to_string();
    let (ingestor, publisher) = (fleet.url("nav-ingestor")?, fleet.url("nav-publisher")?);
    // A NAV day finds the fleet long running: measure that, not a consumer group's first join
    // (the dev broker takes ~2.5 s to hand out the first assignment; records produced meanwhile
    // wait for it).
    for s in ["nav-calculator", "nav-publisher"] {
        wait_for_assignment(&fleet.url(s)?, s).await?;
    }

    // Watch nav.broadcast from its current end, on a thread of its own.
    let want: HashSet<String> = expected.keys().cloned().collect();
    let watcher = BroadcastWatcher::start(&bootstrap, want)?;
    // Give the watcher its assignment before the upload starts the clock in earnest.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // NAV uploads are for ops; the publisher's reads are public.
    let client = fleet.staff_client(&["ops"]).await?;
    let t0 = Instant::now();
    let resp = client
        .post(format!("{ingestor}/v1/nav/files?source=AMFI"))
        .body(bytes.to_vec())
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("upload failed: {} {}", resp.status(), resp.text().await?);
    }
    let upload = t0.elapsed();
    let (broadcast_at, last_scheme) = watcher.wait_all(Duration::from_secs(300)).await?;
    watcher.stop()?;
    let broadcast = broadcast_at.saturating_duration_since(t0);
    // The last scheme broadcast must now be readable with exactly the file's NAV.
    read_back(
        &client,
        &publisher,
        &last_scheme,
        expected.get(&last_scheme).map(String::as_str),
    )
    .await?;
    let api = t0.elapsed();
    // Where the time went, from the services' own metrics (kept next to the results file).
    if let Ok(dir) = std::env::var("NAV_BENCH_METRICS_DIR") {
        for s in ["nav-ingestor", "nav-calculator", "nav-publisher"] {
            let text = client
                .get(format!("{}/metrics", fleet.url(s)?))
                .send()
                .await?
                .text()
                .await?;
            std::fs::write(format!("{dir}/{s}.prom"), text)?;
        }
    }
    fleet.stop().await?;
    Ok(RunResult {
        upload_ms: upload.as_secs_f64() * 1000.0,
        broadcast_ms: broadcast.as_secs_f64() * 1000.0,
        api_ms: api.as_secs_f64() * 1000.0,
        schemes: expected.len(),
    })
}
