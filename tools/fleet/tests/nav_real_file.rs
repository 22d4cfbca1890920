//! End-to-end with the real AMFI NAVAll file (`../shared/data/amfi/NAVAll-2025-02-25.txt`) through
//! the NAV services as separate processes.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use nivesh_events::NavValidated;
use serde_json::Value;

/// (scheme code → (NAV string, ISO date)) for every row with a positive numeric NAV; where a code
/// repeats, the latest date wins (that is what "latest NAV" answers).
fn expected_navs(text: &str) -> HashMap<String, (String, String)> {
    let mut out: HashMap<String, (String, String)> = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.trim_end_matches('\r').split(';').collect();
        if f.len() != 6 || f[0] == "Scheme Code" {
            continue;
        }
        let nav = f[4].trim();
        let Ok(value) = nav.parse::<f64>() else {
            continue;
        };
        if value <= 0.0 || f[1].contains("Redeemed") || !valid_isin(f[1]) || !valid_isin(f[2]) {
            continue;
        }
        let nav = nav.strip_suffix('.').unwrap_or(nav).to_string();
        let date = chrono::NaiveDate::parse_from_str(f[5].trim(), "%d-%b-%Y")
            .unwrap()
            .to_string();
        match out.get(f[0]) {
            Some((_, d)) if *d >= date => {}
            _ => {
                out.insert(f[0].to_string(), (nav, date));
            }
        }
    }
    out
}

