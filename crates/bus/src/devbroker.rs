//! A Kafka-protocol broker for local runs and tests: librdkafka's mock cluster, with every topic
//! of [`crate::catalog::all_topics`] created up front (it has no admin API, so topics must be
//! created by the process that owns it).
//!
//! The mock cluster is a raw librdkafka handle (neither `Send` nor `Sync`), so it lives on a
//! dedicated thread that owns it for its whole life and executes commands sent over a channel.
//! That makes [`DevBroker`] `Send + Sync`: it can sit in an `Arc`, in a long-running binary's
//! state or in a test fixture shared by tasks. Rejected: keeping the cluster on the caller's
//! stack, which forces every user to be single-threaded around it.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::error::KafkaResult;
use rdkafka::mocking::MockCluster;
pub use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::{Error, Result};

type Reply = mpsc::Sender<KafkaResult<()>>;

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        reply: Reply,
    },
    BrokerDown {
        id: i32,
        reply: Reply,
    },
    BrokerUp {
        id: i32,
        reply: Reply,
    },
    RoundTripTime {
        id: i32,
        delay: Duration,
        reply: Reply,
    },
    RequestErrors {
        api: RDKafkaApiKey,
        errors: Vec<RDKafkaRespErr>,
        reply: Reply,
    },
    ClearRequestErrors {
        api: RDKafkaApiKey,
        reply: Reply,
    },
    PartitionLeader {
        topic: String,
        partition: i32,
        broker: Option<i32>,
        reply: Reply,
    },
    TopicError {
        topic: String,
        error: RDKafkaRespErr,
        reply: Reply,
    },
}

/// A running mock cluster. Dropping it shuts the brokers down.
pub struct DevBroker {
    bootstrap: String,
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl DevBroker {
    /// Start `brokers` mock brokers on random localhost ports and create every catalog topic.
    pub fn start(brokers: i32) -> Result<Self> {
        let (cmd_tx, cmd_rx) = mpsc::channel::<Command>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String>>();
        let thread = std::thread::Builder::new()
            .name("dev-broker".into())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let bootstrap = cluster.bootstrap_servers();
                // Replication factor 1: the mock brokers share one process, replicas add nothing.
                let created = with_nudge(&bootstrap, || {
                    crate::catalog::all_topics().into_iter().try_for_each(|t| {
                        cluster.create_topic(&t.name, t.partitions, 1).map_err(|e| {
                            Error::DevBroker(format!("creating topic {}: {e}", t.name))
                        })
                    })
                });
                if let Err(e) = created {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                let _ = ready_tx.send(Ok(bootstrap.clone()));
                // Runs until every sender is gone (the DevBroker was dropped).
                for cmd in cmd_rx {
                    with_nudge(&bootstrap, || serve(&cluster, cmd));
                }
            })
            .map_err(|e| Error::DevBroker(format!("cannot start thread: {e}")))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| Error::DevBroker("thread exited during start".into()))??;
        Ok(DevBroker {
            bootstrap,
            commands: Some(cmd_tx),
            thread: Some(thread),
        })
    }

    /// `host:port,...` of the mock brokers.
    pub fn bootstrap_servers(&self) -> String {
        self.bootstrap.clone()
    }

    /// Create a topic (for tests that need one outside the catalog, e.g. a 1-partition topic).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let name = name.to_owned();
        self.call(|reply| Command::CreateTopic {
            name,
            partitions,
            reply,
        })
    }

    /// Disconnect broker `id` (or all with -1) and refuse new connections.
    pub fn broker_down(&self, id: i32) -> Result<()> {
        self.call(|reply| Command::BrokerDown { id, reply })
    }

    /// Let broker `id` (or all with -1) accept connections again.
    pub fn broker_up(&self, id: i32) -> Result<()> {
        self.call(|reply| Command::BrokerUp { id, reply })
    }

    /// Delay every response of broker `id` (or all with -1).
    pub fn round_trip_time(&self, id: i32, delay: Duration) -> Result<()> {
        self.call(|reply| Command::RoundTripTime { id, delay, reply })
    }

    /// Make the next requests of kind `api` fail with `errors`, one per request, in order.
    pub fn request_errors(&self, api: RDKafkaApiKey, errors: &[RDKafkaRespErr]) -> Result<()> {
        let errors = errors.to_vec();
        self.call(|reply| Command::RequestErrors { api, errors, reply })
    }

    /// Drop the pending injected errors for `api`.
    pub fn clear_request_errors(&self, api: RDKafkaApiKey) -> Result<()> {
        self.call(|reply| Command::ClearRequestErrors { api, reply })
    }

    /// Move a partition's leadership (`None`: leaderless).
    pub fn partition_leader(&self, topic: &str, partition: i32, broker: Option<i32>) -> Result<()> {
        let topic = topic.to_owned();
        self.call(|reply| Command::PartitionLeader {
            topic,
            partition,
            broker,
            reply,
        })
    }

    /// Make metadata requests for `topic` report `error`.
    pub fn topic_error(&self, topic: &str, error: RDKafkaRespErr) -> Result<()> {
        let topic = topic.to_owned();
        self.call(|reply| Command::TopicError {
            topic,
            error,
            reply,
        })
    }

    fn call(&self, make: impl FnOnce(Reply) -> Command) -> Result<()> {
        let (reply_tx, reply_rx) = mpsc::channel();
        let tx = self
            .commands
            .as_ref()
            .ok_or_else(|| Error::DevBroker("stopped".into()))?;
        tx.send(make(reply_tx))
            .map_err(|_| Error::DevBroker("thread is gone".into()))?;
        reply_rx
            .recv()
            .map_err(|_| Error::DevBroker("thread is gone".into()))?
            .map_err(Error::from)
    }
}

