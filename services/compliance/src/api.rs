//! The compliance HTTP API. Every route needs a bearer token; every call is authorised by
//! [`ComplianceService::authorize`] (admin, or compliance role + active grant) and audited into
//! the caller's access partition of the ledger, allowed or denied, before it answers.
//!
//! - `GET  /v1/compliance/ledger/{partition}/verify`: walk a chain; ok or the first broken record.
//! - `GET  /v1/compliance/investors/{investorId}/trace?from=&to=&format=json|csv`: every ledger
//!   record of the investor in the window (PII decrypted, or "[erased]"). CSV answers carry
//!   `X-Manifest-SHA256` (SHA-256 of the body); `GET .../trace/manifest` returns the same
//!   manifest as JSON for a window.
//! - `POST /v1/compliance/investors/{investorId}/erasure`: crypto-shred the investor's key.
//! - `POST /v1/compliance/grants` (admin only): a time-boxed access grant.
//! - `POST /v1/compliance/exports`, `GET /v1/compliance/exports/{exportId}`,
//!   `POST /v1/compliance/exports/{exportId}/retry`: SEBI transaction exports.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use nivesh_auth::{Authenticator, Caller, Role, require_auth};
use nivesh_domain::InvestorId;
use nivesh_domain::time::ist_datetime;
use nivesh_runtime::problem::{ApiJson, ApiPath, ApiQuery, Problem};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::access::Grant;
use crate::canonical::{canonical_json, sha256_hex};
use crate::export::{ExportJob, ExportStatus, KIND_SEBI_TRANSACTIONS, Manifest, StatusChange};
use crate::ledger::{LedgerRecord, NewRecord, VerifyReport};
use crate::service::{ComplianceService, ERASURE_EVENT, current_trace_id};

/// Header of a CSV trace: SHA-256 (hex) of the body.
pub const MANIFEST_HEADER: &str = "x-manifest-sha256";

#[derive(OpenApi)]
#[openapi(
    paths(verify, trace, trace_manifest, erase, create_grant, create_export, get_export, retry_export),
    components(schemas(
        VerifyReport, TraceManifest, GrantRequest, Grant, ExportRequest, ExportJob, ExportStatus,
        Manifest, StatusChange, ErasureResult
    )),
    tags((name = "compliance", description = "Audit ledger, investor traces, access grants, SEBI exports"))
)]
pub struct ApiDoc;

pub fn router(svc: Arc<ComplianceService>, authenticator: Authenticator) -> axum::Router {
    axum::Router::new()
        .route("/v1/compliance/ledger/{partition}/verify", get(verify))
        .route("/v1/compliance/investors/{investor_id}/trace", get(trace))
        .route(
            "/v1/compliance/investors/{investor_id}/trace/manifest",
            get(trace_manifest),
        )
        .route(
            "/v1/compliance/investors/{investor_id}/erasure",
            post(erase),
        )
        .route("/v1/compliance/grants", post(create_grant))
        .route("/v1/compliance/exports", post(create_export))
        .route("/v1/compliance/exports/{export_id}", get(get_export))
        .route(
            "/v1/compliance/exports/{export_id}/retry",
            post(retry_export),
        )
        .route_layer(require_auth(authenticator))
        .with_state(svc)
}

/// Authorise (admin, or compliance + active grant), then audit the attempt either way.
async fn guard(
    svc: &ComplianceService,
    caller: &Caller,
    action: &str,
    target: &str,
) -> Result<(), Problem> {
    let verdict = svc.authorize(caller).await;
    let outcome = if verdict.is_ok() { "allowed" } else { "denied" };
    svc.audit_access(caller, action, target, outcome).await?;
    verdict
}

fn investor_id(raw: &str) -> Result<String, Problem> {
    InvestorId::parse(raw)
        .map(|i| i.to_string())
        .map_err(|e| Problem::bad_request(format!("malformed investor id: {}", e.reason())))
}

