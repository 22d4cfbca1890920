//! Results files: `loadtest/results/<name>-<UTC time>.json`, each carrying the machine
//! ([`crate::machine`]) and the load average at the start and the end of the run (other work on
//! the same cores changes every figure, so it is recorded next to them).

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// `/proc/loadavg`: the 1, 5 and 15 minute load averages.
pub fn load_average() -> Value {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|s| s.parse().ok())
        .collect();
    match v.as_slice() {
        [one, five, fifteen] => json!({ "1m": one, "5m": five, "15m": fifteen }),
        _ => Value::Null,
    }
}

/// A results file being measured: started when the run starts (load average at the start),
/// written when it ends.
#[derive(Debug)]
pub struct ResultsFile {
    name: String,
    started: DateTime<Utc>,
    load_at_start: Value,
}

impl ResultsFile {
    pub fn begin(name: &str) -> ResultsFile {
        ResultsFile {
            name: name.to_string(),
            started: Utc::now(),
            load_at_start: load_average(),
        }
    }

    /// Adds `machine`, `started`, `load_average` {start, end} (unless `report` has them) and
    /// writes `loadtest/results/<name>-<now>.json`. Returns the path.
    pub fn write(self, mut report: Value) -> anyhow::Result<PathBuf> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
        std::fs::create_dir_all(&dir)?;
        let now = Utc::now();
        let path = dir.join(format!(
            "{}-{}.json",
            self.name,
            now.format("%Y%m%dT%H%M%SZ")
        ));
        if let Some(obj) = report.as_object_mut() {
            obj.entry("machine").or_insert_with(crate::machine);
            obj.entry("when").or_insert_with(|| json!(now));
            obj.entry("started").or_insert_with(|| json!(self.started));
            obj.entry("load_average").or_insert_with(|| {
                json!({ "at_start": self.load_at_start, "at_end": load_average(),
                        "note": "1/5/15-minute load average of the machine (2 cores); above 2 means other work competed for the CPU" })
            });
        }
        std::fs::File::create(&path)?
            .write_all(serde_json::to_string_pretty(&report)?.as_bytes())?;
        println!("results: {}", path.display());
        Ok(path)
    }
}
