//! HTTP: onboarding for distributors, the masked investor view, erasure, commissions, and the
//! KRA's callback.
//!
//! Every route but the callback needs a bearer token (`nivesh_auth::require_auth`, applied in
//! `lib.rs`); the access rules live in [`crate::access`]. The callback is authenticated by its
//! HMAC signature instead (the KRA has no user token).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::NaiveDate;
use nivesh_auth::Caller;
use nivesh_domain::time::Clock;
use nivesh_runtime::problem::{ApiJson, ApiPath, ApiQuery, Problem};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::access;
use crate::commission::{Accrual, Commissions, Totals, totals};
use crate::config::Rates;
use crate::flow::{CallbackOutcome, FlowError, Onboarding};
use crate::kra::{KraCallback, KraError};
use crate::model::{
    BankAccountInput, ContactInput, FieldError, Guardian, GuardianInput, InvestorRequest,
    InvestorView, KycState, KycStatus, LeadRecord, LeadRequest, MaskedAadhaar, MaskedBankAccount,
    MaskedContact, Nominee, NomineeInput, RecordStatus, validate_investor, validate_lead,
};
use crate::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::vault::VaultError;

/// Counter: KRA callbacks by `result` (applied, duplicate, unauthorized, unknown, invalid, error).
pub const CALLBACKS: &str = "nivesh_onboarding_kyc_callbacks_total";
/// Set (`true`) on a `POST /v1/investors` answered with an existing investor.
pub const REPLAY_HEADER: &str = "idempotent-replay";
/// Largest page of a list.
const MAX_LIST: usize = 500;

#[derive(Clone)]
pub struct ApiState {
    pub onboarding: Onboarding,
    pub commissions: Commissions,
    pub callback_secret: SecretString,
    pub callback_tolerance: Duration,
    /// Wall clock for the callback freshness check (never the business clock).
    pub wall_clock: Arc<dyn Clock>,
}

#[derive(OpenApi)]
#[openapi(
    paths(create_lead, list_leads, create_investor, get_investor, submit_kyc, erase_investor,
          distributor_investors, distributor_commissions, commission_rates, kyc_callback),
    components(schemas(
        InvestorRequest, GuardianInput, ContactInput, BankAccountInput, NomineeInput, LeadRequest,
        LeadRecord, InvestorView, MaskedContact, MaskedBankAccount, MaskedAadhaar, Guardian,
        Nominee, KycState, KycStatus, RecordStatus, InvestorList, LeadList, CommissionReport,
        Accrual, Totals, RateView, KraCallback, CallbackAck
    )),
    tags(
        (name = "onboarding", description = "Distributors onboard investors; KYC through the KRA; DPDP erasure"),
        (name = "commissions", description = "Distributor commissions accrued on their investors' transactions"),
        (name = "kra", description = "The KYC Registration Agency's callback"),
    )
)]
pub struct ApiDoc;

/// The routes that need a bearer token.
pub fn protected_router(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/v1/leads", post(create_lead))
        .route("/v1/distributors/{distributor_id}/leads", get(list_leads))
        .route("/v1/investors", post(create_investor))
        .route("/v1/investors/{investor_id}", get(get_investor))
        .route("/v1/investors/{investor_id}/kyc", post(submit_kyc))
        .route("/v1/investors/{investor_id}/erasure", post(erase_investor))
        .route(
            "/v1/distributors/{distributor_id}/investors",
            get(distributor_investors),
        )
        .route(
            "/v1/distributors/{distributor_id}/commissions",
            get(distributor_commissions),
        )
        .route("/v1/commission/rates", get(commission_rates))
        .with_state(state)
}

/// The KRA callback (HMAC-authenticated, no bearer token).
pub fn callback_router(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/v1/kyc/callback", post(kyc_callback))
        .with_state(state)
}

fn validation_problem(errors: Vec<FieldError>) -> Problem {
    Problem::unprocessable(format!("{} field(s) are invalid", errors.len()))
        .with_type("urn:nivesh:problem:validation", "Invalid request")
        .with_field_errors(errors)
}

fn investor_not_found(id: &str) -> Problem {
    Problem::not_found(format!("no investor {id}"))
}

