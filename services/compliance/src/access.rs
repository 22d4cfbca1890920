//! Who may use the compliance API, and the time-boxed access grants.
//!
//! Every compliance endpoint calls [`ComplianceService::authorize`]: administrators always pass;
//! anyone else needs the `compliance` role AND an access grant for their token subject, in their
//! tenant, whose window `[validFrom, validUntil)` contains now. Investors and distributors never
//! pass (403). Grants are written by administrators only (`POST /v1/compliance/grants`), live in
//! container `grants` partitioned by tenant (document `g:<subject>:<grant id>`), and expire from
//! the store with a TTL shortly after their window ends. Tenant isolation: every read is scoped to
//! the caller's tenant; another tenant's data is a 404.

use chrono::{DateTime, Utc};
use nivesh_auth::{Caller, Role};
use nivesh_runtime::problem::Problem;
use nivesh_store::{Batch, IdRange, WriteOp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::service::ComplianceService;

/// Container of access grants.
pub const GRANTS: &str = "grants";

/// A stored access grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub grant_id: String,
    pub tenant: String,
    /// The token subject (`sub`) the grant is for.
    pub subject: String,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub reason: String,
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
}

impl Grant {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.valid_from <= now && now < self.valid_until
    }
}

fn grant_prefix(subject: &str) -> String {
    format!("g:{subject}:")
}

impl ComplianceService {
    /// Admin, or compliance role with an active grant; otherwise 403.
    pub async fn authorize(&self, caller: &Caller) -> Result<(), Problem> {
        if caller.has_role(Role::Admin) {
            return Ok(());
        }
        if !caller.has_role(Role::Compliance) {
            return Err(Problem::forbidden(
                "The compliance API needs the compliance role and an active access grant.",
            ));
        }
        let now = self.clock.now();
        let active = self
            .grants_of(&caller.tenant, &caller.subject)
            .await
            .map_err(Problem::internal)?
            .into_iter()
            .any(|g| g.is_active(now));
        if active {
            Ok(())
        } else {
            Err(Problem::forbidden(
                "No active access grant for this subject: ask an administrator for a time-boxed grant.",
            ))
        }
    }

    /// Every grant of `subject` in `tenant` (active or not, until the store expires them).
    pub async fn grants_of(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<Vec<Grant>, nivesh_store::Error> {
        let prefix = grant_prefix(subject);
        let docs = self
            .store
            .query_partition(
                GRANTS,
                tenant,
                IdRange {
                    from: Some(prefix.clone()),
                    to: Some(format!("{prefix}~")),
                    limit: None,
                    descending: false,
                },
            )
            .await?;
        Ok(docs
            .into_iter()
            .filter_map(|d| serde_json::from_value::<Grant>(d.body).ok())
            .filter(|g| g.subject == subject)
            .collect())
    }

    /// Store a grant (the caller must be an admin; checked by the API).
    pub async fn create_grant(
        &self,
        admin: &Caller,
        subject: &str,
        valid_from: DateTime<Utc>,
        valid_until: DateTime<Utc>,
        reason: &str,
    ) -> Result<Grant, nivesh_store::Error> {
        let grant = Grant {
            grant_id: Uuid::now_v7().to_string(),
            tenant: admin.tenant.clone(),
            subject: subject.to_string(),
            valid_from,
            valid_until,
            reason: reason.to_string(),
            granted_by: admin.subject.clone(),
            granted_at: self.clock.now(),
        };
        // Kept a day past its window (for the access audit to read), then expired by the store.
        let remaining = (valid_until - self.clock.now()).max(chrono::Duration::zero());
        let ttl = (remaining + chrono::Duration::days(1)).to_std().ok();
        let batch = Batch::new(GRANTS, &grant.tenant).op(WriteOp::Create {
            id: format!("{}{}", grant_prefix(subject), grant.grant_id),
            body: serde_json::to_value(&grant).expect("a grant serializes"),
            ttl,
        });
        self.store.commit(batch).await?;
        Ok(grant)
    }
}
