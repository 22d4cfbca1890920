//! Who may read whose portfolio.
//!
//! The rule is `nivesh_auth::Caller::can_access_investor`: the investor themself (token
//! `extension_InvestorId`), the distributor who onboarded them, or an admin of their tenant.
//! Transactions carry neither tenant nor distributor, so the owner of an investor comes from:
//!
//! 1. the onboarding service's events: the `portfolio` group consumes `investor.onboarded` and
//!    `investor.erased` (keyed by investor id) into [`InvestorOwner`], document [`OWNER_DOC`]
//!    in the investor's partition of `portfolio`, written with the inbox marker in one batch
//!    (`handler`). Either event creates it (the topics are not co-ordered); `investor.onboarded`
//!    sets the tenant and distributor, `investor.erased` fills them only when still unknown and
//!    records the erasure time. Erasure does not change access: portfolio holds no personal
//!    data, and the holdings and transactions are records the platform must keep.
//! 2. the seeded registry (`config/investors.json`, `[service] investor_registry`): the
//!    bootstrap for the demo investors. A stored owner overrides it (tenant; distributor once an
//!    event named one).
//!
//! The stored owner is read on every check (a point read in the investor's partition): the
//! store is the source of truth across replicas, so a distributor sees an investor's portfolio
//! as soon as this replica's group has applied the onboarding event, on every replica. An
//! investor known to neither belongs to the default tenant and was onboarded by nobody: only
//! they and admins see their portfolio (fail closed for distributors).

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use nivesh_auth::{Caller, DEFAULT_TENANT};
use nivesh_events::{InvestorErased, InvestorOnboarded};
use nivesh_store::DocumentStore;
use serde::{Deserialize, Serialize};

use crate::model::PORTFOLIO;

/// The owner document's id in the investor's partition of [`PORTFOLIO`].
pub const OWNER_DOC: &str = "investor";

/// Tenant and onboarding distributor per investor id, from the registry file.
#[derive(Debug, Clone, Default)]
pub struct InvestorDirectory {
    by_id: HashMap<String, Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    investor_id: String,
    #[serde(default = "default_tenant")]
    tenant: String,
    #[serde(default)]
    distributor_id: Option<String>,
}

fn default_tenant() -> String {
    DEFAULT_TENANT.to_string()
}

#[derive(Deserialize)]
struct RegistryFile {
    investors: Vec<Entry>,
}

/// Who an investor belongs to, as the onboarding service's events said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvestorOwner {
    pub investor_id: String,
    pub tenant: String,
    pub distributor_id: Option<String>,
    pub onboarded_at: Option<DateTime<Utc>>,
    pub erased_at: Option<DateTime<Utc>>,
}

/// An identity event the `portfolio` group applies.
#[derive(Debug)]
pub enum OwnerEvent {
    Onboarded(InvestorOnboarded),
    Erased(InvestorErased),
}

impl OwnerEvent {
    pub fn investor_id(&self) -> &str {
        match self {
            OwnerEvent::Onboarded(e) => &e.investor_id,
            OwnerEvent::Erased(e) => &e.investor_id,
        }
    }

    pub fn event_id(&self) -> String {
        match self {
            OwnerEvent::Onboarded(e) => e.meta.event_id.to_string(),
            OwnerEvent::Erased(e) => e.meta.event_id.to_string(),
        }
    }
}

impl InvestorOwner {
    /// The owner after `event`, from `current` (`None`: not known yet). The same events in any
    /// order, each any number of times, give the same owner.
    pub fn apply(current: Option<InvestorOwner>, event: &OwnerEvent) -> InvestorOwner {
        match event {
            OwnerEvent::Onboarded(e) => {
                let mut o =
                    current.unwrap_or_else(|| InvestorOwner::new(&e.investor_id, &e.tenant));
                o.tenant = e.tenant.clone();
                if e.distributor_id.is_some() {
                    o.distributor_id = e.distributor_id.clone();
                }
                o.onboarded_at = Some(e.onboarded_at);
                o
            }
            OwnerEvent::Erased(e) => {
                let mut o =
                    current.unwrap_or_else(|| InvestorOwner::new(&e.investor_id, &e.tenant));
                if o.onboarded_at.is_none() {
                    // Only onboarding's own event is authoritative; erasure fills the gap.
                    o.tenant = e.tenant.clone();
                    if o.distributor_id.is_none() {
                        o.distributor_id = e.distributor_id.clone();
                    }
                }
                if o.erased_at.is_none_or(|at| e.erased_at < at) {
                    o.erased_at = Some(e.erased_at);
                }
                o
            }
        }
    }

