//! Who may do what, in one place (on top of `nivesh_auth::Caller`).
//!
//! - onboarding investors and recording leads: distributors (always under their own
//!   distributor id) and admins (on behalf of a distributor named in the body, or none);
//! - an investor record: the investor themself, the distributor who onboarded them, an admin
//!   of the tenant ([`Caller::can_access_investor`]); anyone else gets the 404 a missing
//!   investor gets, so ids cannot be probed;
//! - a distributor's lists (investors, leads, commissions): that distributor or an admin; 403
//!   otherwise (distributor ids are not secret, the data is);
//! - erasure: admin or compliance of the tenant.

use nivesh_auth::{Caller, Role};
use nivesh_runtime::problem::Problem;

use crate::model::InvestorView;

pub fn require_onboarder(caller: &Caller) -> Result<(), Problem> {
    caller.require_any_role(&[Role::Distributor, Role::Admin])
}

pub fn require_eraser(caller: &Caller) -> Result<(), Problem> {
    caller.require_any_role(&[Role::Admin, Role::Compliance])
}

/// The distributor a new investor or lead is recorded under. Admins choose (or leave it
/// empty); a distributor gets their own id, and naming another is refused.
pub fn acting_distributor(
    caller: &Caller,
    requested: Option<&str>,
) -> Result<Option<String>, Problem> {
    if caller.has_role(Role::Admin) {
        return Ok(requested.map(str::to_string));
    }
    let mine = caller
        .distributor_id
        .as_deref()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| Problem::forbidden("the token carries no distributor id"))?;
    match requested {
        Some(other) if other != mine => Err(Problem::forbidden(
            "a distributor onboards only under their own distributor id",
        )),
        _ => Ok(Some(mine.to_string())),
    }
}

/// A distributor's own data, or an admin.
pub fn require_distributor_scope(caller: &Caller, distributor_id: &str) -> Result<(), Problem> {
    if caller.has_role(Role::Admin)
        || (caller.has_role(Role::Distributor)
            && caller.distributor_id.as_deref() == Some(distributor_id))
    {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "only this distributor or an administrator may see this",
        ))
    }
}

/// The investor themself, their distributor, or an admin of the tenant; else `not_found()`.
pub fn require_investor(
    caller: &Caller,
    view: &InvestorView,
    not_found: impl FnOnce() -> Problem,
) -> Result<(), Problem> {
    caller.require_investor_access(
        &view.tenant,
        &view.investor_id,
        view.distributor_id.as_deref(),
        not_found,
    )
}
