//! Requests, their validation (every field error at once), the stored records and the masked
//! views the API returns.
//!
//! Masking conventions (responses, events, logs, caches):
//! - PAN: `XXXXXX234F` (last four characters; `nivesh_domain::Pan::masked`, the convention of
//!   Indian statements);
//! - Aadhaar: `XXXX-XXXX-1234` (UIDAI's masked Aadhaar), plus the vault's reference token;
//! - bank account: `XXXXXX6789`; mobile: `+91XXXXXX3210`; email: `a***@example.com`.
//!
//! Minors: an investor younger than `adult_age_years` (18) on the business date (IST) must
//! come with a guardian (name and relationship FATHER, MOTHER or COURT_APPOINTED); an adult
//! must not. The minor's own PAN is still required (the platform onboards PAN holders only).

use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use nivesh_domain::{Pan, PanHolderType};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::aadhaar::Aadhaar;

pub const NOMINEE_RELATIONSHIPS: &[&str] = &[
    "SPOUSE", "SON", "DAUGHTER", "FATHER", "MOTHER", "BROTHER", "SISTER", "OTHER",
];
pub const GUARDIAN_RELATIONSHIPS: &[&str] = &["FATHER", "MOTHER", "COURT_APPOINTED"];
pub const ACCOUNT_TYPES: &[&str] = &["SAVINGS", "CURRENT", "NRE", "NRO"];
/// Nominees per investor (SEBI allows up to 10 per folio/account).
pub const MAX_NOMINEES: usize = 10;

/// `POST /v1/investors`. Every field is optional in the type so that a missing field is
/// reported with the others instead of failing the whole body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvestorRequest {
    /// PAN, 10 characters; the 4th must be `P` (individual).
    #[schema(example = "ABCPE1234F")]
    pub pan: Option<String>,
    /// As on the PAN.
    pub name: Option<String>,
    /// `YYYY-MM-DD`.
    #[schema(example = "1990-04-12")]
    pub date_of_birth: Option<String>,
    /// Required for a minor, refused for an adult.
    pub guardian: Option<GuardianInput>,
    pub contact: Option<ContactInput>,
    pub bank_account: Option<BankAccountInput>,
    pub nominees: Option<Vec<NomineeInput>>,
    /// Optional; 12 digits with a valid Verhoeff checksum. Only ever stored in the vault.
    pub aadhaar: Option<String>,
    /// Admins only: onboard on behalf of this distributor. A distributor always onboards
    /// under their own id (a different value here is refused).
    pub distributor_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardianInput {
    pub name: Option<String>,
    /// FATHER, MOTHER or COURT_APPOINTED.
    pub relationship: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactInput {
    pub email: Option<String>,
    /// Indian mobile: 10 digits starting 6-9, optionally prefixed by +91, 91 or 0.
    pub mobile: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BankAccountInput {
    /// 9 to 18 digits.
    pub account_number: Option<String>,
    /// `^[A-Z]{4}0[A-Z0-9]{6}$`
    #[schema(example = "HDFC0001234")]
    pub ifsc: Option<String>,
    /// SAVINGS (default), CURRENT, NRE or NRO.
    pub account_type: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NomineeInput {
    pub name: Option<String>,
    pub relationship: Option<String>,
    /// Percent, exact decimal (string or number), > 0; all nominees' shares total 100.
    #[schema(value_type = String, example = "100")]
    pub share_percent: Option<Value>,
}

/// `POST /v1/leads`: a prospect a distributor is talking to.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadRequest {
    pub name: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    /// Free text, up to 500 characters.
    pub notes: Option<String>,
    /// Admins only (as for investors).
    pub distributor_id: Option<String>,
}

/// A field error: (JSON path, reason). Reasons never echo PAN or Aadhaar input.
pub type FieldError = (String, String);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Guardian {
    pub name: String,
    pub relationship: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub email: String,
    /// `+91` and 10 digits.
    pub mobile: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Nominee {
    pub name: String,
    pub relationship: String,
    #[schema(value_type = String)]
    pub share_percent: Decimal,
}

/// A request that passed validation. `Debug` shows the PAN and Aadhaar masked only.
#[derive(Debug, Clone)]
pub struct ValidInvestor {
    pub pan: Pan,
    pub name: String,
    pub date_of_birth: NaiveDate,
    pub minor: bool,
    pub guardian: Option<Guardian>,
    pub contact: Contact,
    pub account_number: String,
    pub ifsc: String,
    pub account_type: String,
    pub nominees: Vec<Nominee>,
    pub aadhaar: Option<Aadhaar>,
    pub distributor_id: Option<String>,
}

/// A validated lead.
#[derive(Debug, Clone)]
pub struct ValidLead {
    pub name: String,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub notes: Option<String>,
    pub distributor_id: Option<String>,
}

fn err(errors: &mut Vec<FieldError>, field: impl Into<String>, reason: impl Into<String>) {
    errors.push((field.into(), reason.into()));
}

fn required<'a>(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: &'a Option<String>,
) -> Option<&'a str> {
    match value.as_deref().map(str::trim) {
        None | Some("") => {
            err(errors, field, "is required");
            None
        }
        Some(v) => Some(v),
    }
}

/// A person's name: 1-100 characters of letters, spaces, `.`, `'` and `-`, with a letter.
pub fn check_name(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: &Option<String>,
) -> Option<String> {
    let v = required(errors, field, value)?;
    let collapsed = v.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > 100 {
        err(errors, field, "must be at most 100 characters");
        return None;
    }
    if !collapsed
        .chars()
        .all(|c| c.is_alphabetic() || matches!(c, ' ' | '.' | '\'' | '-'))
        || !collapsed.chars().any(char::is_alphabetic)
    {
        err(
            errors,
            field,
            "may contain only letters, spaces, '.', ''' and '-'",
        );
        return None;
    }
    Some(collapsed)
}

/// `local@domain.tld`, at most 254 characters, lower-cased.
pub fn check_email(errors: &mut Vec<FieldError>, field: &str, v: &str) -> Option<String> {
    let v = v.trim();
    let ok = v.len() <= 254
        && v.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && local
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c))
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        });
    if ok {
        Some(v.to_ascii_lowercase())
    } else {
        err(
            errors,
            field,
            "must be an email address like name@example.com",
        );
        None
    }
}