fn flow_problem(e: FlowError) -> Problem {
    match e {
        FlowError::NotFound(id) => investor_not_found(&id),
        FlowError::Erased(id) => Problem::conflict(format!("investor {id} was erased")),
        FlowError::Vault(VaultError::Shredded) => Problem::conflict("the investor was erased"),
        FlowError::Kra(KraError::Unavailable(_)) => {
            Problem::service_unavailable(Duration::from_secs(30))
                .with_detail("The KYC Registration Agency is unavailable; retry later.")
        }
        FlowError::Kra(KraError::Refused { code, .. }) => {
            Problem::unprocessable(format!("the KRA refused the registration: {code}"))
        }
        FlowError::PanTaken => Problem::conflict("an investor with this PAN is already registered")
            .with_type(
                "urn:nivesh:problem:pan-registered",
                "PAN already registered",
            ),
        e @ (FlowError::Contention(_) | FlowError::Provisioning(_)) => {
            Problem::service_unavailable(Duration::from_secs(1)).with_detail(e.to_string())
        }
        e => Problem::internal(e),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadList {
    pub leads: Vec<LeadRecord>,
}

/// A distributor records a prospect.
#[utoipa::path(post, path = "/v1/leads", tag = "onboarding",
    request_body = LeadRequest,
    responses(
        (status = 201, body = LeadRecord),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "not a distributor or admin; or another distributor's id"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "every field error in `errors`"),
    ))]
async fn create_lead(
    State(s): State<ApiState>,
    caller: Caller,
    ApiJson(req): ApiJson<LeadRequest>,
) -> Result<(StatusCode, Json<LeadRecord>), Problem> {
    access::require_onboarder(&caller)?;
    let lead = validate_lead(&req).map_err(validation_problem)?;
    let distributor = access::acting_distributor(&caller, lead.distributor_id.as_deref())?
        .ok_or_else(|| {
            validation_problem(vec![(
                "distributorId".into(),
                "is required when an administrator records a lead".into(),
            )])
        })?;
    let record = s
        .onboarding
        .create_lead(&caller.tenant, &distributor, lead)
        .await
        .map_err(flow_problem)?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// A distributor's leads, oldest first.
#[utoipa::path(get, path = "/v1/distributors/{distributorId}/leads", tag = "onboarding",
    params(("distributorId" = String, Path)),
    responses((status = 200, body = LeadList), (status = 403, body = Problem, content_type = "application/problem+json")))]
async fn list_leads(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(distributor_id): ApiPath<String>,
) -> Result<Json<LeadList>, Problem> {
    access::require_distributor_scope(&caller, &distributor_id)?;
    let leads = s
        .onboarding
        .leads(&distributor_id, MAX_LIST)
        .await
        .map_err(flow_problem)?
        .into_iter()
        .filter(|l| l.tenant == caller.tenant)
        .collect();
    Ok(Json(LeadList { leads }))
}

/// Onboard an investor: validated (all field errors at once), sensitive data sealed in the
/// vault, submitted to the KRA. 201 with the masked view; `kyc.status` is REGISTERED, or
/// PENDING when the KRA was unavailable (resubmit with `POST /v1/investors/{id}/kyc`).
///
/// Idempotent by PAN (one investor per PAN per tenant): the same PAN again from the same
/// distributor (a retry, a duplicate) answers 200 with the existing investor and
/// `Idempotent-Replay: true`; from another distributor, 409.
#[utoipa::path(post, path = "/v1/investors", tag = "onboarding",
    request_body = InvestorRequest,
    responses(
        (status = 201, body = InvestorView, description = "a new investor"),
        (status = 200, body = InvestorView, description = "the PAN's investor existed (retry or duplicate); header `Idempotent-Replay: true`"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "the PAN is registered by another distributor"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "every field error in `errors`"),
    ))]
async fn create_investor(
    State(s): State<ApiState>,
    caller: Caller,
    ApiJson(req): ApiJson<InvestorRequest>,
) -> Result<Response, Problem> {
    access::require_onboarder(&caller)?;
    let today = s.onboarding.clock.today_ist();
    let valid =
        validate_investor(&req, today, s.onboarding.adult_age_years).map_err(validation_problem)?;
    let distributor = access::acting_distributor(&caller, valid.distributor_id.as_deref())?;
    let done = s
        .onboarding
        .onboard(&caller.tenant, &caller.subject, distributor, valid)
        .await
        .map_err(flow_problem)?;
    let view = Json(done.record.view());
    Ok(if done.replay {
        (StatusCode::OK, [(REPLAY_HEADER, "true")], view).into_response()
    } else {
        (StatusCode::CREATED, view).into_response()
    })
}

