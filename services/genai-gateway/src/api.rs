//! The GenAI API. Every route needs a bearer token (`nivesh-auth`); see [`crate::access`] for
//! who may call what. Every answer is `200` with an [`AnswerView`], including the fallbacks
//! (escalation, quota, LLM down); 4xx problems are only for bad input and access.
//!
//! - `POST /v1/genai/ask`: an investor's question about their holdings and funds.
//! - `GET /v1/genai/anomalies`: NAVs published with the anomaly flag, newest first.
//! - `GET /v1/genai/anomalies/{anomalyId}/explanation`: `anomalyId` = `{schemeCode}:{navDate}`.
//! - `POST /v1/genai/documents` (JSON text) and `POST /v1/genai/documents/pdf` (a PDF body):
//!   store a fund document and get its summary with sources.
//! - `POST /v1/genai/support/drafts`: a reply draft for a CRM ticket.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use chrono::Utc;
use nivesh_auth::Caller;
use nivesh_runtime::problem::{ApiJson, ApiPath, ApiQuery, Problem};
use nivesh_store::{Batch, WriteOp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::access;
use crate::context::{Retrieved, Retriever, Source};
use crate::gateway::{AnswerView, Gateway, GroundingView, Job, Outcome, SourceView, UseCase};
use crate::mask::Kind;
use crate::model::{Anomaly, DOCUMENTS, FundDocument, parse_anomaly_id};

#[derive(Clone)]
pub struct GenAiApi {
    pub gateway: Arc<Gateway>,
    pub retriever: Arc<Retriever>,
    /// Passages retrieved by BM25 per request.
    pub top_k: usize,
    /// Largest accepted document text (characters).
    pub max_document_chars: usize,
}

#[derive(OpenApi)]
#[openapi(
    paths(
        ask,
        list_anomalies,
        explain_anomaly,
        upload_document,
        upload_pdf,
        support_draft
    ),
    components(schemas(
        AskRequest,
        AnswerView,
        SourceView,
        GroundingView,
        Outcome,
        Anomaly,
        AnomalyList,
        DocumentRequest,
        DocumentSummary,
        DraftRequest,
        DraftView
    ))
)]
pub struct ApiDoc;

pub fn router(api: GenAiApi) -> axum::Router {
    axum::Router::new()
        .route("/v1/genai/ask", post(ask))
        .route("/v1/genai/anomalies", get(list_anomalies))
        .route(
            "/v1/genai/anomalies/{anomaly_id}/explanation",
            get(explain_anomaly),
        )
        .route("/v1/genai/documents", post(upload_document))
        .route("/v1/genai/documents/pdf", post(upload_pdf))
        .route("/v1/genai/support/drafts", post(support_draft))
        .with_state(api)
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

fn check_text(name: &str, text: &str, max: usize) -> Result<(), Problem> {
    if text.trim().is_empty() {
        return Err(Problem::bad_request(format!("{name} must not be empty")));
    }
    if text.chars().count() > max {
        return Err(Problem::bad_request(format!(
            "{name} must be at most {max} characters"
        )));
    }
    Ok(())
}

/// `POST /v1/genai/ask`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AskRequest {
    /// 1 to 2000 characters.
    #[schema(example = "What is my portfolio worth and which fund gained most this month?")]
    pub question: String,
    /// Distributors (an investor they onboarded) and admins: the investor to answer about.
    /// Investors get their own portfolio (another id is a 404).
    pub investor_id: Option<String>,
}

/// Answer an investor's question from their own holdings and fund facts.
#[utoipa::path(post, path = "/v1/genai/ask", request_body = AskRequest,
    security(("bearer" = [])),
    responses((status = 200, body = AnswerView, description = "An answer with sources and grounding, or a templated fallback (escalated, quota exhausted, LLM unavailable)"),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
              (status = 401, body = Problem, content_type = "application/problem+json", description = "No or invalid bearer token"),
              (status = 403, body = Problem, content_type = "application/problem+json", description = "Role may not ask"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "Investor not visible to the caller")))]