/// Run `op` (which waits on the mock cluster's thread) while poking the cluster's listener.
///
/// librdkafka's mock thread sometimes misses the wake-up for a queued request (its queue's
/// "wake-up already sent" flag races with the reset after serving) and then only serves it at
/// its next 1 s poll timeout; creating the catalog's ~40 topics took 5-10 s that way. Any
/// socket activity ends the poll and serves the queue, so while `op` is pending a helper thread
/// opens and drops a TCP connection every few milliseconds. Rejected: the FFI call that shortens
/// the poll (needs `unsafe`, forbidden here).
fn with_nudge<T>(bootstrap: &str, op: impl FnOnce() -> T) -> T {
    let addr = bootstrap
        .split(',')
        .next()
        .and_then(|a| a.to_socket_addrs().ok())
        .and_then(|mut a| a.next());
    let Some(addr) = addr else { return op() };
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Most requests are served at once; only nudge those that are not.
            std::thread::sleep(Duration::from_millis(5));
            while !done.load(Ordering::Acquire) {
                let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(100));
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let out = op();
        done.store(true, Ordering::Release);
        out
    })
}

fn serve(cluster: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>, cmd: Command) {
    let (result, reply) = match cmd {
        Command::CreateTopic {
            name,
            partitions,
            reply,
        } => (cluster.create_topic(&name, partitions, 1), reply),
        Command::BrokerDown { id, reply } => (cluster.broker_down(id), reply),
        Command::BrokerUp { id, reply } => (cluster.broker_up(id), reply),
        Command::RoundTripTime { id, delay, reply } => {
            (cluster.broker_round_trip_time(id, delay), reply)
        }
        Command::RequestErrors { api, errors, reply } => {
            cluster.request_errors(api, &errors);
            (Ok(()), reply)
        }
        Command::ClearRequestErrors { api, reply } => {
            cluster.clear_request_errors(api);
            (Ok(()), reply)
        }
        Command::PartitionLeader {
            topic,
            partition,
            broker,
            reply,
        } => (cluster.partition_leader(&topic, partition, broker), reply),
        Command::TopicError {
            topic,
            error,
            reply,
        } => (cluster.topic_error(&topic, error), reply),
    };
    // The caller may have given up waiting; nothing to do then.
    let _ = reply.send(result);
}

impl Drop for DevBroker {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop, which drops (destroys) the cluster.
        self.commands.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
