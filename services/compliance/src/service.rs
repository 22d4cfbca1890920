//! [`ComplianceService`]: what the API, the consumer and the export jobs share, plus the ledger
//! partition naming and the audit of compliance's own data access.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use nivesh_auth::Caller;
use nivesh_domain::time::Clock;
use nivesh_events::AvroCodec;
use nivesh_runtime::problem::Problem;
use nivesh_store::DocumentStore;
use serde_json::{Value, json};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::Config;
use crate::crypto::{KeyRing, reveal};
use crate::export::{DeliveryPort, Layout};
use crate::ledger::{Head, Ledger, LedgerRecord, NewRecord};

/// Event type of the access records compliance writes about itself.
pub const ACCESS_EVENT: &str = "nivesh.compliance.DataAccessed";
/// Event type of an erasure requested through the compliance API.
pub const ERASURE_EVENT: &str = "nivesh.compliance.ErasureRequested";

/// The ledger partition of a NAV event's scheme.
pub fn scheme_partition(scheme_code: &str) -> String {
    format!("scheme-{scheme_code}")
}

/// The ledger partition of the access records of `subject` in `tenant`.
pub fn access_partition(tenant: &str, subject: &str) -> String {
    format!("access-{tenant}-{subject}")
}

/// Is `partition` an investor's (whose PII is encrypted under the investor's key)?
pub fn is_investor_partition(partition: &str) -> bool {
    !partition.starts_with("scheme-") && !partition.starts_with("access-")
}

/// The compliance service's shared state.
pub struct ComplianceService {
    pub(crate) store: Arc<dyn DocumentStore>,
    pub(crate) ledger: Ledger,
    pub(crate) keys: KeyRing,
    pub(crate) codec: AvroCodec,
    pub(crate) outbox_notify: Arc<Notify>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: Config,
    pub(crate) layout: Layout,
    pub(crate) delivery: Arc<dyn DeliveryPort>,
}

impl ComplianceService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn DocumentStore>,
        keys: KeyRing,
        codec: AvroCodec,
        outbox_notify: Arc<Notify>,
        clock: Arc<dyn Clock>,
        config: Config,
        layout: Layout,
        delivery: Arc<dyn DeliveryPort>,
    ) -> Self {
        let ledger = Ledger::new(store.clone(), config.retention());
        ComplianceService {
            store,
            ledger,
            keys,
            codec,
            outbox_notify,
            clock,
            config,
            layout,
            delivery,
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Append an access record (who read or did what) to the caller's access partition. Every
    /// compliance API call does this, allowed or not, before answering.
    pub async fn audit_access(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        outcome: &str,
    ) -> Result<(), Problem> {
        let record = NewRecord {
            partition: access_partition(&caller.tenant, &caller.subject),
            tenant: Some(caller.tenant.clone()),
            tenant_stated: true,
            event_id: Uuid::now_v7().to_string(),
            event_type: ACCESS_EVENT.into(),
            trace_id: current_trace_id(),
            actor: caller.subject.clone(),
            occurred_at: self.now(),
            payload: json!({
                "action": action,
                "target": target,
                "outcome": outcome,
                "subject": caller.subject,
                "tenant": caller.tenant,
                "roles": caller.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            }),
        };
        self.ledger
            .append(&record)
            .await
            .map(|_| ())
            .map_err(|e| Problem::internal(format!("could not audit the access: {e}")))
    }

    /// The head of a partition if the caller's tenant may see it (shared partitions: anyone
    /// authorised); `None` (answer 404) when it does not exist or belongs to another tenant.
    pub async fn visible_head(
        &self,
        caller: &Caller,
        partition: &str,
    ) -> Result<Option<Head>, Problem> {
        let head = self
            .ledger
            .head(partition)
            .await
            .map_err(Problem::internal)?;
        Ok(head.filter(|h| h.tenant.as_deref().is_none_or(|t| t == caller.tenant)))
    }

    /// Records of an investor partition with their PII revealed (or "[erased]").
    pub async fn revealed(
        &self,
        partition: &str,
        records: Vec<LedgerRecord>,
    ) -> Result<Vec<LedgerRecord>, Problem> {
        if !is_investor_partition(partition) {
            return Ok(records);
        }
        let key = self
            .keys
            .key_for_read(partition)
            .await
            .map_err(Problem::internal)?;
        Ok(records
            .into_iter()
            .map(|mut r| {
                r.payload = reveal(&r.payload, partition, key.as_ref());
                r
            })
            .collect())
    }
}

/// The W3C trace id of the current span (all zeros when tracing is off): API access records
/// carry the trace of the request.
pub(crate) fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let cx = tracing::Span::current().context();
    let id = cx.span().span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}

/// The W3C trace id carried by a `traceparent` header value (`00-<trace id>-<span id>-<flags>`).
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.trim().split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    (trace.len() == 32
        && trace.bytes().all(|b| b.is_ascii_hexdigit())
        && trace.bytes().any(|b| b != b'0'))
    .then(|| trace.to_ascii_lowercase())
}

/// A string field of a JSON object.
pub(crate) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trace id is the second field of a valid traceparent; invalid ones give none.
    #[test]
    fn trace_ids() {
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of("garbage"), None);
    }

    #[test]
    fn partitions() {
        assert!(is_investor_partition("INV0001"));
        assert!(!is_investor_partition(&scheme_partition("119551")));
        assert!(!is_investor_partition(&access_partition("nivesh", "u1")));
    }
}