/// An Indian mobile number, normalised to `+91XXXXXXXXXX`.
pub fn check_mobile(errors: &mut Vec<FieldError>, field: &str, v: &str) -> Option<String> {
    let compact: String = v
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect();
    let national = compact
        .strip_prefix("+91")
        .or_else(|| compact.strip_prefix("91").filter(|r| r.len() == 10))
        .or_else(|| compact.strip_prefix('0').filter(|r| r.len() == 10))
        .unwrap_or(&compact);
    let ok = national.len() == 10
        && national.chars().all(|c| c.is_ascii_digit())
        && matches!(national.as_bytes()[0], b'6'..=b'9');
    if ok {
        Some(format!("+91{national}"))
    } else {
        err(
            errors,
            field,
            "must be an Indian mobile number: 10 digits starting with 6-9, optionally prefixed by +91",
        );
        None
    }
}

/// IFSC: `^[A-Z]{4}0[A-Z0-9]{6}$`.
pub fn ifsc_valid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11
        && b[..4].iter().all(u8::is_ascii_uppercase)
        && b[4] == b'0'
        && b[5..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn parse_share(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        _ => None,
    }
}

/// Full years between `dob` and `on`.
pub fn age_on(dob: NaiveDate, on: NaiveDate) -> i32 {
    let mut years = on.year() - dob.year();
    if (on.month(), on.day()) < (dob.month(), dob.day()) {
        years -= 1;
    }
    years
}