async fn visible_view(s: &ApiState, caller: &Caller, id: &str) -> Result<InvestorView, Problem> {
    // Ids outside the investor id alphabet cannot exist: no store or cache lookup for them.
    nivesh_domain::InvestorId::parse(id).map_err(|_| investor_not_found(id))?;
    let view = s
        .onboarding
        .view(id)
        .await
        .map_err(flow_problem)?
        .ok_or_else(|| investor_not_found(id))?;
    access::require_investor(caller, &view, || investor_not_found(id))?;
    Ok(view)
}

/// The masked view of an investor: the investor themself, the distributor who onboarded them,
/// or an admin of the tenant; 404 for anyone else (as for a missing investor).
#[utoipa::path(get, path = "/v1/investors/{investorId}", tag = "onboarding",
    params(("investorId" = String, Path)),
    responses(
        (status = 200, body = InvestorView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_investor(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(investor_id): ApiPath<String>,
) -> Result<Json<InvestorView>, Problem> {
    Ok(Json(visible_view(&s, &caller, &investor_id).await?))
}

/// Resubmit a PENDING investor to the KRA (after a KRA outage). Other statuses: unchanged.
#[utoipa::path(post, path = "/v1/investors/{investorId}/kyc", tag = "onboarding",
    params(("investorId" = String, Path)),
    responses(
        (status = 200, body = InvestorView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "erased"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "the KRA is unavailable"),
    ))]
async fn submit_kyc(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(investor_id): ApiPath<String>,
) -> Result<Json<InvestorView>, Problem> {
    access::require_onboarder(&caller)?;
    visible_view(&s, &caller, &investor_id).await?;
    let record = s
        .onboarding
        .submit_kyc(&investor_id)
        .await
        .map_err(flow_problem)?;
    Ok(Json(record.view()))
}

