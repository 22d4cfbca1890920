//! The seeded investor registry (`config/investors.json`): the demo investors who exist before
//! any onboarding, whether their KYC is VERIFIED, their tenant and the distributor who onboarded
//! them (for access control). Investors onboarded through the onboarding service come from its
//! events instead, and a stored entry overrides the file's (see `identity`).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

/// The KYC status an investor needs to place orders.
pub const KYC_VERIFIED: &str = "VERIFIED";

/// One investor as the registry file lists it. The PAN is kept as text and never logged.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Investor {
    pub investor_id: String,
    pub name: String,
    pub pan: String,
    pub kyc_status: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub mobile: Option<String>,
    /// The tenant the investor belongs to (default `nivesh`).
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// The distributor who onboarded the investor (they may act for them), if any.
    #[serde(default)]
    pub distributor_id: Option<String>,
}

fn default_tenant() -> String {
    nivesh_auth::DEFAULT_TENANT.to_string()
}

impl Investor {
    pub fn kyc_verified(&self) -> bool {
        self.kyc_status.eq_ignore_ascii_case(KYC_VERIFIED)
    }
}

#[derive(Deserialize)]
struct RegistryFile {
    investors: Vec<Investor>,
}

/// Investors by id, loaded once at start-up.
#[derive(Debug, Clone, Default)]
pub struct InvestorRegistry {
    by_id: HashMap<String, Investor>,
}

impl InvestorRegistry {
    /// Reads `{"investors": [{investorId, name, pan, kycStatus, email, mobile, tenant,
    /// distributorId}]}` (`tenant` defaults to `nivesh`, `distributorId` to none).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read the investor registry {} ([service] investor_registry): {e}",
                path.display()
            )
        })?;
        Self::from_json(&text).map_err(|e| format!("investor registry {}: {e}", path.display()))
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        let file: RegistryFile =
            serde_json::from_str(text).map_err(|e| format!("not a registry file: {e}"))?;
        let mut by_id = HashMap::with_capacity(file.investors.len());
        for inv in file.investors {
            if let Err(e) = nivesh_domain::InvestorId::parse(&inv.investor_id) {
                return Err(format!("bad investorId: {e}"));
            }
            let id = inv.investor_id.clone();
            if by_id.insert(id.clone(), inv).is_some() {
                return Err(format!("investor {id} is listed twice"));
            }
        }
        Ok(InvestorRegistry { by_id })
    }

    pub fn get(&self, investor_id: &str) -> Option<&Investor> {
        self.by_id.get(investor_id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository's seeded file loads, with verified and non-verified investors.
    #[test]
    fn loads_the_seeded_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/investors.json");
        let reg = InvestorRegistry::load(&path).unwrap();
        assert!(reg.len() >= 3);
        assert!(reg.get("INV0001").unwrap().kyc_verified());
        assert!(!reg.get("INV0099").unwrap().kyc_verified());
        assert!(reg.get("NOPE").is_none());
        // Access-control attributes: tenant defaults to nivesh; some investors were onboarded by
        // a distributor.
        assert_eq!(reg.get("INV0001").unwrap().tenant, "nivesh");
        assert_eq!(reg.get("INV0001").unwrap().distributor_id, None);
        assert_eq!(
            reg.get("INV0003").unwrap().distributor_id.as_deref(),
            Some("DST001")
        );
    }

    #[test]
    fn reads_tenant_and_distributor() {
        let file = r#"{"investors":[{"investorId":"A1","name":"a","pan":"x","kycStatus":"VERIFIED",
            "tenant":"acme","distributorId":"D7"}]}"#;
        let reg = InvestorRegistry::from_json(file).unwrap();
        let a = reg.get("A1").unwrap();
        assert_eq!(
            (a.tenant.as_str(), a.distributor_id.as_deref()),
            ("acme", Some("D7"))
        );
    }

    /// Duplicates and malformed ids are refused with a reason.
    #[test]
    fn rejects_bad_files() {
        let dup = r#"{"investors":[
            {"investorId":"A1","name":"a","pan":"x","kycStatus":"VERIFIED"},
            {"investorId":"A1","name":"b","pan":"y","kycStatus":"PENDING"}]}"#;
        assert!(
            InvestorRegistry::from_json(dup)
                .unwrap_err()
                .contains("twice")
        );
        let bad =
            r#"{"investors":[{"investorId":"a b","name":"a","pan":"x","kycStatus":"VERIFIED"}]}"#;
        assert!(InvestorRegistry::from_json(bad).is_err());
        assert!(InvestorRegistry::from_json("[]").is_err());
    }
}
