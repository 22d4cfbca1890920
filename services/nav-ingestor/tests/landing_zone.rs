//! The landing zone through `object_store` on a local directory, into the real embedded store.

use std::sync::Arc;

use nivesh_events::AvroCodec;
use nivesh_nav_ingestor::ingest::Ingestor;
use nivesh_nav_ingestor::landing::{LandingSettings, LandingZone};
use nivesh_store::DocumentStore;
use nivesh_store::embedded::EmbeddedStore;

const FILE: &str = "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date\r\n \r\n\
Open Ended Schemes(Debt Scheme - Liquid Fund)\r\n \r\nTest Mutual Fund\r\n \r\n\
900001;-;-;Test Liquid Fund - Growth;1234.5678;25-Feb-2025\r\n\
900002;-;-;Test Liquid Fund - IDCW;N.A.;25-Feb-2025\r\n";

/// A file dropped under `amfi/` is ingested once (its NAV events land in the outbox); polling again
/// ingests nothing; files outside a source directory are ignored; a new file is picked up.
#[tokio::test]
async fn dropped_files_are_ingested_once() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn DocumentStore> = Arc::new(EmbeddedStore::in_memory().unwrap());
    let ingestor = Ingestor::new(
        store.clone(),
        AvroCodec::single_object(),
        Arc::new(tokio::sync::Notify::new()),
    );
    let settings = LandingSettings {
        url: dir.path().display().to_string(),
        poll_interval_ms: 100,
    };
    let zone = LandingZone::open(&settings, ingestor, store.clone()).unwrap();

    std::fs::create_dir_all(dir.path().join("amfi")).unwrap();
    std::fs::write(dir.path().join("amfi/NAVAll-2025-02-25.txt"), FILE).unwrap();
    std::fs::write(dir.path().join("stray.txt"), FILE).unwrap();
    assert_eq!(
        zone.poll_once().await.unwrap(),
        1,
        "the AMFI file, not the stray one"
    );
    let pending = store.outbox_pending(100).await.unwrap();
    assert_eq!(
        pending.len(),
        1,
        "one NAV event (the N.A. row is a rejected line)"
    );
    assert_eq!(pending[0].message.topic, "nav.raw-feeds");
    assert_eq!(pending[0].message.key, "900001");

    assert_eq!(zone.poll_once().await.unwrap(), 0, "nothing new");
    std::fs::write(
        dir.path().join("amfi/NAVAll-2025-02-26.txt"),
        FILE.replace("25-Feb-2025", "26-Feb-2025"),
    )
    .unwrap();
    assert_eq!(zone.poll_once().await.unwrap(), 1, "the new file");
    assert_eq!(store.outbox_pending(100).await.unwrap().len(), 2);
}
