//! HTTP API of the ingestor: ops upload a NAV file and read its report. Both need a bearer token
//! (401) of an ops or admin user of the platform tenant (else 403). NAVs themselves are public:
//! nav-publisher serves them without a token.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use nivesh_auth::{Authenticator, Caller, Role, require_auth};
use nivesh_runtime::problem::Problem;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::ingest::{FileRecord, IngestError, IngestOutcome, Ingestor, StoredRejection};
use crate::parse::NavSource;

/// Upper bound for one upload (the national AMFI file is ~1.6 MB).
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    paths(upload_file, file_report),
    components(schemas(FileReport, RejectedLineView, FileRecord))
)]
pub struct ApiDoc;

/// Who may upload NAV files and read their reports.
const NAV_OPERATORS: [Role; 2] = [Role::Ops, Role::Admin];

pub fn router(ingestor: Ingestor, authenticator: Authenticator) -> axum::Router {
    axum::Router::new()
        .route("/v1/nav/files", post(upload_file))
        .route("/v1/nav/files/{file_id}", get(file_report))
        .route_layer(require_auth(authenticator))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(ingestor)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UploadParams {
    /// AMFI, CAMS or KFINTECH. May also be given in the `X-Nav-Source` header.
    source: Option<String>,
}

/// A file's report: counts, and every rejected line with its reason.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileReport {
    #[serde(flatten)]
    pub file: FileRecord,
    /// True when this upload was a re-delivery of a file already accepted (nothing republished).
    pub duplicate: bool,
    pub rejected_lines: Vec<RejectedLineView>,
    /// Pass as `after` to read the next page of rejected lines.
    pub next_after: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectedLineView {
    pub line_number: u64,
    pub reason_code: String,
    pub reason: String,
    pub raw: String,
}

impl From<StoredRejection> for RejectedLineView {
    fn from(r: StoredRejection) -> Self {
        RejectedLineView {
            line_number: r.line_number,
            reason_code: r.reason_code,
            reason: r.reason,
            raw: r.raw,
        }
    }
}

/// Upload a NAV file (raw body). Re-delivering the same bytes is a no-op reported as a duplicate.
#[utoipa::path(post, path = "/v1/nav/files", params(UploadParams),
    request_body(content = String, content_type = "text/plain"),
    responses((status = 201, body = FileReport), (status = 200, description = "duplicate", body = FileReport),
              (status = 400, description = "bad source or unreadable file")))]
async fn upload_file(
    State(ingestor): State<Ingestor>,
    caller: Caller,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, Problem> {
    caller.require_platform_role(&NAV_OPERATORS)?;
    let source_name = params
        .source
        .or_else(|| headers.get("x-nav-source").and_then(|v| v.to_str().ok()).map(str::to_string))
        .ok_or_else(|| Problem::bad_request("name the file's source in ?source= or the X-Nav-Source header (AMFI, CAMS, KFINTECH)"))?;
    let source: NavSource = source_name.parse().map_err(|_| {
        Problem::bad_request(format!(
            "unknown NAV source '{source_name}': expected AMFI, CAMS or KFINTECH"
        ))
    })?;
    if body.is_empty() {
        return Err(Problem::bad_request("the file is empty"));
    }
    let outcome = ingestor
        .ingest(source, body)
        .await
        .map_err(ingest_problem)?;
    let (status, record, duplicate) = match outcome {
        IngestOutcome::Accepted(r) => (StatusCode::CREATED, r, false),
        IngestOutcome::Duplicate(r) => (StatusCode::OK, r, true),
    };
    let report = build_report(&ingestor, record, duplicate, 0, 100).await?;
    Ok((status, Json(report)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ReportParams {
    /// Show rejected lines after this line number.
    after: Option<u64>,
    /// Page size for rejected lines (max 1000).
    limit: Option<usize>,
}

/// A file's report.
#[utoipa::path(get, path = "/v1/nav/files/{file_id}", params(("file_id" = String, Path), ReportParams),
    responses((status = 200, body = FileReport), (status = 404, description = "unknown file")))]
async fn file_report(
    State(ingestor): State<Ingestor>,
    caller: Caller,
    Path(file_id): Path<String>,
    Query(params): Query<ReportParams>,
) -> Result<Json<FileReport>, Problem> {
    caller.require_platform_role(&NAV_OPERATORS)?;
    let limit = params.limit.unwrap_or(1000).clamp(1, 1000);
    let Some((record, _)) = ingestor
        .report(&file_id, 0, 0)
        .await
        .map_err(ingest_problem)?
    else {
        return Err(Problem::not_found(format!("no NAV file {file_id}")));
    };
    Ok(Json(
        build_report(&ingestor, record, false, params.after.unwrap_or(0), limit).await?,
    ))
}

async fn build_report(
    ingestor: &Ingestor,
    file: FileRecord,
    duplicate: bool,
    after: u64,
    limit: usize,
) -> Result<FileReport, Problem> {
    let (_, lines) = ingestor
        .report(&file.file_id, after, limit)
        .await
        .map_err(ingest_problem)?
        .unwrap_or((file.clone(), Vec::new()));
    let next_after = if lines.len() == limit {
        lines.last().map(|l| l.line_number)
    } else {
        None
    };
    Ok(FileReport {
        file,
        duplicate,
        rejected_lines: lines.into_iter().map(Into::into).collect(),
        next_after,
    })
}

fn ingest_problem(e: IngestError) -> Problem {
    match e {
        IngestError::Unreadable(reason) => Problem::bad_request(reason),
        other => Problem::internal(other),
    }
}