    fn new(investor_id: &str, tenant: &str) -> Self {
        InvestorOwner {
            investor_id: investor_id.to_string(),
            tenant: tenant.to_string(),
            distributor_id: None,
            onboarded_at: None,
            erased_at: None,
        }
    }
}

/// The stored owner of `investor`, if the identity events named one.
pub async fn stored_owner(
    store: &dyn DocumentStore,
    investor: &str,
) -> Result<Option<InvestorOwner>, String> {
    let Some(doc) = store
        .get(PORTFOLIO, investor, OWNER_DOC)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    serde_json::from_value(doc.body)
        .map(Some)
        .map_err(|e| format!("owner document of {investor} is unreadable: {e}"))
}

impl InvestorDirectory {
    /// Reads the registry file. A missing or unreadable file gives an empty directory (with an
    /// error logged): the service still serves investors and admins, and distributors see the
    /// investors the identity events told it about.
    pub fn load(path: &Path) -> Self {
        let loaded = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| Self::from_json(&text));
        match loaded {
            Ok(dir) => {
                tracing::info!(investors = dir.by_id.len(), path = %path.display(), "investor directory loaded");
                dir
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e,
                    "investor directory unavailable ([service] investor_registry): distributors will see only onboarded investors");
                InvestorDirectory::default()
            }
        }
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        let file: RegistryFile =
            serde_json::from_str(text).map_err(|e| format!("not a registry file: {e}"))?;
        Ok(InvestorDirectory {
            by_id: file
                .investors
                .into_iter()
                .map(|e| (e.investor_id.clone(), e))
                .collect(),
        })
    }

    /// May `caller` read `investor`'s portfolio, given the stored owner (if any)?
    pub fn may_access_with(
        &self,
        stored: Option<&InvestorOwner>,
        caller: &Caller,
        investor: &str,
    ) -> bool {
        let file = self.by_id.get(investor);
        match (stored, file) {
            (Some(o), file) => caller.can_access_investor(
                &o.tenant,
                investor,
                o.distributor_id
                    .as_deref()
                    .or_else(|| file.and_then(|f| f.distributor_id.as_deref())),
            ),
            (None, Some(e)) => {
                caller.can_access_investor(&e.tenant, investor, e.distributor_id.as_deref())
            }
            (None, None) => caller.can_access_investor(DEFAULT_TENANT, investor, None),
        }
    }

    /// May `caller` read `investor`'s portfolio? Reads the stored owner from `store`.
    pub async fn may_access(
        &self,
        store: &dyn DocumentStore,
        caller: &Caller,
        investor: &str,
    ) -> Result<bool, String> {
        let stored = stored_owner(store, investor).await?;
        Ok(self.may_access_with(stored.as_ref(), caller, investor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nivesh_auth::Role;

    fn caller(
        role: Role,
        tenant: &str,
        investor: Option<&str>,
        distributor: Option<&str>,
    ) -> Caller {
        Caller {
            subject: "s".into(),
            tenant: tenant.into(),
            roles: vec![role],
            scopes: vec![],
            investor_id: investor.map(str::to_string),
            distributor_id: distributor.map(str::to_string),
        }
    }

    #[test]
    fn registry_attributes_decide() {
        let dir = InvestorDirectory::from_json(
            r#"{"investors":[{"investorId":"A","name":"x","distributorId":"D1"},
                             {"investorId":"B","tenant":"acme","distributorId":"D1"}]}"#,
        )
        .unwrap();
        let d1 = caller(Role::Distributor, "nivesh", None, Some("D1"));
        assert!(dir.may_access_with(None, &d1, "A"));
        assert!(!dir.may_access_with(None, &d1, "B"), "other tenant");
        assert!(!dir.may_access_with(None, &d1, "UNLISTED"));
        let admin = caller(Role::Admin, "nivesh", None, None);
        assert!(dir.may_access_with(None, &admin, "UNLISTED"));
        assert!(!dir.may_access_with(None, &admin, "B"));
        let me = caller(Role::Investor, "nivesh", Some("UNLISTED"), None);
        assert!(dir.may_access_with(None, &me, "UNLISTED"));
    }

    #[test]
    fn the_seeded_registry_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/investors.json");
        let dir = InvestorDirectory::load(&path);
        let d1 = caller(Role::Distributor, "nivesh", None, Some("DST001"));
        assert!(dir.may_access_with(None, &d1, "INV0003"));
        assert!(!dir.may_access_with(None, &d1, "INV0001"));
        assert!(
            InvestorDirectory::load(Path::new("/nonexistent.json"))
                .by_id
                .is_empty()
        );
    }

    fn onboarded(distributor: Option<&str>, tenant: &str) -> OwnerEvent {
        OwnerEvent::Onboarded(InvestorOnboarded {
            meta: nivesh_events::EventMeta::new::<InvestorOnboarded>("onboarding", None),
            investor_id: "NEW1".into(),
            tenant: tenant.into(),
            distributor_id: distributor.map(str::to_string),
            pan_masked: "XXXXXX234F".into(),
            name: "Asha".into(),
            kyc_status: "REGISTERED".into(),
            onboarded_at: Utc::now(),
        })
    }

    fn erased(distributor: Option<&str>) -> OwnerEvent {
        OwnerEvent::Erased(InvestorErased {
            meta: nivesh_events::EventMeta::new::<InvestorErased>("onboarding", None),
            investor_id: "NEW1".into(),
            tenant: "nivesh".into(),
            distributor_id: distributor.map(str::to_string),
            erased_by: "admin".into(),
            erased_at: Utc::now(),
        })
    }

    /// Onboarded and erased give the same owner in either order and on redelivery.
    #[test]
    fn owner_is_order_insensitive() {
        let (a, b) = (onboarded(Some("D9"), "nivesh"), erased(Some("D9")));
        let ab = InvestorOwner::apply(Some(InvestorOwner::apply(None, &a)), &b);
        let ba = InvestorOwner::apply(Some(InvestorOwner::apply(None, &b)), &a);
        assert_eq!(ab, ba);
        assert_eq!(InvestorOwner::apply(Some(ab.clone()), &a), ab);
        assert_eq!(ab.distributor_id.as_deref(), Some("D9"));
        assert!(ab.erased_at.is_some());
    }

    /// A stored owner overrides the file: the event's distributor reads, another does not.
    #[test]
    fn stored_owner_decides() {
        let dir = InvestorDirectory::from_json(
            r#"{"investors":[{"investorId":"NEW1","distributorId":"D1"}]}"#,
        )
        .unwrap();
        let owner = InvestorOwner::apply(None, &onboarded(Some("D9"), "nivesh"));
        let d9 = caller(Role::Distributor, "nivesh", None, Some("D9"));
        let d1 = caller(Role::Distributor, "nivesh", None, Some("D1"));
        assert!(dir.may_access_with(Some(&owner), &d9, "NEW1"));
        assert!(!dir.may_access_with(Some(&owner), &d1, "NEW1"));
        assert!(dir.may_access_with(None, &d1, "NEW1"));
        let acme = InvestorOwner::apply(None, &onboarded(Some("D9"), "acme"));
        assert!(
            !dir.may_access_with(Some(&acme), &d9, "NEW1"),
            "other tenant"
        );
    }
}