/// Validate an onboarding request against `today` (IST business date). Returns every field
/// error at once.
pub fn validate_investor(
    req: &InvestorRequest,
    today: NaiveDate,
    adult_age: u32,
) -> Result<ValidInvestor, Vec<FieldError>> {
    let mut e = Vec::new();
    let pan = required(&mut e, "pan", &req.pan).and_then(|raw| match Pan::parse(raw) {
        Err(problem) => {
            err(&mut e, "pan", format!("is not a valid PAN: {}", problem.reason()));
            None
        }
        Ok(p) if p.holder_type() != PanHolderType::Person => {
            err(
                &mut e,
                "pan",
                format!(
                    "belongs to a {} (4th character {}); only individuals (4th character P) can be onboarded here",
                    p.holder_type(),
                    p.holder_type().code()
                ),
            );
            None
        }
        Ok(p) => Some(p),
    });
    let name = check_name(&mut e, "name", &req.name);
    let dob = required(&mut e, "dateOfBirth", &req.date_of_birth).and_then(|raw| {
        match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            Err(_) => {
                err(&mut e, "dateOfBirth", "must be a date YYYY-MM-DD");
                None
            }
            Ok(d) if d > today => {
                err(&mut e, "dateOfBirth", "is in the future");
                None
            }
            Ok(d) if age_on(d, today) > 120 => {
                err(&mut e, "dateOfBirth", "is more than 120 years ago");
                None
            }
            Ok(d) => Some(d),
        }
    });
    let minor = dob.is_some_and(|d| age_on(d, today) < adult_age as i32);
    let guardian = match (&req.guardian, dob) {
        (Some(_), Some(_)) if !minor => {
            err(
                &mut e,
                "guardian",
                format!("must be absent for an investor aged {adult_age} or more"),
            );
            None
        }
        (None, Some(_)) if minor => {
            err(
                &mut e,
                "guardian",
                format!("is required for an investor under {adult_age} (a minor)"),
            );
            None
        }
        (Some(g), _) => {
            let gname = check_name(&mut e, "guardian.name", &g.name);
            let rel = required(&mut e, "guardian.relationship", &g.relationship).and_then(|r| {
                let r = r.to_ascii_uppercase();
                if GUARDIAN_RELATIONSHIPS.contains(&r.as_str()) {
                    Some(r)
                } else {
                    err(
                        &mut e,
                        "guardian.relationship",
                        format!("must be one of {}", GUARDIAN_RELATIONSHIPS.join(", ")),
                    );
                    None
                }
            });
            gname
                .zip(rel)
                .map(|(name, relationship)| Guardian { name, relationship })
        }
        (None, _) => None,
    };
    let contact = match &req.contact {
        None => {
            err(&mut e, "contact", "is required");
            None
        }
        Some(c) => {
            let email = required(&mut e, "contact.email", &c.email)
                .and_then(|v| check_email(&mut e, "contact.email", v));
            let mobile = required(&mut e, "contact.mobile", &c.mobile)
                .and_then(|v| check_mobile(&mut e, "contact.mobile", v));
            email
                .zip(mobile)
                .map(|(email, mobile)| Contact { email, mobile })
        }
    };
    let bank = match &req.bank_account {
        None => {
            err(&mut e, "bankAccount", "is required");
            None
        }
        Some(b) => {
            let number =
                required(&mut e, "bankAccount.accountNumber", &b.account_number).and_then(|n| {
                    if (9..=18).contains(&n.len()) && n.bytes().all(|c| c.is_ascii_digit()) {
                        Some(n.to_string())
                    } else {
                        err(
                            &mut e,
                            "bankAccount.accountNumber",
                            "must be 9 to 18 digits",
                        );
                        None
                    }
                });
            let ifsc = required(&mut e, "bankAccount.ifsc", &b.ifsc).and_then(|i| {
                if ifsc_valid(i) {
                    Some(i.to_string())
                } else {
                    err(
                        &mut e,
                        "bankAccount.ifsc",
                        "must match ^[A-Z]{4}0[A-Z0-9]{6}$ (4 letters, a zero, 6 letters or digits)",
                    );
                    None
                }
            });
            let kind = match b.account_type.as_deref().map(str::trim) {
                None | Some("") => Some("SAVINGS".to_string()),
                Some(t) if ACCOUNT_TYPES.contains(&t.to_ascii_uppercase().as_str()) => {
                    Some(t.to_ascii_uppercase())
                }
                Some(_) => {
                    err(
                        &mut e,
                        "bankAccount.accountType",
                        format!("must be one of {}", ACCOUNT_TYPES.join(", ")),
                    );
                    None
                }
            };
            match (number, ifsc, kind) {
                (Some(n), Some(i), Some(k)) => Some((n, i, k)),
                _ => None,
            }
        }
    };
    let nominees = match req.nominees.as_deref() {
        None | Some([]) => {
            err(&mut e, "nominees", "at least one nominee is required");
            None
        }
        Some(list) if list.len() > MAX_NOMINEES => {
            err(
                &mut e,
                "nominees",
                format!("at most {MAX_NOMINEES} nominees"),
            );
            None
        }
        Some(list) => {
            let mut out = Vec::new();
            let mut all_ok = true;
            for (i, n) in list.iter().enumerate() {
                let f = |s: &str| format!("nominees[{i}].{s}");
                let name = check_name(&mut e, &f("name"), &n.name);
                let rel = required(&mut e, &f("relationship"), &n.relationship).and_then(|r| {
                    let r = r.to_ascii_uppercase();
                    if NOMINEE_RELATIONSHIPS.contains(&r.as_str()) {
                        Some(r)
                    } else {
                        err(
                            &mut e,
                            f("relationship"),
                            format!("must be one of {}", NOMINEE_RELATIONSHIPS.join(", ")),
                        );
                        None
                    }
                });
                let share = match &n.share_percent {
                    None | Some(Value::Null) => {
                        err(&mut e, f("sharePercent"), "is required");
                        None
                    }
                    Some(v) => match parse_share(v) {
                        Some(s)
                            if s > Decimal::ZERO && s <= Decimal::ONE_HUNDRED && s.scale() <= 2 =>
                        {
                            Some(s)
                        }
                        _ => {
                            err(
                                &mut e,
                                f("sharePercent"),
                                "must be a percentage above 0 and at most 100, with up to 2 decimals",
                            );
                            None
                        }
                    },
                };
                match (name, rel, share) {
                    (Some(name), Some(relationship), Some(share_percent)) => out.push(Nominee {
                        name,
                        relationship,
                        share_percent,
                    }),
                    _ => all_ok = false,
                }
            }
            if all_ok {
                let total: Decimal = out.iter().map(|n| n.share_percent).sum();
                if total != Decimal::ONE_HUNDRED {
                    err(
                        &mut e,
                        "nominees",
                        format!(
                            "shares must total exactly 100 percent, got {}",
                            total.normalize()
                        ),
                    );
                    None
                } else {
                    Some(out)
                }
            } else {
                None
            }
        }
    };
    let aadhaar = match req.aadhaar.as_deref() {
        None => None,
        Some(raw) => match Aadhaar::parse(raw) {
            Ok(a) => Some(a),
            Err(reason) => {
                err(
                    &mut e,
                    "aadhaar",
                    format!("is not a valid Aadhaar number: {reason}"),
                );
                None
            }
        },
    };
    let distributor_id = match req.distributor_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) if nivesh_domain::InvestorId::parse(d).is_ok() => Some(d.to_string()),
        Some(_) => {
            err(
                &mut e,
                "distributorId",
                "must be 1-64 of letters, digits, '_' and '-'",
            );
            None
        }
    };
    if !e.is_empty() {
        return Err(e);
    }
    match (pan, name, dob, contact, bank, nominees) {
        (
            Some(pan),
            Some(name),
            Some(date_of_birth),
            Some(contact),
            Some((n, i, k)),
            Some(nominees),
        ) => Ok(ValidInvestor {
            pan,
            name,
            date_of_birth,
            minor,
            guardian,
            contact,
            account_number: n,
            ifsc: i,
            account_type: k,
            nominees,
            aadhaar,
            distributor_id,
        }),
        // Every None above recorded an error; unreachable, but never a panic path.
        _ => Err(vec![("body".into(), "is invalid".into())]),
    }
}

