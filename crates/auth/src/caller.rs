//! The authenticated caller and the access rules.

use std::fmt;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use http::request::Parts;
use nivesh_runtime::problem::Problem;
use serde::{Deserialize, Serialize};

use crate::guard::unauthorized_problem;

/// The tenant every local and single-tenant deployment uses.
pub const DEFAULT_TENANT: &str = "nivesh";

/// What a caller is allowed to do. Tokens carry them in the `roles` claim (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An end investor: their own folios, orders and portfolio only.
    Investor,
    /// A distributor (MFD/RIA): the investors they onboarded.
    Distributor,
    /// Operations staff: NAV files, SIP runs, allotment and payment lookups.
    Ops,
    /// Compliance officers: audit trail and regulatory exports.
    Compliance,
    /// Platform administrators of their tenant: everything in that tenant.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Investor,
        Role::Distributor,
        Role::Ops,
        Role::Compliance,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Investor => "investor",
            Role::Distributor => "distributor",
            Role::Ops => "ops",
            Role::Compliance => "compliance",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a role name, case-insensitively.
impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown role `{s}`"))
    }
}

/// Who is calling, from a verified token. Handlers take it as an argument (it is an axum
/// extractor reading what [`crate::require_auth`] put in the request's extensions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// `sub`.
    pub subject: String,
    /// `tid`.
    pub tenant: String,
    /// `roles` (unknown names ignored).
    pub roles: Vec<Role>,
    /// `scp` (space-separated in the token).
    pub scopes: Vec<String>,
    /// `extension_InvestorId` (Azure AD B2C custom attribute).
    pub investor_id: Option<String>,
    /// `extension_DistributorId`.
    pub distributor_id: Option<String>,
}

impl Caller {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn has_any_role(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has_role(*r))
    }

    /// May this caller see/act on investor `investor_id` of tenant `tenant`, onboarded by
    /// distributor `onboarded_by` (None if unknown)? investor: own id only; distributor: only
    /// investors they onboarded; admin: all of their tenant; everyone else: no. Always false
    /// across tenants, admin included.
    pub fn can_access_investor(
        &self,
        tenant: &str,
        investor_id: &str,
        onboarded_by: Option<&str>,
    ) -> bool {
        if self.tenant != tenant {
            return false;
        }
        if self.has_role(Role::Admin) {
            return true;
        }
        if self.has_role(Role::Investor) && self.investor_id.as_deref() == Some(investor_id) {
            return true;
        }
        if self.has_role(Role::Distributor)
            && let (Some(mine), Some(by)) = (self.distributor_id.as_deref(), onboarded_by)
            && mine == by
        {
            return true;
        }
        false
    }

    /// 403 unless the caller has `role`.
    pub fn require_role(&self, role: Role) -> Result<(), Problem> {
        self.require_any_role(&[role])
    }

    /// 403 unless the caller has at least one of `roles`.
    pub fn require_any_role(&self, roles: &[Role]) -> Result<(), Problem> {
        if self.has_any_role(roles) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(forbidden_problem(&format!(
                "This operation needs one of the roles: {}.",
                names.join(", ")
            )))
        }
    }

    /// 403 unless the caller has one of `roles` *and* belongs to the platform tenant
    /// ([`DEFAULT_TENANT`]): for platform-wide operations (NAV files, SIP runs, allotment and
    /// payment lookups) that no other tenant's staff may trigger.
    pub fn require_platform_role(&self, roles: &[Role]) -> Result<(), Problem> {
        self.require_any_role(roles)?;
        if self.tenant == DEFAULT_TENANT {
            Ok(())
        } else {
            Err(forbidden_problem(&format!(
                "This operation is reserved to staff of the `{DEFAULT_TENANT}` tenant."
            )))
        }
    }

    /// [`Caller::can_access_investor`] as a guard: `not_found` (the problem the caller would
    /// get for a resource that does not exist) if not, so another investor's resources are
    /// indistinguishable from missing ones.
    pub fn require_investor_access(
        &self,
        tenant: &str,
        investor_id: &str,
        onboarded_by: Option<&str>,
        not_found: impl FnOnce() -> Problem,
    ) -> Result<(), Problem> {
        if self.can_access_investor(tenant, investor_id, onboarded_by) {
            Ok(())
        } else {
            Err(not_found())
        }
    }
}

/// The 403 problem for a missing role.
pub fn forbidden_problem(detail: &str) -> Problem {
    Problem::forbidden(detail)
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| unauthorized_problem("Authentication required."))
    }
}

