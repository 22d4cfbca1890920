//! RFC 7807 problem details: the one error body every Nivesh API returns
//! (`application/problem+json`).
//!
//! A [`Problem`] is built where the error is understood (a handler) and finished where the
//! request is understood: [`Problem::into_response`] also stores the problem in the response's
//! extensions, and the request layer in [`crate::http`] fills `instance` and the `request_id`
//! extension before the body leaves. So handlers never thread the request id through.
//!
//! The extractors [`ApiJson`], [`ApiPath`] and [`ApiQuery`] wrap axum's and turn their
//! rejections (plain text) into problems. As a safety net the request layer also rewrites any
//! other error response without a JSON body (axum's own rejections, 405, 413, a panic) into a
//! problem, so no `text/plain` error ever reaches a client.

use std::fmt;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What a 5xx says instead of the cause: internals (SQL, hostnames, stack traces) stay in the
/// logs, correlated by the request id the client can quote.
pub const INTERNAL_DETAIL: &str =
    "An unexpected error occurred. Quote the request id when reporting it.";

/// An RFC 7807 problem. Serializes to the standard members plus the extensions at top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// `about:blank` (the HTTP status says it all) or a URI naming the problem type.
    #[serde(rename = "type", default = "about_blank")]
    pub type_uri: String,
    pub title: String,
    #[serde(with = "status_code")]
    #[schema(value_type = u16)]
    pub status: StatusCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path the problem occurred on (filled by the request layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extension members, e.g. `request_id`, `errors`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
    /// Sent as `Retry-After` (whole seconds, rounded up); not part of the body.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

fn about_blank() -> String {
    "about:blank".to_string()
}

mod status_code {
    use http::StatusCode;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(s: &StatusCode, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_u16(s.as_u16())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StatusCode, D::Error> {
        StatusCode::from_u16(u16::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Problem {
    /// A problem of type `about:blank` whose title is the status's reason phrase (RFC 7807 §4.2).
    pub fn new(status: StatusCode) -> Self {
        Problem {
            type_uri: about_blank(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status,
            detail: None,
            instance: None,
            extensions: Map::new(),
            retry_after: None,
        }
    }

    fn with_status_detail(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem::new(status).with_detail(detail)
    }

    /// 400: the request is malformed (syntax, unknown parameter value).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::with_status_detail(StatusCode::BAD_REQUEST, detail)
    }

    /// 422: well-formed but semantically invalid (business validation).
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::with_status_detail(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::with_status_detail(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::with_status_detail(StatusCode::CONFLICT, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::with_status_detail(StatusCode::UNAUTHORIZED, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::with_status_detail(StatusCode::FORBIDDEN, detail)
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(retry_after: Duration) -> Self {
        Problem {
            retry_after: Some(retry_after),
            ..Problem::new(StatusCode::TOO_MANY_REQUESTS)
        }
        .with_detail(format!(
            "Too many requests; retry after {} s.",
            retry_secs(retry_after)
        ))
    }

    /// 503 with `Retry-After`: a dependency is down and the request is worth repeating.
    pub fn service_unavailable(retry_after: Duration) -> Self {
        Problem {
            retry_after: Some(retry_after),
            ..Problem::new(StatusCode::SERVICE_UNAVAILABLE)
        }
        .with_detail(format!(
            "Temporarily unavailable; retry after {} s.",
            retry_secs(retry_after)
        ))
    }

    /// Internal server error (500). The cause is logged, inside the request's span and so
    /// with its request id and trace id, and never sent: error texts carry SQL, hostnames and
    /// other internals.
    pub fn internal(error: impl fmt::Display) -> Self {
        tracing::error!(error = %error, "internal error answered with 500");
        Self::with_status_detail(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_DETAIL)
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// A problem type of our own (a URI) with its title.
    pub fn with_type(mut self, type_uri: impl Into<String>, title: impl Into<String>) -> Self {
        self.type_uri = type_uri.into();
        self.title = title.into();
        self
    }

    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Per-field validation errors as the `errors` extension: `[{"field": .., "reason": ..}]`.
    pub fn with_field_errors<F: Into<String>, R: Into<String>>(
        self,
        errors: impl IntoIterator<Item = (F, R)>,
    ) -> Self {
        let list: Vec<Value> = errors
            .into_iter()
            .map(|(field, reason)| serde_json::json!({ "field": field.into(), "reason": reason.into() }))
            .collect();
        self.with_extension("errors", list)
    }

    /// An extension member. The standard members' names are refused (they would be ambiguous
    /// once flattened into the body), so such a call is ignored with a warning.
    pub fn with_extension(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        let key = key.into();
        if matches!(
            key.as_str(),
            "type" | "title" | "status" | "detail" | "instance"
        ) {
            tracing::warn!(key = %key, "problem extension would shadow a standard member; ignored");
            return self;
        }
        self.extensions.insert(key, value.into());
        self
    }

    /// The body as sent.
    pub fn to_json(&self) -> Vec<u8> {
        // A Map of Values and strings cannot fail to serialize.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

fn retry_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.title)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.to_json()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(after) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_secs(after)));
        }
        // Picked up by the request layer, which adds the request id and re-renders the body.
        response.extensions_mut().insert(self);
        response
    }
}

/// Fallback for unknown paths: 404 problem.
pub(crate) async fn not_found_fallback(method: http::Method, uri: http::Uri) -> Problem {
    Problem::not_found(format!("No route for {method} {}.", uri.path()))
}

/// Fallback for a known path with the wrong method: 405 problem. axum adds the `Allow` header.
pub(crate) async fn method_not_allowed_fallback(method: http::Method, uri: http::Uri) -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED)
        .with_detail(format!("{method} is not allowed on {}.", uri.path()))
}

/// A rejection turned into a problem: 4xx keep axum's explanation (it describes the client's
/// mistake: "missing field `amount` at line 1 column 20"); 5xx (extractor misuse in our code)
/// become a generic internal problem.
fn rejection_problem(status: StatusCode, text: String) -> Problem {
    if status.is_server_error() {
        Problem::internal(text)
    } else {
        Problem::new(status).with_detail(text)
    }
}

/// `Json` whose rejections are problems: malformed JSON → 400, wrong shape or types → 422,
/// wrong content type → 415, body too large → 413. Also a response type (plain JSON).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> Problem {
    rejection_problem(rejection.status(), rejection.body_text())
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Path` whose rejections are problems (400).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> Problem {
    rejection_problem(rejection.status(), rejection.body_text())
}

/// `Query` whose rejections are problems (400).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> Problem {
    rejection_problem(rejection.status(), rejection.body_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standard members and extensions serialize flat, as RFC 7807 prescribes.
    #[test]
    fn serializes_flat_with_extensions() {
        let p = Problem::unprocessable("amount must be positive")
            .with_field_errors([("amount", "must be positive")])
            .with_extension("request_id", "r-1");
        let v: Value = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(v["type"], "about:blank");
        assert_eq!(v["title"], "Unprocessable Entity");
        assert_eq!(v["status"], 422);
        assert_eq!(v["detail"], "amount must be positive");
        assert_eq!(v["errors"][0]["field"], "amount");
        assert_eq!(v["request_id"], "r-1");
        assert!(v.get("instance").is_none());
    }

    /// An extension cannot overwrite a standard member.
    #[test]
    fn standard_members_cannot_be_shadowed() {
        let p = Problem::bad_request("x").with_extension("status", 200);
        let v: Value = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(v["status"], 400);
    }

    /// `internal` never puts the cause in the body.
    #[test]
    fn internal_hides_the_cause() {
        let p = Problem::internal("SELECT * FROM secrets failed on db-7.internal");
        let body = String::from_utf8(p.to_json()).unwrap();
        assert!(!body.contains("db-7"), "{body}");
        assert_eq!(p.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// Retry-After is whole seconds, rounded up, and the response has the problem media type.
    #[test]
    fn retry_after_header_rounds_up() {
        let resp = Problem::too_many_requests(Duration::from_millis(1500)).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    /// A problem body round-trips through its own Deserialize (clients and tests parse it).
    #[test]
    fn round_trips() {
        let p = Problem::conflict("order exists")
            .with_instance("/v1/orders/1")
            .with_extension("order_id", "1");
        let back: Problem = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(back, p);
    }
}
