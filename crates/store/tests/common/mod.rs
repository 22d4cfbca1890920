//! Helpers shared by the Redis test binaries of this crate.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to the real Redis that can stop forwarding (a frozen / partitioned server).
pub(crate) struct FreezableProxy {
    port: u16,
    /// Set to stop forwarding (both directions hold their bytes); clear to resume.
    pub(crate) frozen: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FreezableProxy {
    pub(crate) async fn start() -> Self {
        let url = nivesh_testkit::redis_url();
        let target = url
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap();
        let target = target.rsplit('@').next().unwrap().to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&frozen);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&target).await.unwrap();
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, Arc::clone(&flag)));
                tokio::spawn(pump(server_read, client_write, Arc::clone(&flag)));
            }
        });
        FreezableProxy { port, frozen, task }
    }

    /// The Redis URL of the real server with the proxy's port.
    pub(crate) fn url(&self) -> String {
        let url = nivesh_testkit::redis_url();
        let rest = url.trim_start_matches("redis://");
        let (host_part, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
        let auth = host_part
            .rsplit_once('@')
            .map_or(String::new(), |(a, _)| format!("{a}@"));
        let path = if path.is_empty() {
            String::new()
        } else {
            format!("/{path}")
        };
        format!("redis://{auth}127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copy bytes one way; while frozen, hold them (the peer sees silence, not a closed socket).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

pub(crate) async fn raw() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(nivesh_testkit::redis_url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

pub(crate) async fn delete_prefix(prefix: &str) {
    let mut conn = raw().await;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// Run `test` with a fresh prefix and delete that prefix's keys afterwards, even on failure.
pub(crate) async fn with_prefix<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let prefix = format!("{}:", nivesh_testkit::unique("nivesh-store-test"));
    let outcome = AssertUnwindSafe(test(prefix.clone())).catch_unwind().await;
    delete_prefix(&prefix).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
