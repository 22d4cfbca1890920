//! The investor registry: who an investor is and how to reach them. Until onboarding owns
//! investors this is the seeded `config/investors.json`
//! (`{"investors": [{"investorId", "name", "pan", "kycStatus", "email", "mobile"}]}`), read once
//! at start-up. The PAN is never read: a notifier has no use for it.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

/// One investor's contact details.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Investor {
    pub investor_id: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub mobile: Option<String>,
}

#[derive(Deserialize)]
struct RegistryFile {
    investors: Vec<Investor>,
}

/// Investors by id.
#[derive(Debug, Clone, Default)]
pub struct InvestorRegistry {
    by_id: HashMap<String, Investor>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read the investor registry {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the investor registry {path} is not valid: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("the investor registry {path} lists investor {id} twice")]
    Duplicate { path: String, id: String },
}

impl InvestorRegistry {
    /// Read and check the registry file (fails on a missing file, bad JSON or a repeated id,
    /// so a misconfigured path stops the service at start-up instead of marking every message
    /// undeliverable).
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| RegistryError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: RegistryFile =
            serde_json::from_slice(&bytes).map_err(|source| RegistryError::Parse {
                path: shown.clone(),
                source,
            })?;
        Self::from_investors(file.investors)
            .map_err(|id| RegistryError::Duplicate { path: shown, id })
    }

    /// A registry of these investors; `Err(id)` when an id repeats.
    pub fn from_investors(investors: Vec<Investor>) -> Result<Self, String> {
        let mut by_id = HashMap::with_capacity(investors.len());
        for mut inv in investors {
            inv.email = inv.email.filter(|e| !e.trim().is_empty());
            inv.mobile = inv.mobile.filter(|m| !m.trim().is_empty());
            let id = inv.investor_id.clone();
            if by_id.insert(id.clone(), inv).is_some() {
                return Err(id);
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

    /// The seeded registry of the repository loads, with contacts.
    #[test]
    fn seeded_registry_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/investors.json");
        let reg = InvestorRegistry::load(&path).unwrap();
        assert!(!reg.is_empty());
        let first = reg.get("INV0001").expect("INV0001 is seeded");
        assert_eq!(first.name, "Aarav Sharma");
        assert!(first.email.as_deref().is_some_and(|e| e.contains('@')));
        assert!(
            first
                .mobile
                .as_deref()
                .is_some_and(|m| m.starts_with("+91"))
        );
        assert!(reg.get("NOPE").is_none());
    }

    /// Blank contacts count as absent; a repeated id is refused; a missing file is an error.
    #[test]
    fn checks() {
        let inv = |id: &str, email: &str| Investor {
            investor_id: id.into(),
            name: "X".into(),
            email: Some(email.into()),
            mobile: Some(" ".into()),
        };
        let reg = InvestorRegistry::from_investors(vec![inv("A", "a@x.in")]).unwrap();
        assert_eq!(reg.get("A").unwrap().mobile, None);
        assert_eq!(
            InvestorRegistry::from_investors(vec![inv("A", ""), inv("A", "")]).unwrap_err(),
            "A"
        );
        assert!(matches!(
            InvestorRegistry::load(Path::new("/nonexistent/investors.json")),
            Err(RegistryError::Read { .. })
        ));
    }
}
