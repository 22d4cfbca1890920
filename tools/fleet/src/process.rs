//! One OS process per service (and one for the dev broker): spawn with the fleet's environment,
//! prefix every log line with the service name, stop with SIGTERM (graceful) or SIGKILL (chaos).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// Where the fleet's binaries live: next to the running executable (`target/<profile>/`), or one
/// level up when the caller is a test binary in `target/<profile>/deps/`.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("NIVESH_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("profile dir").to_path_buf()
    } else {
        dir
    }
}

/// How a child's output is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogMode {
    /// `name | line` on our stdout (the launcher).
    Prefixed,
    /// Appended to `<log_dir>/<name>.log` (tests: readable after a failure, quiet otherwise).
    File,
}

/// A running child process.
#[derive(Debug)]
pub struct Managed {
    pub name: String,
    child: Child,
}

/// Everything needed to (re)start one process.
#[derive(Debug, Clone)]
pub struct Launch {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log_mode: LogMode,
    pub log_dir: PathBuf,
}

impl Launch {
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>, log_dir: &Path) -> Self {
        Launch {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            log_mode: LogMode::File,
            log_dir: log_dir.to_path_buf(),
        }
    }

    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Spawn the process. `first_line_with` lets the caller capture the first output line that
    /// starts with a marker (the broker publishes its bootstrap address this way).
    pub async fn spawn(
        &self,
        first_line_with: Option<(&'static str, oneshot::Sender<String>)>,
    ) -> Result<Managed> {
        if !self.program.exists() {
            bail!(
                "{} not found: build it first (cargo build --workspace --bins)",
                self.program.display()
            );
        }
        std::fs::create_dir_all(&self.log_dir)?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Children die with us even when we are SIGKILLed ourselves (tests that panic).
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", self.program.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let sink = LogSink::new(&self.name, self.log_mode, &self.log_dir)?;
        let mut marker = first_line_with;
        let out_sink = sink.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((prefix, _)) = &marker
                    && let Some(rest) = line.strip_prefix(prefix)
                {
                    let (_, tx) = marker.take().expect("checked");
                    let _ = tx.send(rest.trim().to_string());
                }
                out_sink.write(&line);
            }
        });
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.write(&line);
            }
        });
        Ok(Managed {
            name: self.name.clone(),
            child,
        })
    }
}

#[derive(Clone)]
struct LogSink {
    prefix: String,
    file: Option<std::sync::Arc<std::sync::Mutex<std::fs::File>>>,
}

impl LogSink {
    fn new(name: &str, mode: LogMode, dir: &Path) -> Result<Self> {
        let file = match mode {
            LogMode::Prefixed => None,
            LogMode::File => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("{name}.log")))?;
                Some(std::sync::Arc::new(std::sync::Mutex::new(f)))
            }
        };
        Ok(LogSink {
            prefix: format!("{name:>14} |"),
            file,
        })
    }

    fn write(&self, line: &str) {
        use std::io::Write;
        match &self.file {
            Some(f) => {
                let mut f = f.lock().expect("log file lock");
                let _ = writeln!(f, "{line}");
            }
            None => println!("{} {line}", self.prefix),
        }
    }
}

impl Managed {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL: no chance to flush or commit. The crash model our effectively-once design must survive.
    pub async fn kill9(&mut self) -> Result<()> {
        self.signal(Signal::SIGKILL)?;
        self.child.wait().await?;
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub async fn terminate(&mut self, grace: Duration) -> Result<()> {
        self.send_term();
        self.wait_or_kill(grace).await
    }

    /// Ask the process to stop gracefully (no-op if it already exited).
    pub fn send_term(&self) {
        let _ = self.signal(Signal::SIGTERM);
    }

    /// Wait for exit; SIGKILL after `grace`.
    pub async fn wait_or_kill(&mut self, grace: Duration) -> Result<()> {
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(service = %self.name, "did not stop within {grace:?}; killing");
            self.kill9().await?;
        }
        Ok(())
    }

    /// Non-blocking: has it exited, and with what status?
    pub fn try_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// Send `sig` (e.g. the dev broker's SIGUSR1/SIGUSR2 fault controls).
    pub fn signal(&self, sig: Signal) -> Result<()> {
        let pid = self.child.id().context("process already exited")?;
        kill(Pid::from_raw(pid as i32), sig).context("signal")?;
        Ok(())
    }
}

/// Poll `url` until it answers 2xx or `timeout` passes.
pub async fn wait_http_ok(url: &str, timeout: Duration) -> Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + timeout;
    loop {
        match client.get(url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            other => {
                if Instant::now() > deadline {
                    bail!("{url} not ready after {timeout:?}: {other:?}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
