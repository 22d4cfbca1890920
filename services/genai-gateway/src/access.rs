//! Who may do what, in one place (on top of the identity contract in `nivesh-auth`).
//!
//! | endpoint | roles | data scope |
//! | --- | --- | --- |
//! | `POST /v1/genai/ask` | investor (own portfolio), distributor (`investorId` of an investor they onboarded), admin (`investorId` of the tenant) | the one investor's partition `{tenant}:{investorId}` + public fund facts + the tenant's documents |
//! | `GET /v1/genai/anomalies[...]` | any authenticated role | public NAV data |
//! | `POST /v1/genai/documents` | distributor, ops, compliance, admin | the tenant's documents |
//! | `POST /v1/genai/support/drafts` | ops, admin | fund facts + the tenant's documents; the investor's portfolio only when the caller may access that investor |
//!
//! Role failures are 403; asking about an investor one may not see is 404 (whether the investor
//! exists is not revealed). Advice beyond the standard scope needs the `genai.advice` scope.

use nivesh_auth::{Caller, Role};
use nivesh_runtime::problem::Problem;

/// The scope that permits buy/sell wording (a registered investment adviser's token).
pub const ADVICE_SCOPE: &str = "genai.advice";

fn not_found() -> Problem {
    Problem::not_found("No such investor.")
}

/// The investor an `ask` is about, before the access check: the requested one, else the
/// caller's own. Role failures are 403.
pub fn ask_target(caller: &Caller, requested: Option<&str>) -> Result<String, Problem> {
    caller.require_any_role(&[Role::Investor, Role::Distributor, Role::Admin])?;
    let target = match (requested, caller.investor_id.as_deref()) {
        (Some(r), _) => r.to_string(),
        (None, Some(own)) if caller.has_role(Role::Investor) => own.to_string(),
        (None, _) => {
            return Err(Problem::unprocessable(
                "investorId is required for a caller without an investor id of their own",
            ));
        }
    };
    nivesh_domain::InvestorId::parse(&target).map_err(|e| Problem::bad_request(e.to_string()))?;
    Ok(target)
}

/// May the caller use this investor's portfolio? `onboarded_by` is the distributor that
/// onboarded the investor (from `investor.onboarded`), if known. 404 when not (whether the
/// investor exists is not revealed).
pub fn ask_access(
    caller: &Caller,
    target: &str,
    onboarded_by: Option<&str>,
) -> Result<(), Problem> {
    caller.require_investor_access(&caller.tenant, target, onboarded_by, not_found)
}

/// Anomalies are public NAV data: any authenticated caller.
pub fn anomalies(_caller: &Caller) -> Result<(), Problem> {
    Ok(())
}

pub fn documents(caller: &Caller) -> Result<(), Problem> {
    caller.require_any_role(&[Role::Distributor, Role::Ops, Role::Compliance, Role::Admin])
}

pub fn support_drafts(caller: &Caller) -> Result<(), Problem> {
    caller.require_any_role(&[Role::Ops, Role::Admin])
}

/// May a support draft include this investor's portfolio?
pub fn draft_may_use_investor(caller: &Caller, investor: &str, onboarded_by: Option<&str>) -> bool {
    caller.can_access_investor(&caller.tenant, investor, onboarded_by)
}

pub fn advice_allowed(caller: &Caller) -> bool {
    caller.scopes.iter().any(|s| s == ADVICE_SCOPE)
}

/// The role quotas are charged to: the most privileged role the caller has.
pub fn quota_role(caller: &Caller) -> String {
    caller
        .roles
        .iter()
        .max()
        .map_or("none", |r| r.as_str())
        .to_string()
}
