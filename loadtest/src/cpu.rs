//! CPU accounting from `/proc`: the user + system time of every child process of this one (the
//! fleet), by binary name, and of this process (the load generator), so a results file says
//! where the cores went during the measured phase.

use std::collections::BTreeMap;

use serde_json::Value;

/// CPU time in clock ticks per process name, at one instant.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot(BTreeMap<String, u64>);

/// utime + stime (clock ticks) from a `/proc/<pid>/stat` line, and the parent pid.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    // pid (comm) state ppid ... utime(14) stime(15): split after the comm's closing paren.
    let close = stat.rfind(')')?;
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ppid = fields.get(1)?.to_string();
    let utime = fields.get(11)?.parse::<u64>().ok()?;
    let stime = fields.get(12)?.parse::<u64>().ok()?;
    Some((ppid, utime + stime))
}

impl CpuSnapshot {
    /// Every child of this process by argv\[0\]'s file name (summed per name), plus this process
    /// as `self_label`.
    pub fn take(self_label: &str) -> CpuSnapshot {
        let me = std::process::id().to_string();
        let mut out = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return CpuSnapshot(out);
        };
        for entry in dir.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some((ppid, ticks)) = parse_stat(&stat) else {
                continue;
            };
            if ppid != me {
                continue;
            }
            let name = std::fs::read(entry.path().join("cmdline"))
                .ok()
                .and_then(|c| {
                    c.split(|b| *b == 0)
                        .next()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                })
                .map(|argv0| argv0.rsplit('/').next().unwrap_or_default().to_string())
                .unwrap_or_default();
            *out.entry(name).or_insert(0) += ticks;
        }
        if let Some((_, ticks)) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            out.insert(self_label.to_string(), ticks);
        }
        CpuSnapshot(out)
    }

    /// CPU seconds per process between `self` (before) and `after`, busiest first.
    pub fn until(&self, after: &CpuSnapshot) -> CpuUse {
        let tick = clock_ticks_per_s();
        let mut v: Vec<(String, f64)> = after
            .0
            .iter()
            .map(|(name, a)| {
                let before = self.0.get(name).copied().unwrap_or(0);
                (name.clone(), a.saturating_sub(before) as f64 / tick)
            })
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        CpuUse(v)
    }
}

/// CPU seconds per process over a phase, busiest first.
#[derive(Debug, Clone, Default)]
pub struct CpuUse(pub Vec<(String, f64)>);

impl CpuUse {
    pub fn total(&self) -> f64 {
        self.0.iter().map(|(_, s)| s).sum()
    }

    /// `{name: seconds}` rounded to 10 ms (the format of order-bench).
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(n, s)| (n.clone(), serde_json::json!((s * 100.0).round() / 100.0)))
                .collect(),
        )
    }

    /// Print one line per process: seconds and share of one core over `phase_s`.
    pub fn print(&self, phase_s: f64) {
        for (name, s) in &self.0 {
            println!("  {name:<24} {s:>7.2} s  {:>5.0} %", 100.0 * s / phase_s);
        }
    }
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when unknown).
pub fn clock_ticks_per_s() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        // A command name with spaces and parentheses must not shift the fields.
        let stat = "42 (a (b) c) S 7 42 42 0 -1 4194304 1 0 0 0 150 25 0 0 20 0 1 0";
        assert_eq!(parse_stat(stat), Some(("7".into(), 175)));
    }
}