/// Validate a lead: a name and at least one of email and mobile.
pub fn validate_lead(req: &LeadRequest) -> Result<ValidLead, Vec<FieldError>> {
    let mut e = Vec::new();
    let name = check_name(&mut e, "name", &req.name);
    let email = req
        .email
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .and_then(|v| check_email(&mut e, "email", v));
    let mobile = req
        .mobile
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .and_then(|v| check_mobile(&mut e, "mobile", v));
    let blank = |o: &Option<String>| o.as_deref().is_none_or(|s| s.trim().is_empty());
    if blank(&req.email) && blank(&req.mobile) {
        err(&mut e, "email", "an email or a mobile number is required");
    }
    let notes = req
        .notes
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if notes.is_some_and(|n| n.chars().count() > 500) {
        err(&mut e, "notes", "must be at most 500 characters");
    }
    let distributor_id = match req.distributor_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) if nivesh_domain::InvestorId::parse(d).is_ok() => Some(d.to_string()),
        Some(_) => {
            err(
                &mut e,
                "distributorId",
                "must be 1-64 of letters, digits, '_' and '-'",
            );
            None
        }
    };
    match name {
        Some(name) if e.is_empty() => Ok(ValidLead {
            name,
            email,
            mobile,
            notes: notes.map(str::to_string),
            distributor_id,
        }),
        _ => Err(e),
    }
}

