//! `dev-broker`: a Kafka-protocol broker for local runs and tests (librdkafka's mock cluster),
//! with every catalog topic created up front (it has no admin API, so the owning process must
//! create them). Prints `NIVESH_BOOTSTRAP=<host:port>` as its first line; runs until SIGTERM/Ctrl-C.
//!
//! Fault injection for the chaos suite: SIGUSR1 takes every mock broker down (connections are
//! closed and refused, as when the cluster is unreachable), SIGUSR2 brings them all back up
//! (`Fleet::broker_down` / `Fleet::broker_up`). Topics and their records survive.

use anyhow::Result;
use clap::Parser;
use nivesh_bus::devbroker::DevBroker;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
struct Args {
    /// Number of mock brokers.
    #[arg(long, default_value_t = 1)]
    brokers: i32,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let broker = DevBroker::start(args.brokers)?;
    println!("NIVESH_BOOTSTRAP={}", broker.bootstrap_servers());
    eprintln!(
        "dev broker up with {} topics",
        nivesh_bus::catalog::all_topics().len()
    );
    let mut term = signal(SignalKind::terminate())?;
    let mut down = signal(SignalKind::user_defined1())?;
    let mut up = signal(SignalKind::user_defined2())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = down.recv() => {
                for id in 1..=args.brokers {
                    match broker.broker_down(id) {
                        Ok(()) => eprintln!("dev broker: broker {id} DOWN (SIGUSR1)"),
                        Err(e) => eprintln!("dev broker: broker {id} down failed: {e}"),
                    }
                }
            }
            _ = up.recv() => {
                for id in 1..=args.brokers {
                    match broker.broker_up(id) {
                        Ok(()) => eprintln!("dev broker: broker {id} UP (SIGUSR2)"),
                        Err(e) => eprintln!("dev broker: broker {id} up failed: {e}"),
                    }
                }
            }
        }
    }
    drop(broker);
    Ok(())
}
