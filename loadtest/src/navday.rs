//! The NAV day as benchmarks see it: the real AMFI file parsed in process (the parse-only raw
//! baseline and the NAVs every scheme must end up with), a part of the file holding only some
//! schemes, a watcher of `nav.broadcast` that stops the clock when every scheme of the file has
//! been broadcast and keeps counting records per scheme, and the read-back through the API.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use nivesh_nav_ingestor::parse::{NavSource, ParseStats, ParsedLine, parser_for};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// The NAVs of a file: scheme code → NAV as text, exactly as the API must return it.
pub type Expected = HashMap<String, String>;

/// Parse `bytes` (AMFI) once: counts and every scheme's NAV.
pub fn expected_navs(bytes: &[u8]) -> Result<(ParseStats, Expected)> {
    let mut stats = ParseStats::default();
    let mut expected = Expected::new();
    for line in parser_for(NavSource::Amfi, bytes)? {
        let line = line?;
        stats.record(&line);
        if let ParsedLine::Nav(row) = &line {
            expected.insert(row.scheme_code.as_str().to_string(), row.nav.to_string());
        }
    }
    Ok((stats, expected))
}

/// The raw baseline of a NAV day: parsing the file in process, best of `runs`.
pub fn parse_only_best(bytes: &[u8], runs: usize) -> Result<(Duration, ParseStats)> {
    let mut best = Duration::MAX;
    let mut stats = ParseStats::default();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let mut s = ParseStats::default();
        for line in parser_for(NavSource::Amfi, bytes)? {
            s.record(&line?);
        }
        best = best.min(t.elapsed());
        stats = s;
    }
    Ok((best, stats))
}

/// Scheme codes and names of the file (for random reads and searches).
pub fn schemes(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    // The file holds 159 NAVs dated 26-Feb-2025, after the scenarios' business date: the
    // calculator rejects them as FUTURE_DATE, so they are never readable and are not drawn.
    let business_date = crate::fleetrun::business_start()
        .with_timezone(&chrono::FixedOffset::east_opt(19_800).expect("IST offset"))
        .date_naive();
    let mut out = Vec::new();
    for line in parser_for(NavSource::Amfi, bytes)? {
        if let ParsedLine::Nav(row) = line?
            && row.nav_date <= business_date
        {
            out.push((row.scheme_code.as_str().to_string(), row.scheme_name));
        }
    }
    Ok(out)
}

/// An AMFI file holding only the rows of `codes`, each under the section and fund-house
/// headings it has in `bytes` (the header line first, CRLF line ends as AMFI writes them).
pub fn subset(bytes: &[u8], codes: &[&str]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let mut out = String::new();
    if let Some(header) = lines.next() {
        out.push_str(header.trim_end_matches('\r'));
        out.push_str("\r\n");
    }
    let (mut section, mut amc) = (String::new(), String::new());
    for line in lines {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match line.split_once(';') {
            Some((code, _)) if line.matches(';').count() >= 5 => {
                if codes.contains(&code.trim()) {
                    out.push_str(&format!("\r\n{section}\r\n\r\n{amc}\r\n\r\n{line}\r\n"));
                }
            }
            _ if line.contains("Schemes(") || line.ends_with("Schemes") => {
                section = line.to_string()
            }
            _ => amc = line.to_string(),
        }
    }
    out.into_bytes()
}

#[derive(Debug, Default)]
struct Broadcasts {
    counts: HashMap<String, usize>,
    records: usize,
    /// When the last scheme still missing of `want` was seen, and which it was.
    all_seen: Option<(Instant, String)>,
    /// The latest record of a wanted scheme: when, and which.
    last_wanted: Option<(Instant, String)>,
}

/// Reads `nav.broadcast` from its current end on a thread of its own, counting records per
/// scheme (the record key).
pub struct BroadcastWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    state: Arc<Mutex<Broadcasts>>,
}