/// KYC status of an investor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KycStatus {
    /// Stored; the KRA has not accepted the registration yet.
    Pending,
    Registered,
    Validated,
    OnHold,
    Rejected,
}

impl KycStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KycStatus::Pending => nivesh_events::kyc_status::PENDING,
            KycStatus::Registered => nivesh_events::kyc_status::REGISTERED,
            KycStatus::Validated => nivesh_events::kyc_status::VALIDATED,
            KycStatus::OnHold => nivesh_events::kyc_status::ON_HOLD,
            KycStatus::Rejected => nivesh_events::kyc_status::REJECTED,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            KycStatus::Pending,
            KycStatus::Registered,
            KycStatus::Validated,
            KycStatus::OnHold,
            KycStatus::Rejected,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// A verdict of the KRA (what a callback may set).
    pub fn is_verdict(self) -> bool {
        matches!(
            self,
            KycStatus::Validated | KycStatus::OnHold | KycStatus::Rejected
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KycState {
    pub status: KycStatus,
    pub kra_reference: Option<String>,
    /// The KRA's reason for ON_HOLD / REJECTED.
    pub reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordStatus {
    Active,
    /// Personal data erased (DPDP): only ids and dates remain.
    Erased,
}

/// The stored investor (container `investors`, partition = investor id, id `investor`). Holds
/// no PAN, Aadhaar, date of birth or account number: those are in the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvestorRecord {
    pub kind: String,
    pub investor_id: String,
    pub tenant: String,
    pub distributor_id: Option<String>,
    /// Token subject of whoever onboarded the investor.
    pub created_by: String,
    pub status: RecordStatus,
    pub name: Option<String>,
    pub pan_masked: Option<String>,
    pub minor: bool,
    pub guardian: Option<Guardian>,
    pub contact: Option<Contact>,
    pub ifsc: Option<String>,
    pub account_type: Option<String>,
    pub account_masked: Option<String>,
    pub nominees: Vec<Nominee>,
    pub aadhaar_masked: Option<String>,
    /// The vault's reference token of the investor's sensitive data (PAN, Aadhaar, DOB, account).
    pub vault_token: Option<String>,
    /// The partition of the investor's PAN claim (`pan_claims`, a keyed hash, not the PAN), so
    /// erasure can release it. `None` once erased (and on records older than claims).
    #[serde(default)]
    pub pan_claim: Option<String>,
    pub kyc: KycState,
    pub credential_requested_at: Option<DateTime<Utc>>,
    /// When `investor.onboarded` was emitted (once: when the KRA accepted the registration).
    pub onboarded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub erased_at: Option<DateTime<Utc>>,
    pub erased_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaskedContact {
    #[schema(example = "a***@example.com")]
    pub email: String,
    #[schema(example = "+91XXXXXX3210")]
    pub mobile: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaskedBankAccount {
    #[schema(example = "XXXXXX6789")]
    pub account_number: String,
    pub ifsc: String,
    pub account_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaskedAadhaar {
    #[schema(example = "XXXX-XXXX-1234")]
    pub masked: String,
    /// The vault's reference token.
    pub token: String,
}

/// The masked view of an investor (`GET /v1/investors/{investorId}`). Erased investors show
/// only ids, status and dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvestorView {
    pub investor_id: String,
    pub tenant: String,
    pub distributor_id: Option<String>,
    pub status: RecordStatus,
    pub name: Option<String>,
    #[schema(example = "XXXXXX234F")]
    pub pan: Option<String>,
    pub minor: bool,
    pub guardian: Option<Guardian>,
    pub contact: Option<MaskedContact>,
    pub bank_account: Option<MaskedBankAccount>,
    pub nominees: Vec<Nominee>,
    pub aadhaar: Option<MaskedAadhaar>,
    pub kyc: KycState,
    pub created_at: DateTime<Utc>,
    pub erased_at: Option<DateTime<Utc>>,
}

pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

pub fn mask_mobile(mobile: &str) -> String {
    let last: String = mobile
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("+91XXXXXX{last}")
}

pub fn mask_account(number: &str) -> String {
    let n = number.len();
    format!("XXXXXX{}", &number[n.saturating_sub(4)..])
}

impl InvestorRecord {
    pub fn view(&self) -> InvestorView {
        InvestorView {
            investor_id: self.investor_id.clone(),
            tenant: self.tenant.clone(),
            distributor_id: self.distributor_id.clone(),
            status: self.status,
            name: self.name.clone(),
            pan: self.pan_masked.clone(),
            minor: self.minor,
            guardian: self.guardian.clone(),
            contact: self.contact.as_ref().map(|c| MaskedContact {
                email: mask_email(&c.email),
                mobile: mask_mobile(&c.mobile),
            }),
            bank_account: match (&self.account_masked, &self.ifsc, &self.account_type) {
                (Some(a), Some(i), Some(t)) => Some(MaskedBankAccount {
                    account_number: a.clone(),
                    ifsc: i.clone(),
                    account_type: t.clone(),
                }),
                _ => None,
            },
            nominees: self.nominees.clone(),
            aadhaar: match (&self.aadhaar_masked, &self.vault_token) {
                (Some(m), Some(t)) => Some(MaskedAadhaar {
                    masked: m.clone(),
                    token: t.clone(),
                }),
                _ => None,
            },
            kyc: self.kyc.clone(),
            created_at: self.created_at,
            erased_at: self.erased_at,
        }
    }
}

/// A stored lead (container `leads`, partition = distributor id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadRecord {
    pub lead_id: String,
    pub tenant: String,
    pub distributor_id: String,
    pub name: String,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 2, 25).unwrap()
    }

    /// A complete valid request (test data only).
    pub(crate) fn valid_request() -> InvestorRequest {
        serde_json::from_value(json!({
            "pan": "ABCPE1234F",
            "name": "Asha  Verma",
            "dateOfBirth": "1990-04-12",
            "contact": {"email": "Asha.Verma@Example.com", "mobile": "098765 43210"},
            "bankAccount": {"accountNumber": "001234567890", "ifsc": "HDFC0001234"},
            "nominees": [
                {"name": "Ravi Verma", "relationship": "spouse", "sharePercent": "66.67"},
                {"name": "Meera Verma", "relationship": "DAUGHTER", "sharePercent": 33.33}
            ]
        }))
        .unwrap()
    }

    /// A valid request normalises name, email, mobile and relationships.
    #[test]
    fn valid_request_normalises() {
        let v = validate_investor(&valid_request(), today(), 18).unwrap();
        assert_eq!(v.name, "Asha Verma");
        assert_eq!(v.contact.email, "asha.verma@example.com");
        assert_eq!(v.contact.mobile, "+919876543210");
        assert_eq!(v.nominees[0].relationship, "SPOUSE");
        assert_eq!(v.nominees[1].share_percent, Decimal::new(3333, 2));
        assert_eq!(v.account_type, "SAVINGS");
        assert!(!v.minor);
        assert!(format!("{v:?}").contains("XXXXXX234F"));
        assert!(!format!("{v:?}").contains("ABCPE1234F"));
    }

    /// An empty body reports every required field at once.
    #[test]
    fn every_missing_field_is_listed() {
        let errs = validate_investor(&InvestorRequest::default(), today(), 18).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "pan",
                "name",
                "dateOfBirth",
                "contact",
                "bankAccount",
                "nominees"
            ]
        );
    }

    /// Holder type: a company PAN is refused for an individual, with the reason.
    #[test]
    fn pan_holder_type_must_be_person() {
        let mut r = valid_request();
        r.pan = Some("AAACR5055K".into());
        let errs = validate_investor(&r, today(), 18).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, "pan");
        assert!(errs[0].1.contains("Company"), "{}", errs[0].1);
        assert!(!errs[0].1.contains("AAACR5055K"));
    }

    /// Minors need a guardian, adults must not have one; the boundary is the 18th birthday.
    #[test]
    fn minors_and_guardians() {
        let mut r = valid_request();
        r.date_of_birth = Some("2007-02-26".into()); // 17 on 2025-02-25
        let errs = validate_investor(&r, today(), 18).unwrap_err();
        assert_eq!(errs[0].0, "guardian");
        r.guardian = Some(GuardianInput {
            name: Some("Ravi Verma".into()),
            relationship: Some("father".into()),
        });
        let v = validate_investor(&r, today(), 18).unwrap();
        assert!(v.minor);
        assert_eq!(v.guardian.unwrap().relationship, "FATHER");
        r.date_of_birth = Some("2007-02-25".into()); // 18 today
        let errs = validate_investor(&r, today(), 18).unwrap_err();
        assert!(errs[0].1.contains("must be absent"), "{errs:?}");
    }

    /// IFSC follows the RBI pattern exactly.
    #[test]
    fn ifsc_pattern() {
        for ok in ["HDFC0001234", "SBIN0ABC123", "ICIC0000001"] {
            assert!(ifsc_valid(ok), "{ok}");
        }
        for bad in [
            "HDFC1001234",
            "hdfc0001234",
            "HDF00001234",
            "HDFC000123",
            "HDFC00012345",
            "HDFC0-01234",
        ] {
            assert!(!ifsc_valid(bad), "{bad}");
        }
    }

    /// Masks keep only what identifies to the owner.
    #[test]
    fn masks() {
        assert_eq!(mask_email("asha@example.com"), "a***@example.com");
        assert_eq!(mask_mobile("+919876543210"), "+91XXXXXX3210");
        assert_eq!(mask_account("001234567890"), "XXXXXX7890");
    }

    /// Leads need a name and one contact channel; formats are checked.
    #[test]
    fn lead_validation() {
        let ok: LeadRequest =
            serde_json::from_value(json!({"name": "Kiran Rao", "mobile": "+91 99887 76655"}))
                .unwrap();
        assert_eq!(validate_lead(&ok).unwrap().mobile.unwrap(), "+919988776655");
        let bad: LeadRequest = serde_json::from_value(json!({"name": "K1ran"})).unwrap();
        let errs = validate_lead(&bad).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["name", "email"]);
    }
}
