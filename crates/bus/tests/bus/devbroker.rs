use std::time::Duration;

use nivesh_bus::catalog::all_topics;
use nivesh_bus::devbroker::DevBroker;
use nivesh_bus::{BusProducer, OutgoingMessage};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::common::kafka;

/// The dev broker serves every catalog topic (retry and DLQ topics included) with the catalog's
/// partition count, over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_broker_creates_every_catalog_topic() {
    let broker = DevBroker::start(1).expect("dev broker");
    let bootstrap = broker.bootstrap_servers();
    let metadata = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("client");
        c.fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata")
    })
    .await
    .expect("metadata task");
    for t in all_topics() {
        let found = metadata.topics().iter().find(|m| m.name() == t.name);
        let found = found.unwrap_or_else(|| panic!("topic {} missing", t.name));
        assert_eq!(found.partitions().len() as i32, t.partitions, "{}", t.name);
    }
}

/// Readiness follows the broker: `check_connected` fails while every broker is down and
/// recovers when they are back, and a record sent meanwhile is delivered after recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_connected_follows_broker_up_and_down() {
    let broker = DevBroker::start(1).expect("dev broker");
    let producer =
        BusProducer::new(&kafka(&broker.bootstrap_servers(), "readiness")).expect("producer");
    producer
        .check_connected(Duration::from_secs(10))
        .await
        .expect("up");

    broker.broker_down(-1).expect("down");
    assert!(
        producer
            .check_connected(Duration::from_millis(500))
            .await
            .is_err(),
        "ready while the broker is down"
    );
    let pending = {
        let p = producer.clone();
        tokio::spawn(async move {
            p.send(OutgoingMessage {
                topic: "order.placed".into(),
                key: "investor-1".into(),
                payload: b"during outage".to_vec(),
                headers: vec![],
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    broker.broker_up(-1).expect("up");
    producer
        .check_connected(Duration::from_secs(10))
        .await
        .expect("ready again");
    let delivered = tokio::time::timeout(crate::common::WAIT, pending)
        .await
        .expect("delivery in time")
        .expect("task");
    assert!(delivered.expect("delivered after recovery").offset >= 0);
}
