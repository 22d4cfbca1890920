//! Who may read whose portfolio.
//!
//! The rule is `nivesh_auth::Caller::can_access_investor`: the investor themself (token
//! `extension_InvestorId`), the distributor who onboarded them, or an admin of their tenant.
//! This service only learns investors from their transactions, which carry neither tenant nor
//! distributor, so it reads both from the seeded investor registry (`config/investors.json`,
//! the same file the order service validates against, until the onboarding service owns
//! investors). An investor the registry does not list belongs to the default tenant and was
//! onboarded by nobody: only they and admins see their portfolio (fail closed for distributors).

use std::collections::HashMap;
use std::path::Path;

use nivesh_auth::{Caller, DEFAULT_TENANT};
use serde::Deserialize;

/// Tenant and onboarding distributor per investor id.
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

impl InvestorDirectory {
    /// Reads the registry file. A missing or unreadable file gives an empty directory (with an
    /// error logged): the service still serves investors and admins, distributors see nothing.
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
                    "investor directory unavailable ([service] investor_registry): distributors will see no portfolios");
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

    /// May `caller` read `investor`'s portfolio?
    pub fn may_access(&self, caller: &Caller, investor: &str) -> bool {
        match self.by_id.get(investor) {
            Some(e) => caller.can_access_investor(&e.tenant, investor, e.distributor_id.as_deref()),
            None => caller.can_access_investor(DEFAULT_TENANT, investor, None),
        }
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
        assert!(dir.may_access(&d1, "A"));
        assert!(!dir.may_access(&d1, "B"), "other tenant");
        assert!(!dir.may_access(&d1, "UNLISTED"));
        let admin = caller(Role::Admin, "nivesh", None, None);
        assert!(dir.may_access(&admin, "UNLISTED"));
        assert!(!dir.may_access(&admin, "B"));
        let me = caller(Role::Investor, "nivesh", Some("UNLISTED"), None);
        assert!(dir.may_access(&me, "UNLISTED"));
    }

    #[test]
    fn the_seeded_registry_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/investors.json");
        let dir = InvestorDirectory::load(&path);
        let d1 = caller(Role::Distributor, "nivesh", None, Some("DST001"));
        assert!(dir.may_access(&d1, "INV0003"));
        assert!(!dir.may_access(&d1, "INV0001"));
        assert!(
            InvestorDirectory::load(Path::new("/nonexistent.json"))
                .by_id
                .is_empty()
        );
    }
}