async fn ask(
    State(api): State<GenAiApi>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(req): ApiJson<AskRequest>,
) -> Result<Json<AnswerView>, Problem> {
    check_text("question", &req.question, 2000)?;
    let investor = access::ask_target(&caller, req.investor_id.as_deref())?;
    let onboarded_by = api
        .retriever
        .profile(&caller.tenant, &investor)
        .await
        .map_err(Problem::internal)?
        .and_then(|p| p.distributor_id);
    access::ask_access(&caller, &investor, onboarded_by.as_deref())?;
    let mut retrieved = api
        .retriever
        .portfolio(&caller.tenant, &investor)
        .await
        .map_err(Problem::internal)?;
    retrieved.extend(
        api.retriever
            .search(&req.question, &caller.tenant, api.top_k)
            .await,
    );
    let job = Job {
        use_case: UseCase::Ask,
        tenant: caller.tenant.clone(),
        role: access::quota_role(&caller),
        subject: caller.subject.clone(),
        investor: Some(investor),
        question: req.question,
        retrieved,
        advice_allowed: access::advice_allowed(&caller),
    };
    Ok(Json(api.gateway.run(job, request_id(&headers)).await))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnomalyParams {
    /// 1 to 500 (default 100).
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyList {
    pub items: Vec<Anomaly>,
}

/// NAVs published with the anomaly flag, newest first.
#[utoipa::path(get, path = "/v1/genai/anomalies", params(AnomalyParams),
    security(("bearer" = [])),
    responses((status = 200, body = AnomalyList),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "Bad limit"),
              (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn list_anomalies(
    State(api): State<GenAiApi>,
    caller: Caller,
    ApiQuery(p): ApiQuery<AnomalyParams>,
) -> Result<Json<AnomalyList>, Problem> {
    access::anomalies(&caller)?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 500"));
    }
    let items = api
        .retriever
        .anomalies(limit)
        .await
        .map_err(Problem::internal)?;
    Ok(Json(AnomalyList { items }))
}

/// Explain why a NAV was flagged as an anomaly.
#[utoipa::path(get, path = "/v1/genai/anomalies/{anomaly_id}/explanation",
    params(("anomaly_id" = String, Path, description = "`{schemeCode}:{navDate}`", example = "119551:2025-02-25")),
    security(("bearer" = [])),
    responses((status = 200, body = AnswerView),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed anomaly id"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "No such anomaly")))]
async fn explain_anomaly(
    State(api): State<GenAiApi>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AnswerView>, Problem> {
    access::anomalies(&caller)?;
    let (scheme, date) = parse_anomaly_id(&id).ok_or_else(|| {
        Problem::bad_request("anomalyId must be {schemeCode}:{navDate}, e.g. 119551:2025-02-25")
    })?;
    let Some((anomaly, retrieved)) = api
        .retriever
        .anomaly(&scheme, date)
        .await
        .map_err(Problem::internal)?
    else {
        return Err(Problem::not_found(format!("No anomaly {id}.")));
    };
    let job = Job {
        use_case: UseCase::Anomaly,
        tenant: caller.tenant.clone(),
        role: access::quota_role(&caller),
        subject: caller.subject.clone(),
        investor: None,
        question: format!(
            "Explain why the NAV of {} on {} was flagged as an anomaly.",
            anomaly.scheme_name, anomaly.nav_date
        ),
        retrieved,
        advice_allowed: false,
    };
    Ok(Json(api.gateway.run(job, request_id(&headers)).await))
}

/// `POST /v1/genai/documents`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DocumentRequest {
    /// 1 to 200 characters.
    pub title: String,
    /// The scheme the document is about, if one.
    pub scheme_code: Option<String>,
    /// The document's text (for a PDF use `POST /v1/genai/documents/pdf`).
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentSummary {
    pub document_id: String,
    pub passages: usize,
    pub summary: AnswerView,
}

/// Split a document into passages of about `target` characters at sentence boundaries.
pub fn chunk(text: &str, target: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut cur = String::new();
    for s in crate::policy::sentences(text) {
        if !cur.is_empty() && cur.len() + s.len() + 1 > target {
            chunks.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(&s);
    }
    if !cur.trim().is_empty() {
        chunks.push(cur);
    }
    chunks
}

/// Store a fund document for retrieval (tenant-scoped) and summarise it, with sources.
#[utoipa::path(post, path = "/v1/genai/documents", request_body = DocumentRequest,
    security(("bearer" = [])),
    responses((status = 200, body = DocumentSummary, description = "Stored; the summary (or a templated fallback)"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json", description = "Role may not upload")))]
async fn upload_document(
    State(api): State<GenAiApi>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(req): ApiJson<DocumentRequest>,
) -> Result<Json<DocumentSummary>, Problem> {
    store_and_summarise(&api, &caller, &headers, req).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct PdfParams {
    /// 1 to 200 characters.
    title: String,
    /// The scheme the document is about, if one.
    scheme_code: Option<String>,
}

/// Text of a PDF (pure Rust, `pdf-extract`); None when it has no extractable text or is not a PDF.
pub async fn pdf_text(bytes: Vec<u8>) -> Option<String> {
    let extracted = tokio::task::spawn_blocking(move || {
        // pdf-extract may panic on malformed input: contain it to this request.
        std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(&bytes).ok())
            .ok()
            .flatten()
    })
    .await
    .ok()
    .flatten()?;
    let text = extracted.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

/// The same as `POST /v1/genai/documents` for a PDF sent as the body (`application/pdf`, up to
/// the service's body limit): its text is extracted, stored and summarised.
#[utoipa::path(post, path = "/v1/genai/documents/pdf", params(PdfParams),
    request_body(content = Vec<u8>, content_type = "application/pdf"),
    security(("bearer" = [])),
    responses((status = 200, body = DocumentSummary),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "Bad title or scheme code"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 415, body = Problem, content_type = "application/problem+json", description = "Not application/pdf"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "Not a PDF, or no extractable text (scanned images)")))]
async fn upload_pdf(
    State(api): State<GenAiApi>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<PdfParams>,
    body: axum::body::Bytes,
) -> Result<Json<DocumentSummary>, Problem> {
    access::documents(&caller)?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/pdf") {
        return Err(Problem::new(axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .with_detail("send the PDF as the body with Content-Type: application/pdf"));
    }
    check_text("title", &p.title, 200)?;
    let text = pdf_text(body.to_vec()).await.ok_or_else(|| {
        Problem::unprocessable(
            "not a PDF, or a PDF without extractable text (scanned pages are not read)",
        )
    })?;
    let req = DocumentRequest {
        title: p.title,
        scheme_code: p.scheme_code,
        text,
    };
    store_and_summarise(&api, &caller, &headers, req).await
}

async fn store_and_summarise(
    api: &GenAiApi,
    caller: &Caller,
    headers: &HeaderMap,
    req: DocumentRequest,
) -> Result<Json<DocumentSummary>, Problem> {
    access::documents(caller)?;
    check_text("title", &req.title, 200)?;
    check_text("text", &req.text, api.max_document_chars)?;
    if let Some(code) = &req.scheme_code {
        nivesh_domain::SchemeCode::parse(code).map_err(|e| Problem::bad_request(e.to_string()))?;
    }
    let document_id = uuid::Uuid::now_v7().to_string();
    let chunks = chunk(&req.text, 800);
    let doc = FundDocument {
        document_id: document_id.clone(),
        tenant: caller.tenant.clone(),
        title: req.title.clone(),
        scheme_code: req.scheme_code.clone(),
        chunks: chunks.clone(),
        uploaded_by_hash: api.gateway.user_hash(&caller.tenant, &caller.subject),
        uploaded_at: Utc::now(),
    };
    api.gateway
        .store
        .commit(Batch::new(DOCUMENTS, &caller.tenant).op(WriteOp::Create {
            id: format!("doc:{document_id}"),
            body: serde_json::to_value(&doc).map_err(Problem::internal)?,
            ttl: None,
        }))
        .await
        .map_err(Problem::internal)?;
    let sources = chunks
        .iter()
        .take(12)
        .enumerate()
        .map(|(i, c)| Source {
            id: format!("doc:{document_id}#{}", i + 1),
            kind: "document".into(),
            title: req.title.clone(),
            text: c.clone(),
        })
        .collect();
    let job = Job {
        use_case: UseCase::Document,
        tenant: caller.tenant.clone(),
        role: access::quota_role(caller),
        subject: caller.subject.clone(),
        investor: None,
        question: format!("Summarise the document \"{}\".", req.title),
        retrieved: Retrieved {
            sources,
            known_pii: Vec::new(),
        },
        advice_allowed: false,
    };
    let summary = api.gateway.run(job, request_id(headers)).await;
    Ok(Json(DocumentSummary {
        document_id,
        passages: chunks.len(),
        summary,
    }))
}

/// `POST /v1/genai/support/drafts`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DraftRequest {
    /// The CRM ticket's id.
    pub ticket_id: String,
    pub subject: String,
    /// The customer's message (PII is masked before anything leaves).
    pub message: String,
    /// Used in the greeting; masked in the prompt.
    pub customer_name: Option<String>,
    /// The investor the ticket is about; their portfolio is used only when the caller may
    /// access that investor.
    pub investor_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DraftView {
    pub ticket_id: String,
    /// The reply to review and send (greeting and sign-off around the grounded body).
    pub draft: String,
    pub result: AnswerView,
}

/// Draft a reply to a CRM ticket from fund facts, documents and (if permitted) the portfolio.
#[utoipa::path(post, path = "/v1/genai/support/drafts", request_body = DraftRequest,
    security(("bearer" = [])),
    responses((status = 200, body = DraftView),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json", description = "Only ops and admins draft replies")))]
async fn support_draft(
    State(api): State<GenAiApi>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(req): ApiJson<DraftRequest>,
) -> Result<Json<DraftView>, Problem> {
    access::support_drafts(&caller)?;
    check_text("ticketId", &req.ticket_id, 100)?;
    check_text("subject", &req.subject, 300)?;
    check_text("message", &req.message, 5000)?;
    let mut retrieved = Retrieved::default();
    if let Some(inv) = &req.investor_id {
        nivesh_domain::InvestorId::parse(inv).map_err(|e| Problem::bad_request(e.to_string()))?;
        let onboarded_by = api
            .retriever
            .profile(&caller.tenant, inv)
            .await
            .map_err(Problem::internal)?
            .and_then(|p| p.distributor_id);
        if access::draft_may_use_investor(&caller, inv, onboarded_by.as_deref()) {
            retrieved = api
                .retriever
                .portfolio(&caller.tenant, inv)
                .await
                .map_err(Problem::internal)?;
        } else {
            retrieved.known_pii.push((Kind::Account, inv.clone()));
        }
    }
    if let Some(name) = &req.customer_name {
        retrieved.known_pii.push((Kind::Name, name.clone()));
    }
    let question = format!("{}\n{}", req.subject, req.message);
    retrieved.extend(
        api.retriever
            .search(&question, &caller.tenant, api.top_k)
            .await,
    );
    let job = Job {
        use_case: UseCase::SupportDraft,
        tenant: caller.tenant.clone(),
        role: access::quota_role(&caller),
        subject: caller.subject.clone(),
        investor: req.investor_id.clone(),
        question,
        retrieved,
        advice_allowed: false,
    };
    let result = api.gateway.run(job, request_id(&headers)).await;
    let greeting = req
        .customer_name
        .as_deref()
        .map_or_else(|| "Dear Investor,".to_string(), |n| format!("Dear {n},"));
    let draft = match result.outcome {
        Outcome::Answered => format!(
            "{greeting}\n\nThank you for writing to us. {}\n\nRegards,\nNivesh Support",
            result.answer
        ),
        _ => result.answer.clone(),
    };
    Ok(Json(DraftView {
        ticket_id: req.ticket_id,
        draft,
        result,
    }))
}