/// DPDP erasure (admin or compliance): crypto-shreds the investor's vault key, blanks the
/// record, emits `investor.erased`. Idempotent: erasing again answers the erased view.
#[utoipa::path(post, path = "/v1/investors/{investorId}/erasure", tag = "onboarding",
    params(("investorId" = String, Path)),
    responses(
        (status = 200, body = InvestorView, description = "the erased view"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "not admin or compliance"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn erase_investor(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(investor_id): ApiPath<String>,
) -> Result<Json<InvestorView>, Problem> {
    access::require_eraser(&caller)?;
    nivesh_domain::InvestorId::parse(&investor_id).map_err(|_| investor_not_found(&investor_id))?;
    let view = s
        .onboarding
        .view(&investor_id)
        .await
        .map_err(flow_problem)?
        .ok_or_else(|| investor_not_found(&investor_id))?;
    if view.tenant != caller.tenant {
        return Err(investor_not_found(&investor_id));
    }
    let record = s
        .onboarding
        .erase(&investor_id, &caller.subject)
        .await
        .map_err(flow_problem)?;
    Ok(Json(record.view()))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvestorList {
    pub distributor_id: String,
    pub investors: Vec<InvestorView>,
}

/// The investors a distributor onboarded (masked views, oldest first, at most 500): that
/// distributor or an admin; 403 for anyone else.
#[utoipa::path(get, path = "/v1/distributors/{distributorId}/investors", tag = "onboarding",
    params(("distributorId" = String, Path)),
    responses((status = 200, body = InvestorList), (status = 403, body = Problem, content_type = "application/problem+json")))]
async fn distributor_investors(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(distributor_id): ApiPath<String>,
) -> Result<Json<InvestorList>, Problem> {
    access::require_distributor_scope(&caller, &distributor_id)?;
    let investors = s
        .onboarding
        .distributor_investors(&distributor_id, MAX_LIST)
        .await
        .map_err(flow_problem)?
        .into_iter()
        .filter(|v| v.tenant == caller.tenant)
        .collect();
    Ok(Json(InvestorList {
        distributor_id,
        investors,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DateRange {
    /// First trade date, `YYYY-MM-DD` (IST).
    from: NaiveDate,
    /// Last trade date (inclusive).
    to: NaiveDate,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommissionReport {
    pub distributor_id: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub accruals: Vec<Accrual>,
    pub totals: Totals,
}

/// Commission accrued for a distributor on trade dates in `[from, to]` (at most 500 accruals):
/// that distributor or an admin.
#[utoipa::path(get, path = "/v1/distributors/{distributorId}/commissions", tag = "commissions",
    params(("distributorId" = String, Path), DateRange),
    responses(
        (status = 200, body = CommissionReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
async fn distributor_commissions(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(distributor_id): ApiPath<String>,
    ApiQuery(range): ApiQuery<DateRange>,
) -> Result<Json<CommissionReport>, Problem> {
    access::require_distributor_scope(&caller, &distributor_id)?;
    if range.from > range.to {
        return Err(Problem::bad_request("from must not be after to")
            .with_field_errors([("from", "must not be after to")]));
    }
    let accruals: Vec<Accrual> = s
        .commissions
        .list(&distributor_id, range.from, range.to, MAX_LIST)
        .await
        .map_err(Problem::internal)?
        .into_iter()
        .filter(|a| a.tenant == caller.tenant)
        .collect();
    Ok(Json(CommissionReport {
        totals: totals(&accruals),
        distributor_id,
        from: range.from,
        to: range.to,
        accruals,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct RateQuery {
    scheme_code: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateView {
    pub scheme_code: String,
    /// The scheme's AMFI category, once `nav.broadcast` told us.
    pub scheme_category: Option<String>,
    /// The configured category whose rates apply; `null`: the default rates.
    pub rate_category: Option<String>,
    #[schema(value_type = String)]
    pub upfront_bps: rust_decimal::Decimal,
    #[schema(value_type = String)]
    pub trail_bps: rust_decimal::Decimal,
}

/// The commission rates that apply to a scheme now.
#[utoipa::path(get, path = "/v1/commission/rates", tag = "commissions",
    params(RateQuery), responses((status = 200, body = RateView)))]
async fn commission_rates(
    State(s): State<ApiState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<RateQuery>,
) -> Result<Json<RateView>, Problem> {
    let category = s
        .commissions
        .category(&q.scheme_code)
        .await
        .map_err(Problem::internal)?;
    let (
        Rates {
            upfront_bps,
            trail_bps,
        },
        rate_category,
    ) = s.commissions.config.rates_for(category.as_deref());
    Ok(Json(RateView {
        scheme_code: q.scheme_code,
        scheme_category: category,
        rate_category,
        upfront_bps,
        trail_bps,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CallbackAck {
    /// `applied` or `duplicate`.
    pub result: String,
}

fn ack(result: &'static str) -> Json<CallbackAck> {
    metrics::counter!(CALLBACKS, "result" => result).increment(1);
    Json(CallbackAck {
        result: result.into(),
    })
}

fn refuse(result: &'static str, problem: Problem) -> Problem {
    metrics::counter!(CALLBACKS, "result" => result).increment(1);
    problem
}

/// The KRA's verdict on a registration. Signed with HMAC-SHA256 over
/// `"<X-Nivesh-Timestamp>.<raw body>"` (the payment webhook's scheme).
#[utoipa::path(post, path = "/v1/kyc/callback", tag = "kra", security(()),
    params(
        ("X-Nivesh-Timestamp" = String, Header, description = "signing time, unix seconds"),
        ("X-Nivesh-Signature" = String, Header, description = "sha256=<hex HMAC-SHA256(secret, timestamp + \".\" + body)>"),
    ),
    request_body = KraCallback,
    responses(
        (status = 200, body = CallbackAck),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "bad or missing signature, or stale; nothing changed"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "unknown reference"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "not a verdict status"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "try again (the KRA retries)"),
    ))]
async fn kyc_callback(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CallbackAck>, Problem> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = signature::verify(
        s.callback_secret.expose_secret().as_bytes(),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        s.wall_clock.now().timestamp(),
        s.callback_tolerance,
    ) {
        tracing::warn!(error = %e, "KRA callback refused: authentication failed");
        return Err(refuse(
            "unauthorized",
            Problem::unauthorized(format!("callback authentication failed: {e}")),
        ));
    }
    let cb: KraCallback = serde_json::from_slice(&body).map_err(|e| {
        refuse(
            "invalid",
            Problem::bad_request(format!("callback body is not a KRA status event: {e}")),
        )
    })?;
    if nivesh_domain::InvestorId::parse(&cb.reference).is_err() {
        return Err(refuse(
            "unknown",
            Problem::not_found("no registration with this reference"),
        ));
    }
    match s.onboarding.kyc_callback(&cb).await {
        Ok(CallbackOutcome::Applied(_)) => Ok(ack("applied")),
        Ok(CallbackOutcome::Duplicate) => Ok(ack("duplicate")),
        Err(FlowError::NotFound(_)) => Err(refuse(
            "unknown",
            Problem::not_found("no registration with this reference"),
        )),
        Err(e @ FlowError::BadStatus(_)) => {
            Err(refuse("invalid", Problem::unprocessable(e.to_string())))
        }
        Err(e) => Err(refuse("error", flow_problem(e))),
    }
}
