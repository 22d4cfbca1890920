//! Identity events of the onboarding service: an investor onboarded, the KRA's KYC answer, an
//! investor's personal data erased (DPDP). All keyed by investor id.
//!
//! PII rules (enforced by the producer, stated here for every reader): a PAN travels only
//! masked (`XXXXXX234F`), an Aadhaar number never travels at all (not even masked), and
//! nothing but the name identifies a person directly.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::meta::{EventMeta, impl_event};

/// KYC statuses (`InvestorOnboarded::kyc_status`, `KycVerified::status`).
pub mod kyc_status {
    /// Stored, not yet accepted by the KRA (the KRA was unavailable).
    pub const PENDING: &str = "PENDING";
    /// Accepted by the KRA; its verdict comes later.
    pub const REGISTERED: &str = "REGISTERED";
    pub const VALIDATED: &str = "VALIDATED";
    pub const ON_HOLD: &str = "ON_HOLD";
    pub const REJECTED: &str = "REJECTED";
}

/// An investor was onboarded and submitted to the KRA. Topic `investor.onboarded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvestorOnboarded {
    pub meta: EventMeta,
    pub investor_id: String,
    pub tenant: String,
    pub distributor_id: Option<String>,
    /// `XXXXXX234F`: never the PAN itself.
    pub pan_masked: String,
    pub name: String,
    /// One of [`kyc_status`].
    pub kyc_status: String,
    #[serde(with = "crate::wire::timestamp_micros")]
    pub onboarded_at: DateTime<Utc>,
}
impl_event!(InvestorOnboarded, "nivesh.identity.InvestorOnboarded", v 1);

/// The KRA's verdict on a KYC registration. Topic `kyc.verified`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KycVerified {
    pub meta: EventMeta,
    pub investor_id: String,
    pub tenant: String,
    /// `VALIDATED`, `ON_HOLD` or `REJECTED` (see [`kyc_status`]).
    pub status: String,
    pub kra_reference: String,
    #[serde(with = "crate::wire::timestamp_micros")]
    pub verified_at: DateTime<Utc>,
    pub reason: Option<String>,
}
impl_event!(KycVerified, "nivesh.identity.KycVerified", v 1);

/// An investor's personal data was erased (vault key crypto-shredded). Topic `investor.erased`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvestorErased {
    pub meta: EventMeta,
    pub investor_id: String,
    pub tenant: String,
    pub distributor_id: Option<String>,
    /// The administrator or compliance officer (token subject) who requested it.
    pub erased_by: String,
    #[serde(with = "crate::wire::timestamp_micros")]
    pub erased_at: DateTime<Utc>,
}
impl_event!(InvestorErased, "nivesh.identity.InvestorErased", v 1);