impl BroadcastWatcher {
    /// Start at the topic's current end (watermarks read now); `want` is the schemes whose
    /// broadcast stops the clock.
    pub fn start(bootstrap: &str, want: HashSet<String>) -> Result<BroadcastWatcher> {
        let topic = "nav.broadcast";
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", nivesh_testkit::unique("bench"))
            .set("enable.auto.commit", "false")
            // The watcher stops the clock: it must not add the dev broker's idle fetch wait (it
            // answers a waiting fetch only when fetch.wait.max.ms runs out) to the measurement.
            .set("fetch.wait.max.ms", "10")
            .set("fetch.queue.backoff.ms", "10")
            .create()?;
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let mut tpl = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            let (_, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))?;
        }
        consumer.assign(&tpl)?;
        let stop = Arc::new(AtomicBool::new(false));
        let state: Arc<Mutex<Broadcasts>> = Arc::default();
        let thread = {
            let (stop, state) = (stop.clone(), state.clone());
            std::thread::spawn(move || -> Result<()> {
                let mut missing = want;
                while !stop.load(Ordering::Relaxed) {
                    let Some(m) = consumer.poll(Duration::from_millis(20)) else {
                        continue;
                    };
                    let m = m?;
                    let at = Instant::now();
                    let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                    let mut s = state.lock().expect("broadcast state");
                    s.records += 1;
                    *s.counts.entry(key.clone()).or_insert(0) += 1;
                    if missing.remove(&key) {
                        s.last_wanted = Some((at, key.clone()));
                        if missing.is_empty() {
                            s.all_seen = Some((at, key));
                        }
                    }
                }
                Ok(())
            })
        };
        Ok(BroadcastWatcher {
            stop,
            thread: Some(thread),
            state,
        })
    }

    /// Wait until every wanted scheme has been broadcast: when the last one was seen, and which.
    pub async fn wait_all(&self, timeout: Duration) -> Result<(Instant, String)> {
        let started = Instant::now();
        loop {
            {
                let s = self.state.lock().expect("broadcast state");
                if let Some(done) = &s.all_seen {
                    return Ok(done.clone());
                }
                if started.elapsed() > timeout {
                    bail!(
                        "only {} schemes broadcast after {timeout:?}",
                        s.counts.len()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Like [`Self::wait_all`], but also done when wanted schemes have been broadcast and no new
    /// one for `quiet` (the pipeline may reject some NAVs of a file: those are never broadcast).
    /// Returns when the last wanted scheme was seen, which, and whether every one was.
    pub async fn wait_settled(
        &self,
        timeout: Duration,
        quiet: Duration,
    ) -> Result<(Instant, String, bool)> {
        let started = Instant::now();
        loop {
            {
                let s = self.state.lock().expect("broadcast state");
                if let Some((at, key)) = &s.all_seen {
                    return Ok((*at, key.clone(), true));
                }
                if let Some((at, key)) = &s.last_wanted
                    && at.elapsed() > quiet
                {
                    return Ok((*at, key.clone(), false));
                }
                if started.elapsed() > timeout {
                    bail!(
                        "only {} schemes broadcast after {timeout:?}",
                        s.counts.len()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Records seen so far, and records per scheme.
    pub fn counts(&self) -> (usize, HashMap<String, usize>) {
        let s = self.state.lock().expect("broadcast state");
        (s.records, s.counts.clone())
    }

    pub fn stop(mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t.join().expect("broadcast watcher thread"),
            None => Ok(()),
        }
    }
}

/// Read `GET /v1/nav/schemes/{scheme}` until it answers, and check it returns exactly `nav`.
pub async fn read_back(
    client: &reqwest::Client,
    publisher: &str,
    scheme: &str,
    nav: Option<&str>,
) -> Result<()> {
    let started = Instant::now();
    let got: serde_json::Value = loop {
        let r = client
            .get(format!("{publisher}/v1/nav/schemes/{scheme}"))
            .send()
            .await?;
        if r.status().is_success() {
            break r.json().await?;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("scheme {scheme} not readable after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    if got["nav"].as_str() != nav {
        bail!(
            "scheme {scheme}: API NAV {} differs from the file's {nav:?}",
            got["nav"]
        );
    }
    Ok(())
}

/// Waits until the service's consumer group holds partitions (its
/// `nivesh_consumer_assigned_partitions` gauge is above zero).
pub async fn wait_for_assignment(base: &str, service: &str) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_keeps_only_the_wanted_rows_under_their_headings() {
        let Some(file) = nivesh_testkit::amfi_file() else {
            return;
        };
        let bytes = std::fs::read(file).expect("read the AMFI file");
        let part = subset(&bytes, &["118834", "120716"]);
        let (stats, navs) = expected_navs(&part).expect("the part parses");
        assert_eq!(navs.len(), 2, "{}", String::from_utf8_lossy(&part));
        assert_eq!(navs["118834"], "144.782");
        assert_eq!(navs["120716"], "156.2072");
        assert_eq!(stats.rejected, 0);
    }
}
