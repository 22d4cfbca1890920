//! Shared fixtures: a mock Kafka cluster reached over TCP, settings for a test service, a
//! service running on a random port, and a TCP proxy to the real Redis that can be cut.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use nivesh_runtime::config::{ConfigSources, Settings, load_from};
use nivesh_runtime::service::{ServiceApp, ServiceContext, run_on};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub type Cluster = MockCluster<'static, DefaultProducerContext>;

/// librdkafka's mock cluster, reached over TCP at its bootstrap address. No topics: the HTTP
/// surface does not need any, and creating the whole catalog costs seconds per test.
pub fn mock_cluster() -> Cluster {
    MockCluster::new(1).expect("mock cluster")
}

/// A mock cluster with the topics of catalog group `group` (its topics, retry tiers and
/// dead-letter topic; the mock has no admin API, so they are created here).
pub fn mock_cluster_for_group(group: &str) -> Cluster {
    let cluster = mock_cluster();
    let spec = nivesh_bus::catalog::group(group).expect("catalog group");
    let mut names: Vec<String> = spec.consumes.iter().map(|t| t.to_string()).collect();
    names.extend(
        (0..spec.retry_delays.len()).map(|tier| nivesh_bus::catalog::retry_topic(group, tier)),
    );
    names.push(nivesh_bus::catalog::dead_letter_topic(group));
    for topic in nivesh_bus::catalog::all_topics()
        .into_iter()
        .filter(|t| names.contains(&t.name))
    {
        cluster
            .create_topic(&topic.name, topic.partitions, 1)
            .expect("create topic");
    }
    cluster
}

/// Settings of a test service: the given broker, a fresh data dir, no Redis, quiet logs, plus
/// `vars` (NIVESH__* overrides) applied last.
pub fn settings(bootstrap: &str, data_dir: &std::path::Path, vars: &[(&str, &str)]) -> Settings {
    let mut all: Vec<(String, String)> = vec![
        ("NIVESH__KAFKA__BOOTSTRAP_SERVERS".into(), bootstrap.into()),
        (
            "NIVESH__STORE__DATA_DIR".into(),
            data_dir.display().to_string(),
        ),
        ("NIVESH__REDIS__URL".into(), String::new()),
        ("NIVESH__TELEMETRY__LOG_LEVEL".into(), "warn".into()),
        ("NIVESH__HTTP__SHUTDOWN_TIMEOUT_SECS".into(), "10".into()),
    ];
    all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    load_from("runtime-test", &ConfigSources::with_vars(all)).expect("settings")
}

/// A service started through `run_on` on a random port.
pub struct Running {
    pub addr: SocketAddr,
    pub base: String,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<nivesh_runtime::Result<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Cancel (what SIGTERM does) and wait for `run` to return.
    pub async fn stop(self) -> nivesh_runtime::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("run returned within 30 s")
            .expect("run task did not panic")
    }
}

pub async fn start(ctx: ServiceContext, app: ServiceApp) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let shutdown = ctx.shutdown.clone();
    let handle = tokio::spawn(run_on(ctx, app, listener));
    Running {
        addr,
        base: format!("http://{addr}"),
        shutdown,
        handle,
    }
}

/// A TCP forwarder to the real Redis that can be cut, to simulate Redis going away after the
/// service connected.
pub struct RedisProxy {
    pub url: String,
    stop: CancellationToken,
    accept: JoinHandle<()>,
}

impl RedisProxy {
    pub async fn start() -> RedisProxy {
        let upstream = redis_addr();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let accept = tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    _ = token.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(c) => c, Err(_) => return },
                };
                let token = token.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        RedisProxy {
            url: format!("redis://{addr}"),
            stop,
            accept,
        }
    }

    /// Close the listener and every forwarded connection.
    pub async fn cut(self) {
        self.stop.cancel();
        let _ = self.accept.await;
    }
}

/// host:port of the real Redis (REDIS_URL, default 127.0.0.1:6379).
pub fn redis_addr() -> String {
    let url = nivesh_testkit::redis_url();
    let rest = url.trim_start_matches("redis://");
    let host_port = rest.rsplit('@').next().unwrap_or(rest);
    host_port.split('/').next().unwrap_or(host_port).to_string()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}