fn no_ledger(what: &str) -> Problem {
    Problem::not_found(format!("No ledger records for {what}."))
}

/// Verify a partition's hash chain.
#[utoipa::path(get, path = "/v1/compliance/ledger/{partition}/verify", tag = "compliance",
    params(("partition" = String, Path, description = "an investor id, scheme-<code> or access-<tenant>-<subject>")),
    responses(
        (status = 200, description = "the walk's result: ok, or the first broken sequence number and why", body = VerifyReport),
        (status = 403, description = "not admin, or compliance without an active grant", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such partition (or another tenant's)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn verify(
    State(svc): State<Arc<ComplianceService>>,
    caller: Caller,
    ApiPath(partition): ApiPath<String>,
) -> Result<axum::Json<VerifyReport>, Problem> {
    guard(&svc, &caller, "ledger.verify", &partition).await?;
    svc.visible_head(&caller, &partition)
        .await?
        .ok_or_else(|| no_ledger(&partition))?;
    let report = svc
        .ledger()
        .verify(&partition)
        .await
        .map_err(Problem::internal)?;
    Ok(axum::Json(report))
}

/// The window and format of a trace.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TraceQuery {
    /// Start (inclusive): `YYYY-MM-DD` (00:00 IST) or an RFC 3339 instant. Default: the
    /// retention period ago.
    pub from: Option<String>,
    /// End (inclusive): `YYYY-MM-DD` (the whole day, IST) or an RFC 3339 instant. Default: now.
    pub to: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

fn parse_bound(raw: &str, end_of_day: bool) -> Result<DateTime<Utc>, Problem> {
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let t = if end_of_day {
            NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).expect("valid time")
        } else {
            NaiveTime::MIN
        };
        return Ok(ist_datetime(d, t).with_timezone(&Utc));
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            Problem::bad_request(format!(
                "`{raw}` is neither a date (YYYY-MM-DD) nor an RFC 3339 instant"
            ))
        })
}

impl TraceQuery {
    fn window(&self, svc: &ComplianceService) -> Result<(DateTime<Utc>, DateTime<Utc>), Problem> {
        let now = svc.now();
        let from = match &self.from {
            Some(f) => parse_bound(f, false)?,
            None => now - chrono::Duration::from_std(svc.config.retention()).unwrap_or_default(),
        };
        let to = match &self.to {
            Some(t) => parse_bound(t, true)?,
            None => now,
        };
        if from > to {
            return Err(Problem::bad_request("`from` is after `to`"));
        }
        Ok((from, to))
    }

    fn csv(&self) -> Result<bool, Problem> {
        match self.format.as_deref().unwrap_or("json") {
            "json" => Ok(false),
            "csv" => Ok(true),
            other => Err(Problem::bad_request(format!(
                "format `{other}` is not supported (json or csv)"
            ))),
        }
    }
}

/// The records of one investor's trace window, PII revealed, after the access checks.
async fn trace_records(
    svc: &ComplianceService,
    caller: &Caller,
    raw_id: &str,
    query: &TraceQuery,
    action: &str,
) -> Result<(String, DateTime<Utc>, DateTime<Utc>, Vec<LedgerRecord>), Problem> {
    let investor = investor_id(raw_id)?;
    let (from, to) = query.window(svc)?;
    guard(svc, caller, action, &format!("{investor} {from}..{to}")).await?;
    svc.visible_head(caller, &investor)
        .await?
        .ok_or_else(|| no_ledger(&format!("investor {investor}")))?;
    let records = svc
        .ledger()
        .between(&investor, from, to)
        .await
        .map_err(Problem::internal)?;
    let records = svc.revealed(&investor, records).await?;
    Ok((investor, from, to, records))
}

