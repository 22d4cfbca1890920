//! Identity for every Nivesh API: who is calling ([`Caller`]), what they may do ([`Role`],
//! [`Caller::can_access_investor`]), how their bearer token is verified ([`Authenticator`]: JWT,
//! RS256/ES256 only, against the identity provider's JWKS, cached and refreshed), the axum guard
//! ([`require_auth`]) and the local identity provider ([`DevIssuer`]) tests and `nivesh up` use.
//!
//! Problem semantics every service follows: missing or invalid token → 401 (with
//! `WWW-Authenticate: Bearer`), a role the caller lacks → 403, another investor's resource →
//! 404, exactly like a resource that does not exist.

mod caller;
mod dev;
mod guard;
mod settings;
mod verify;

pub use caller::{Caller, DEFAULT_TENANT, Role, forbidden_problem};
pub use dev::{DevClaims, DevIssuer, DevIssuerError, TokenRequest, TokenResponse};
pub use guard::{RequireAuth, RequireAuthLayer, require_auth, unauthorized_problem};
pub use settings::{AuthSettings, DEFAULT_AUDIENCE, DEV_IDP_URL};
pub use verify::{AuthError, Authenticator};