/// `Option<Caller>`: `None` on a public route.
impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(roles: &[Role], investor: Option<&str>, distributor: Option<&str>) -> Caller {
        Caller {
            subject: "u-1".into(),
            tenant: DEFAULT_TENANT.into(),
            roles: roles.to_vec(),
            scopes: vec![],
            investor_id: investor.map(str::to_string),
            distributor_id: distributor.map(str::to_string),
        }
    }

    /// Every role against every ownership situation. Each caller carries both an investor and
    /// a distributor id so that only the role decides which one counts.
    #[test]
    fn can_access_investor_matrix() {
        // (case, tenant, investor, onboarded_by)
        let cases = [
            ("own", DEFAULT_TENANT, "INV1", Some("DST9")),
            ("other investor", DEFAULT_TENANT, "INV2", Some("DST9")),
            ("other tenant", "acme", "INV1", Some("DST1")),
            ("onboarded by me", DEFAULT_TENANT, "INV3", Some("DST1")),
            ("onboarded by other", DEFAULT_TENANT, "INV3", Some("DST2")),
            ("onboarder unknown", DEFAULT_TENANT, "INV3", None),
        ];
        let expected: [(Role, [bool; 6]); 5] = [
            (Role::Investor, [true, false, false, false, false, false]),
            (Role::Distributor, [false, false, false, true, false, false]),
            (Role::Ops, [false; 6]),
            (Role::Compliance, [false; 6]),
            (Role::Admin, [true, true, false, true, true, true]),
        ];
        for (role, want) in expected {
            let c = caller(&[role], Some("INV1"), Some("DST1"));
            for ((name, tenant, inv, by), want) in cases.iter().zip(want) {
                assert_eq!(
                    c.can_access_investor(tenant, inv, *by),
                    want,
                    "{role} / {name}"
                );
            }
        }
    }

    /// An investor token without an investor id, or a distributor token without a distributor
    /// id, grants nothing (None never equals None here).
    #[test]
    fn missing_ids_grant_nothing() {
        let inv = caller(&[Role::Investor], None, None);
        assert!(!inv.can_access_investor(DEFAULT_TENANT, "INV1", None));
        let dst = caller(&[Role::Distributor], None, None);
        assert!(!dst.can_access_investor(DEFAULT_TENANT, "INV1", None));
        assert!(!dst.can_access_investor(DEFAULT_TENANT, "INV1", Some("DST1")));
    }

    /// Roles add up: an investor who is also a distributor sees both sets.
    #[test]
    fn roles_combine() {
        let c = caller(
            &[Role::Investor, Role::Distributor],
            Some("INV1"),
            Some("DST1"),
        );
        assert!(c.can_access_investor(DEFAULT_TENANT, "INV1", None));
        assert!(c.can_access_investor(DEFAULT_TENANT, "INV7", Some("DST1")));
        assert!(!c.can_access_investor(DEFAULT_TENANT, "INV7", Some("DST2")));
    }

    #[test]
    fn require_role_is_403_and_access_failure_is_the_callers_404() {
        let c = caller(&[Role::Investor], Some("INV1"), None);
        assert!(c.require_any_role(&[Role::Investor, Role::Admin]).is_ok());
        let p = c.require_role(Role::Ops).unwrap_err();
        assert_eq!(p.status, http::StatusCode::FORBIDDEN);
        let p = c
            .require_investor_access(DEFAULT_TENANT, "INV2", None, || {
                Problem::not_found("Order x not found.")
            })
            .unwrap_err();
        assert_eq!(p.status, http::StatusCode::NOT_FOUND);
        assert_eq!(p.detail.as_deref(), Some("Order x not found."));
    }

    #[test]
    fn platform_roles_need_the_platform_tenant() {
        let ops = caller(&[Role::Ops], None, None);
        assert!(ops.require_platform_role(&[Role::Ops, Role::Admin]).is_ok());
        let mut other = caller(&[Role::Admin], None, None);
        other.tenant = "acme".into();
        assert_eq!(
            other
                .require_platform_role(&[Role::Ops, Role::Admin])
                .unwrap_err()
                .status,
            http::StatusCode::FORBIDDEN
        );
        let inv = caller(&[Role::Investor], Some("INV1"), None);
        assert!(inv.require_platform_role(&[Role::Ops]).is_err());
    }

    #[test]
    fn roles_parse_case_insensitively() {
        assert_eq!("ADMIN".parse::<Role>().unwrap(), Role::Admin);
        assert_eq!(" Ops ".parse::<Role>().unwrap(), Role::Ops);
        assert!("superuser".parse::<Role>().is_err());
        assert_eq!(
            serde_json::to_string(&Role::Compliance).unwrap(),
            "\"compliance\""
        );
    }
}