const CSV_COLUMNS: &[&str] = &[
    "sequence",
    "occurred_at",
    "event_type",
    "event_id",
    "trace_id",
    "actor",
    "recorded_at",
    "hash",
    "payload",
];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The CSV of a trace (deterministic: the same records give the same bytes).
fn trace_csv(records: &[LedgerRecord]) -> Vec<u8> {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for r in records {
        let cells = [
            r.seq.to_string(),
            r.occurred_at.clone(),
            r.event_type.clone(),
            r.event_id.clone(),
            r.trace_id.clone().unwrap_or_default(),
            r.actor.clone(),
            r.recorded_at.clone(),
            r.hash.clone(),
            canonical_json(&r.payload),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

/// An investor's trace: every ledger record in the window (KYC, orders, payments,
/// transactions, notifications...), oldest first.
#[utoipa::path(get, path = "/v1/compliance/investors/{investorId}/trace", tag = "compliance",
    params(("investorId" = String, Path), TraceQuery),
    responses(
        (status = 200, description = "JSON `{investorId, from, to, count, records}`, or CSV with the `X-Manifest-SHA256` header"),
        (status = 400, description = "malformed id, window or format", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not admin, or compliance without an active grant", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no records for the investor (or another tenant's)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn trace(
    State(svc): State<Arc<ComplianceService>>,
    caller: Caller,
    ApiPath(raw_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<TraceQuery>,
) -> Result<Response, Problem> {
    let csv = query.csv()?;
    let (investor, from, to, records) =
        trace_records(&svc, &caller, &raw_id, &query, "investor.trace").await?;
    if csv {
        let body = trace_csv(&records);
        let sha = sha256_hex(&body);
        let mut resp = (StatusCode::OK, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        h.insert(
            MANIFEST_HEADER,
            HeaderValue::from_str(&sha).expect("hex is a valid header"),
        );
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&format!("attachment; filename=\"trace-{investor}.csv\""))
                .map_err(Problem::internal)?,
        );
        return Ok(resp);
    }
    Ok(axum::Json(json!({
        "investorId": investor,
        "from": nivesh_domain::time::to_ist(from).to_rfc3339(),
        "to": nivesh_domain::time::to_ist(to).to_rfc3339(),
        "count": records.len(),
        "records": records,
    }))
    .into_response())
}

/// The manifest of a CSV trace.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceManifest {
    pub investor_id: String,
    pub from: String,
    pub to: String,
    pub format: String,
    pub row_count: usize,
    /// SHA-256 (hex) of the CSV body the trace endpoint returns for the same window.
    pub sha256: String,
    pub columns: Vec<String>,
    pub generated_at: String,
}

/// The manifest (row count, SHA-256) of the CSV trace of the same window.
#[utoipa::path(get, path = "/v1/compliance/investors/{investorId}/trace/manifest", tag = "compliance",
    params(("investorId" = String, Path), TraceQuery),
    responses(
        (status = 200, description = "the manifest", body = TraceManifest),
        (status = 403, description = "not authorised", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no records for the investor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn trace_manifest(
    State(svc): State<Arc<ComplianceService>>,
    caller: Caller,
    ApiPath(raw_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<TraceQuery>,
) -> Result<axum::Json<TraceManifest>, Problem> {
    let (investor, from, to, records) =
        trace_records(&svc, &caller, &raw_id, &query, "investor.trace.manifest").await?;
    let body = trace_csv(&records);
    Ok(axum::Json(TraceManifest {
        investor_id: investor,
        from: nivesh_domain::time::to_ist(from).to_rfc3339(),
        to: nivesh_domain::time::to_ist(to).to_rfc3339(),
        format: "csv".into(),
        row_count: records.len(),
        sha256: sha256_hex(&body),
        columns: CSV_COLUMNS.iter().map(|c| (*c).to_string()).collect(),
        generated_at: nivesh_domain::time::to_ist(svc.now()).to_rfc3339(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureResult {
    pub investor_id: String,
    /// True when a usable key was destroyed by this call (false: already erased / no key).
    pub key_destroyed: bool,
    pub erased_at: String,
}

/// Crypto-shred an investor's ledger key: their PII in the ledger reads "[erased]" from now on;
/// the chain still verifies.
#[utoipa::path(post, path = "/v1/compliance/investors/{investorId}/erasure", tag = "compliance",
    params(("investorId" = String, Path)),
    responses(
        (status = 200, description = "erased", body = ErasureResult),
        (status = 403, description = "not authorised", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "another tenant's investor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn erase(
    State(svc): State<Arc<ComplianceService>>,
    caller: Caller,
    ApiPath(raw_id): ApiPath<String>,
) -> Result<axum::Json<ErasureResult>, Problem> {
    let investor = investor_id(&raw_id)?;
    guard(&svc, &caller, "investor.erasure", &investor).await?;
    if let Some(head) = svc
        .ledger()
        .head(&investor)
        .await
        .map_err(Problem::internal)?
        && head.tenant.as_deref().is_some_and(|t| t != caller.tenant)
    {
        return Err(no_ledger(&format!("investor {investor}")));
    }
    let now = svc.now();
    let destroyed = svc
        .keys()
        .shred(&investor, now)
        .await
        .map_err(Problem::internal)?;
    svc.ledger()
        .append(&NewRecord {
            partition: investor.clone(),
            tenant: Some(caller.tenant.clone()),
            tenant_stated: false,
            event_id: uuid::Uuid::now_v7().to_string(),
            event_type: ERASURE_EVENT.into(),
            trace_id: current_trace_id(),
            actor: caller.subject.clone(),
            occurred_at: now,
            payload: json!({"investor_id": investor, "requested_by": caller.subject,
                            "key_destroyed": destroyed}),
        })
        .await
        .map_err(Problem::internal)?;
    Ok(axum::Json(ErasureResult {
        investor_id: investor,
        key_destroyed: destroyed,
        erased_at: nivesh_domain::time::to_ist(now).to_rfc3339(),
    }))
}

/// `POST /v1/compliance/grants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantRequest {
    /// Token subject (`sub`) of the compliance officer.
    pub subject: String,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub reason: String,
}

/// Grant a compliance officer time-boxed access (administrators only).
#[utoipa::path(post, path = "/v1/compliance/grants", tag = "compliance", request_body = GrantRequest,
    responses(
        (status = 201, description = "the grant", body = Grant),
        (status = 403, description = "not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "empty subject/reason or validUntil not after validFrom", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_grant(
    State(svc): State<Arc<ComplianceService>>,
    caller: Caller,
    ApiJson(req): ApiJson<GrantRequest>,
) -> Result<(StatusCode, axum::Json<Grant>), Problem> {
    let allowed = caller.require_role(Role::Admin);
    let outcome = if allowed.is_ok() { "allowed" } else { "denied" };
    svc.audit_access(&caller, "grant.create", &req.subject, outcome)
        .await?;
    allowed?;
    let mut errors = Vec::new();
    if req.subject.trim().is_empty() {
        errors.push(("subject", "must not be empty"));
    }
    if req.reason.trim().is_empty() {
        errors.push(("reason", "must not be empty"));
    }
    if req.valid_until <= req.valid_from {
        errors.push(("validUntil", "must be after validFrom"));
    }
    if !errors.is_empty() {
        return Err(Problem::unprocessable("The grant is invalid.").with_field_errors(errors));
    }
    let grant = svc
        .create_grant(
            &caller,
            req.subject.trim(),
            req.valid_from,
            req.valid_until,
            req.reason.trim(),
        )
        .await
        .map_err(Problem::internal)?;
    Ok((StatusCode::CREATED, axum::Json(grant)))
}

/// `POST /v1/compliance/exports`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportRequest {
    /// `SEBI_TRANSACTIONS`.
    pub kind: String,
    /// The transaction date (IST) to export.
    pub date: NaiveDate,
}

/// Start an export job; poll `GET /v1/compliance/exports/{exportId}`.
#[utoipa::path(post, path = "/v1/compliance/exports", tag = "compliance", request_body = ExportRequest,
    responses(
        (status = 202, description = "accepted (status Pending); Location header", body = ExportJob),
        (status = 403, description = "not authorised", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "unknown kind", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_export(
    State(svc): State<Arc<ComplianceService>>,
    caller: Caller,
    ApiJson(req): ApiJson<ExportRequest>,
) -> Result<Response, Problem> {
    guard(
        &svc,
        &caller,
        "export.create",
        &format!("{} {}", req.kind, req.date),
    )
    .await?;
    if req.kind != KIND_SEBI_TRANSACTIONS {
        return Err(Problem::unprocessable(format!(
            "export kind `{}` is not supported ({KIND_SEBI_TRANSACTIONS})",
            req.kind
        )));
    }
    let job = svc
        .create_export(&caller.tenant, req.date, &caller.subject)
        .await
        .map_err(Problem::internal)?;
    svc.spawn_export(job.clone());
    let location = format!("/v1/compliance/exports/{}", job.export_id);
    let mut resp = (StatusCode::ACCEPTED, axum::Json(job)).into_response();
    resp.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(Problem::internal)?,
    );
    Ok(resp)
}

async fn load_export(
    svc: &ComplianceService,
    caller: &Caller,
    export_id: &str,
) -> Result<ExportJob, Problem> {
    svc.export_job(export_id)
        .await
        .map_err(Problem::internal)?
        .filter(|j| j.tenant == caller.tenant)
        .ok_or_else(|| Problem::not_found(format!("No export {export_id}.")))
}

/// An export job: status (Pending, Validated, Rejected with reasons, NeedsRetry, Delivered with
/// the file path and manifest) and its history.
#[utoipa::path(get, path = "/v1/compliance/exports/{exportId}", tag = "compliance",
    params(("exportId" = String, Path)),
    responses(
        (status = 200, description = "the job", body = ExportJob),
        (status = 403, description = "not authorised", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such export in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_export(
    State(svc): State<Arc<ComplianceService>>,
    caller: Caller,
    ApiPath(export_id): ApiPath<String>,
) -> Result<axum::Json<ExportJob>, Problem> {
    guard(&svc, &caller, "export.read", &export_id).await?;
    Ok(axum::Json(load_export(&svc, &caller, &export_id).await?))
}

/// Re-run a Rejected or NeedsRetry export from validation (never from older data).
#[utoipa::path(post, path = "/v1/compliance/exports/{exportId}/retry", tag = "compliance",
    params(("exportId" = String, Path)),
    responses(
        (status = 202, description = "re-running (status Pending)", body = ExportJob),
        (status = 403, description = "not authorised", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such export", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the export is not Rejected or NeedsRetry", body = Problem, content_type = "application/problem+json"),
    ))]
async fn retry_export(
    State(svc): State<Arc<ComplianceService>>,
    caller: Caller,
    ApiPath(export_id): ApiPath<String>,
) -> Result<(StatusCode, axum::Json<ExportJob>), Problem> {
    guard(&svc, &caller, "export.retry", &export_id).await?;
    let mut job = load_export(&svc, &caller, &export_id).await?;
    if !matches!(
        job.status,
        ExportStatus::Rejected | ExportStatus::NeedsRetry
    ) {
        return Err(Problem::conflict(format!(
            "Export {export_id} is {:?}; only Rejected or NeedsRetry exports are retried.",
            job.status
        )));
    }
    svc.set_status(
        &mut job,
        ExportStatus::Pending,
        Some(format!("retry requested by {}", caller.subject)),
    );
    svc.save_job(&job, None).await.map_err(Problem::internal)?;
    svc.spawn_export(job.clone());
    Ok((StatusCode::ACCEPTED, axum::Json(job)))
}
