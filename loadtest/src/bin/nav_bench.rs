//! NAV-day benchmark: the full real AMFI file from landing (upload) to the last NAV readable
//! through the API and seen on `nav.broadcast`, on the whole NAV pipeline running as separate
//! processes over the dev broker. The raw baseline, measured in the same run: parsing the same
//! file in process (the irreducible work). Writes `loadtest/results/nav-bench-<time>.json`.
//!
//! `cargo run --release -p nivesh-loadtest --bin nav-bench [-- --runs 3]`

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nivesh_fleet::fleet::{Fleet, FleetOptions, redis_reachable};
use nivesh_nav_ingestor::parse::{NavSource, ParseStats, ParsedLine, parser_for};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

fn main() -> Result<()> {
    let runs: usize = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3);
    let file =
        nivesh_testkit::amfi_file().context("the real AMFI file is needed for this benchmark")?;
    let bytes = std::fs::read(&file)?;

    // Raw baseline: parse only, in process, best of 5.
    let mut parse_best = Duration::MAX;
    let mut stats = ParseStats::default();
    let mut expected: HashMap<String, String> = HashMap::new();
    for i in 0..5 {
        let t = Instant::now();
        let mut s = ParseStats::default();
        for line in parser_for(NavSource::Amfi, &bytes[..])? {
            let line = line?;
            s.record(&line);
            if i == 0
                && let ParsedLine::Nav(row) = &line
            {
                expected.insert(row.scheme_code.as_str().to_string(), row.nav.to_string());
            }
        }
        parse_best = parse_best.min(t.elapsed());
        stats = s;
    }
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
        "machine": nivesh_loadtest::machine(),
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
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!(
        "nav-bench-{}.json",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    std::fs::File::create(&path)?.write_all(serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!("results: {}", path.display());
    Ok(())
}

struct RunResult {
    upload_ms: f64,
    broadcast_ms: f64,
    api_ms: f64,
    schemes: usize,
}

async fn pipeline_run(bytes: &[u8], expected: &HashMap<String, String>) -> Result<RunResult> {
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
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", nivesh_testkit::unique("bench"))
        .set("enable.auto.commit", "false")
        // The watcher stops the clock: it must not add the dev broker's idle fetch wait (it
        // answers a waiting fetch only when fetch.wait.max.ms runs out) to the measurement.
        .set("fetch.wait.max.ms", "10")
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    let md = consumer.fetch_metadata(Some("nav.broadcast"), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset("nav.broadcast", p.id(), Offset::End)?;
    }
    consumer.assign(&tpl)?;
    let want: HashSet<String> = expected.keys().cloned().collect();
    let started = Instant::now();
    let watcher = std::thread::spawn(move || -> Result<(Instant, String)> {
        let mut seen = HashSet::new();
        let mut last = String::new();
        while seen.len() < want.len() {
            if started.elapsed() > Duration::from_secs(300) {
                bail!(
                    "only {} of {} schemes broadcast after 300 s",
                    seen.len(),
                    want.len()
                );
            }
            if let Some(m) = consumer.poll(Duration::from_millis(50)) {
                let m = m?;
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                if want.contains(&key) && seen.insert(key.clone()) {
                    last = key;
                }
            }
        }
        Ok((Instant::now(), last))
    });
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
    let (broadcast_at, last_scheme) =
        tokio::task::spawn_blocking(move || watcher.join().expect("watcher thread")).await??;
    let broadcast = broadcast_at.saturating_duration_since(t0);
    // The last scheme broadcast must now be readable with exactly the file's NAV.
    let nav: serde_json::Value = loop {
        let r = client
            .get(format!("{publisher}/v1/nav/schemes/{last_scheme}"))
            .send()
            .await?;
        if r.status().is_success() {
            break r.json().await?;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let api = t0.elapsed();
    if nav["nav"].as_str() != expected.get(&last_scheme).map(String::as_str) {
        bail!(
            "scheme {last_scheme}: API NAV {} differs from the file's {:?}",
            nav["nav"],
            expected.get(&last_scheme)
        );
    }
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

/// Waits until the service's consumer group holds partitions (its
/// `nivesh_consumer_assigned_partitions` gauge is above zero).
async fn wait_for_assignment(base: &str, service: &str) -> Result<()> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let assigned = text
            .lines()
            .filter(|l| l.starts_with("nivesh_consumer_assigned_partitions"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .any(|n| n > 0.0);
        if assigned {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{service}: no partitions assigned after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
