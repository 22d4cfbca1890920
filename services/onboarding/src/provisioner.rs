//! The hook for creating an investor's login once KYC is VALIDATED.
//!
//! [`CredentialProvisioner`] is a port: the flow calls it after committing a VALIDATED verdict
//! (and again on a redelivered callback until it succeeds, so a failure is retried by the
//! KRA's callback retries). The default, [`RecordingProvisioner`], records a
//! `credential-request` document in the investor's partition (container `investors`), which
//! the identity team's job (Azure AD B2C user creation with `extension_InvestorId`) picks up.
//! Recording is idempotent: the document is created once.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use nivesh_store::{Batch, DocumentStore, WriteOp};

/// What a provisioner needs to create the investor's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRequest {
    pub investor_id: String,
    pub tenant: String,
    pub distributor_id: Option<String>,
    pub requested_at: DateTime<Utc>,
}

#[async_trait]
pub trait CredentialProvisioner: Send + Sync + 'static {
    /// Create (or request) the account. Must be idempotent per investor.
    async fn provision(&self, request: &CredentialRequest) -> Result<(), String>;
}

/// The document id of the recorded request.
pub const REQUEST_DOC: &str = "credential-request";

/// Records the request in the store (see the module docs).
pub struct RecordingProvisioner {
    pub store: Arc<dyn DocumentStore>,
    pub container: &'static str,
}

#[async_trait]
impl CredentialProvisioner for RecordingProvisioner {
    async fn provision(&self, r: &CredentialRequest) -> Result<(), String> {
        let batch = Batch::new(self.container, &r.investor_id).op(WriteOp::Create {
            id: REQUEST_DOC.into(),
            body: serde_json::json!({
                "kind": REQUEST_DOC,
                "investor_id": r.investor_id,
                "tenant": r.tenant,
                "distributor_id": r.distributor_id,
                "status": "REQUESTED",
                "requested_at": r.requested_at,
            }),
            ttl: None,
        });
        match self.store.commit(batch).await {
            Ok(_) | Err(nivesh_store::Error::Conflict { .. }) => {
                tracing::info!(investor_id = %r.investor_id, "investor credential requested");
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}
