//! The RU charge of every request is recorded as `nivesh_cosmos_request_charge{container,
//! operation}` (a histogram), throttled requests included. Own test binary: it installs the
//! process-wide metrics recorder.

use std::sync::Arc;
use std::time::Duration;

use azure_core::http::StatusCode;
use azure_data_cosmos::fault_injection::{
    CustomResponseBuilder, FaultInjectionConditionBuilder, FaultInjectionResultBuilder,
    FaultInjectionRuleBuilder, FaultOperationType,
};
use metrics_exporter_prometheus::PrometheusBuilder;
use nivesh_store::{Batch, DocumentStore, IdRange, WriteOp};
use nivesh_store_cosmos::RetryPolicy;
use nivesh_store_cosmos::testing::Emulator;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_charge_is_recorded_by_container_and_operation() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("first recorder of this test binary");

    let throttle = CustomResponseBuilder::new(StatusCode::TooManyRequests)
        .with_header("x-ms-retry-after-ms", "10")
        .with_header("x-ms-request-charge", "0.25")
        .build();
    let rule = Arc::new(
        FaultInjectionRuleBuilder::new(
            "one-429",
            FaultInjectionResultBuilder::new()
                .with_custom_response(throttle)
                .build(),
        )
        .with_condition(
            FaultInjectionConditionBuilder::new()
                .with_operation_type(FaultOperationType::BatchItem)
                .build(),
        )
        .with_hit_limit(1)
        .build(),
    );
    let emulator = Emulator::new();
    emulator.provision("nivesh-metrics", &["navs"], 1);
    let store = emulator
        .store("nivesh-metrics", vec![rule], RetryPolicy::default())
        .await;
    store
        .commit(Batch::new("navs", "119551").op(WriteOp::Upsert {
            id: "2025-02-25".into(),
            body: json!({"nav": "101.2345"}),
            ttl: Some(Duration::from_secs(60)),
        }))
        .await
        .unwrap();
    store
        .get("navs", "119551", "2025-02-25")
        .await
        .unwrap()
        .unwrap();
    store
        .query_partition("navs", "119551", IdRange::default())
        .await
        .unwrap();

    let text = handle.render();
    let count = |operation: &str| -> f64 {
        let prefix = format!(
            "nivesh_cosmos_request_charge_count{{container=\"navs\",operation=\"{operation}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    // The throttled attempt is billed and recorded too: two batch requests.
    assert_eq!(count("batch"), 2.0);
    assert!(count("read") >= 1.0);
    assert!(count("query") >= 1.0);
    let sum_prefix = "nivesh_cosmos_request_charge_sum{container=\"navs\",operation=\"batch\"} ";
    let sum: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(sum_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no batch charge sum in\n{text}"));
    assert!(
        sum > 0.25,
        "the successful batch's charge is added to the 429's 0.25: {sum}"
    );
    assert!(
        text.contains("nivesh_cosmos_throttled_total{container=\"navs\",operation=\"batch\"} 1")
    );
}
