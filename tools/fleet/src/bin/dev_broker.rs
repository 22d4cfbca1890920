//! `dev-broker`: a Kafka-protocol broker for local runs and tests (librdkafka's mock cluster),
//! with every catalog topic created up front (it has no admin API, so the owning process must
//! create them). Prints `NIVESH_BOOTSTRAP=<host:port>` as its first line; runs until SIGTERM/Ctrl-C.

use anyhow::Result;
use clap::Parser;
use nivesh_bus::devbroker::DevBroker;

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
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    drop(broker);
    Ok(())
}