/// An ISIN column the platform accepts: `-`/empty, or 12 alphanumerics ending in the check digit
/// (rows with malformed ISINs, e.g. `Redeemed` or `INF174K01VSI`, are rejected into the report).
fn valid_isin(s: &str) -> bool {
    let s = s.trim();
    s.is_empty()
        || s == "-"
        || (s.len() == 12
            && s.chars().all(|c| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_digit()))
}

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = client.get(url).send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every row of the real file with a numeric NAV is readable through the publisher's API with
/// exactly the file's NAV string and date; N.A. and zero NAVs and malformed lines are in the file
/// report with reasons; AMC and category are right for rows across sections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_amfi_file_is_published_exactly() {
    let Some(path) = nivesh_testkit::amfi_file() else {
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let expected = expected_navs(&text);
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = common::fleet(&tmp).await;
    for s in ["nav-ingestor", "nav-calculator", "nav-publisher"] {
        fleet.start(s).await.unwrap();
    }
    let client = fleet.staff_client(&["ops"]).await.unwrap();
    let (ingestor, publisher) = (
        fleet.url("nav-ingestor").unwrap(),
        fleet.url("nav-publisher").unwrap(),
    );
    let resp = client
        .post(format!("{ingestor}/v1/nav/files?source=AMFI"))
        .body(text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let report: Value = resp.json().await.unwrap();
    let file_id = report["fileId"].as_str().unwrap().to_string();
    assert_eq!(report["rows"], 13_860, "every data row is counted");

    // Every expected NAV readable, exactly (concurrent reads; poll until the pipeline drains).
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut pending: Vec<String> = expected.keys().cloned().collect();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} NAVs never became readable, e.g. {:?}",
            pending.len(),
            &pending[..pending.len().min(5)]
        );
        let results: Vec<(String, u16, Value)> = futures::stream::iter(pending.clone())
            .map(|code| {
                let client = client.clone();
                let url = format!("{publisher}/v1/nav/schemes/{code}");
                async move {
                    let (s, v) = get_json(&client, &url).await;
                    (code, s, v)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        pending.clear();
        for (code, status, v) in results {
            match status {
                200 => {
                    let (nav, date) = &expected[&code];
                    assert_eq!(v["nav"].as_str(), Some(nav.as_str()), "scheme {code}: {v}");
                    assert_eq!(
                        v["navDate"].as_str(),
                        Some(date.as_str()),
                        "scheme {code}: {v}"
                    );
                }
                404 => pending.push(code),
                other => panic!("scheme {code}: unexpected status {other}: {v}"),
            }
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // Samples across sections: AMC and category as the file's section and AMC lines say.
    for (code, amc, category) in [
        (
            "119551",
            "Aditya Birla Sun Life Mutual Fund",
            "Debt Scheme - Banking and PSU Fund",
        ),
        (
            "119552",
            "Aditya Birla Sun Life Mutual Fund",
            "Debt Scheme - Banking and PSU Fund",
        ),
    ] {
        let (_, v) = get_json(&client, &format!("{publisher}/v1/nav/schemes/{code}")).await;
        assert_eq!(v["amc"].as_str(), Some(amc), "{code}: {v}");
        assert_eq!(v["category"].as_str(), Some(category), "{code}: {v}");
    }
    // And a spread of others, checked against the section/AMC lines that precede them in the file.
    let mut section = String::new();
    let mut amc = String::new();
    let mut checked = 0;
    for (i, line) in text.lines().map(|l| l.trim_end_matches('\r')).enumerate() {
        if line.contains("Schemes(") && !line.contains(';') {
            section = line[line.find('(').unwrap() + 1..line.rfind(')').unwrap()].to_string();
        } else if line.contains("Mutual Fund") && !line.contains(';') {
            amc = line.trim().to_string();
        } else if i % 1500 == 7 && line.contains(';') {
            let code = line.split(';').next().unwrap();
            if expected.contains_key(code) {
                let (_, v) = get_json(&client, &format!("{publisher}/v1/nav/schemes/{code}")).await;
                assert_eq!(
                    v["category"].as_str(),
                    Some(section.as_str()),
                    "line {}: {v}",
                    i + 1
                );
                assert_eq!(v["amc"].as_str(), Some(amc.as_str()), "line {}: {v}", i + 1);
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "sampled {checked} rows across sections");

    // The report lists every N.A. and zero NAV with its reason.
    let mut lines = Vec::new();
    let mut after = 0;
    loop {
        let (_, page) = get_json(
            &client,
            &format!("{ingestor}/v1/nav/files/{file_id}?after={after}&limit=1000"),
        )
        .await;
        lines.extend(page["rejectedLines"].as_array().unwrap().clone());
        match page["nextAfter"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    let by_code = |c: &str| lines.iter().filter(|l| l["reasonCode"] == c).count();
    assert_eq!(by_code("NavNotAvailable"), 6, "the 6 N.A. rows");
    assert_eq!(by_code("InvalidNav"), 376, "the zero NAVs");
    assert_eq!(
        by_code("InvalidIsin"),
        12,
        "malformed ISINs (9 'Redeemed' and 3 others)"
    );
    assert_eq!(lines.len(), 394, "nothing else rejected");
    assert!(
        lines
            .iter()
            .all(|l| !l["reason"].as_str().unwrap_or("").is_empty()),
        "every rejection has a reason"
    );
    fleet.stop().await.unwrap();
}

/// The same file uploaded 5 times within a minute publishes each NAV once; a corrected file for the
/// same date produces correction events for the changed rows only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuploads_are_noops_and_corrections_touch_only_changed_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = common::fleet(&tmp).await;
    for s in ["nav-ingestor", "nav-calculator", "nav-publisher"] {
        fleet.start(s).await.unwrap();
    }
    let bootstrap = fleet.bootstrap().to_string();
    let client = fleet.staff_client(&["ops"]).await.unwrap();
    let ingestor = fleet.url("nav-ingestor").unwrap();
    let (body, expected) = common::amfi_file(300, "25-Feb-2025");
    for i in 0..5 {
        let r = client
            .post(format!("{ingestor}/v1/nav/files?source=AMFI"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            if i == 0 { 201 } else { 200 },
            "upload {i}"
        );
    }
    let broadcast = common::read_topic(&bootstrap, "nav.broadcast", Duration::from_secs(60), |m| {
        m.len() >= 300
    });
    assert_eq!(broadcast.len(), 300, "each NAV broadcast once");

    // Change 3 NAVs (same schemes, same date) and upload the corrected file.
    let changed: HashSet<String> = ["900007", "900150", "900299"]
        .into_iter()
        .map(String::from)
        .collect();
    // Rebuild the file with those rows changed (one more decimal digit).
    let corrected: String = body
        .split("\r\n")
        .map(|line| {
            let f: Vec<&str> = line.split(';').collect();
            if f.len() == 6 && changed.contains(f[0]) {
                format!("{};{};{};{};{}9;{}", f[0], f[1], f[2], f[3], f[4], f[5])
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    let r = client
        .post(format!("{ingestor}/v1/nav/files?source=AMFI"))
        .body(corrected)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "a corrected file is a new file");
    let deadline = Instant::now() + Duration::from_secs(60);
    let corrections = loop {
        let msgs = common::read_topic_to_end(&bootstrap, "nav.validated", Duration::from_secs(30));
        let events: Vec<NavValidated> = common::decode_all(&msgs).await;
        let corrections: Vec<NavValidated> = events
            .into_iter()
            .filter(|e| e.change_kind == "CORRECTION")
            .collect();
        if corrections.len() >= 3 || Instant::now() > deadline {
            break corrections;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let corrected_codes: HashSet<String> =
        corrections.iter().map(|e| e.scheme_code.clone()).collect();
    assert_eq!(
        corrected_codes, changed,
        "corrections exactly for the changed rows"
    );
    assert_eq!(corrections.len(), 3, "one correction per changed row");
    for c in &corrections {
        let old = &expected
            .iter()
            .find(|(code, _)| code == &c.scheme_code)
            .unwrap()
            .1;
        assert_eq!(
            c.previous_nav.map(|d| d.to_string()).as_deref(),
            Some(old.as_str()),
            "correction carries the previous NAV"
        );
        assert_eq!(c.nav.to_string(), format!("{old}9"));
    }
    fleet.stop().await.unwrap();
}

/// With Redis stopped, NAV reads still answer (from the store), readiness reports degraded, and no
/// request gets a 5xx; reads come back through Redis after it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nav_reads_survive_redis_outage() {
    let port = nivesh_fleet::fleet::free_port();
    let mut redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server on PATH (scripts/ensure-deps installs it)");
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !nivesh_fleet::fleet::redis_reachable(&url) {
        assert!(Instant::now() < deadline, "private redis did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = nivesh_fleet::fleet::FleetOptions::for_test(tmp.path());
    opts.redis_url = Some(url);
    let mut fleet = nivesh_fleet::fleet::Fleet::start_broker(opts)
        .await
        .unwrap();
    for s in ["nav-ingestor", "nav-calculator", "nav-publisher"] {
        fleet.start(s).await.unwrap();
    }
    let client = fleet.staff_client(&["ops"]).await.unwrap();
    let (ingestor, publisher) = (
        fleet.url("nav-ingestor").unwrap(),
        fleet.url("nav-publisher").unwrap(),
    );
    let (body, expected) = common::amfi_file(50, "25-Feb-2025");
    client
        .post(format!("{ingestor}/v1/nav/files?source=AMFI"))
        .body(body)
        .send()
        .await
        .unwrap();
    let (code, _) = expected.last().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, _) = get_json(&client, &format!("{publisher}/v1/nav/schemes/{code}")).await;
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, ready) = get_json(&client, &format!("{publisher}/readyz")).await;
    assert_eq!(ready["status"], "ready", "{ready}");

    redis.kill().unwrap();
    redis.wait().unwrap();
    for (code, nav) in expected.iter() {
        let (s, v) = get_json(&client, &format!("{publisher}/v1/nav/schemes/{code}")).await;
        assert_eq!(s, 200, "read during the outage: {v}");
        assert_eq!(v["nav"].as_str(), Some(nav.as_str()));
    }
    let r = client
        .get(format!("{publisher}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "the cache is not critical: still serving"
    );
    let ready: Value = r.json().await.unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    let (s, _) = get_json(
        &client,
        &format!("{publisher}/v1/nav/schemes/{code}/history"),
    )
    .await;
    assert_eq!(s, 200);
    fleet.stop().await.unwrap();
}
