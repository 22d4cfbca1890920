//! HTTP: the gateway's webhook and the payment lookup.
//!
//! - `POST /v1/payments/webhook`: authenticated by HMAC ([`crate::signature`]) before anything
//!   is parsed; a bad or missing signature or a stale timestamp is `401` and changes nothing.
//!   `payment.captured` → CAPTURED + `payment.success` (realised at the gateway's capture time);
//!   `payment.failed` → FAILED + `payment.failed`. Duplicates answer `200` with
//!   `result: "duplicate"`. The payment is located by `reference` (order id) and
//!   `notes.investor_id` (both set by us when creating it); unknown → `404`.
//! - `GET /v1/payments/{orderId}?investorId=..`: the payment record, its state and timeline.
//!   Needs a bearer token (401): ops and admins (of the platform tenant) see any payment, an
//!   investor their own (another investor's is a 404 like a missing one); other roles 403.
//!   The webhook takes no token: the gateway authenticates it with the HMAC signature.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use nivesh_auth::{Authenticator, Caller, DEFAULT_TENANT, Role, require_auth};
use nivesh_domain::InvestorId;
use nivesh_domain::time::Clock;
use nivesh_runtime::problem::{ApiPath, ApiQuery, Problem};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::flow::{Applied, FlowError, Payments, unix_time};
use crate::gateway::GatewayPayment;
use crate::record::{
    Failure, PaymentRecord, PaymentStatus, RefundRecord, RefundStatus, TimelineEntry, Update,
    reason_code_for,
};
use crate::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// Counter: webhooks by `result` (processed, duplicate, ignored, unauthorized, unknown, invalid).
pub const WEBHOOKS: &str = "nivesh_payment_webhooks_total";

#[derive(Clone)]
pub struct ApiState {
    pub payments: Payments,
    pub secret: SecretString,
    pub tolerance: Duration,
    /// Wall clock for the webhook freshness check (never the business clock).
    pub wall_clock: Arc<dyn Clock>,
}

#[derive(OpenApi)]
#[openapi(
    paths(webhook, get_payment),
    components(schemas(
        PaymentRecord,
        PaymentStatus,
        RefundRecord,
        RefundStatus,
        Failure,
        TimelineEntry,
        WebhookEvent,
        WebhookPayload,
        WebhookPaymentEntity,
        GatewayPayment,
        WebhookAck
    )),
    tags((name = "payments", description = "Payments for purchase orders and the gateway's webhooks"))
)]
pub struct ApiDoc;

pub fn router(state: ApiState, authenticator: Authenticator) -> axum::Router {
    let lookups = axum::Router::new()
        .route("/v1/payments/{order_id}", get(get_payment))
        .route_layer(require_auth(authenticator));
    axum::Router::new()
        .route("/v1/payments/webhook", post(webhook))
        .merge(lookups)
        .with_state(state)
}

/// The staff roles that look up any payment.
const STAFF: [Role; 2] = [Role::Ops, Role::Admin];

/// A gateway webhook (Razorpay-like).
#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookEvent {
    /// `payment.captured` or `payment.failed`; others are acknowledged and ignored.
    pub event: String,
    #[serde(default)]
    pub created_at: i64,
    pub payload: WebhookPayload,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookPayload {
    pub payment: Option<WebhookPaymentEntity>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookPaymentEntity {
    pub entity: GatewayPayment,
}

/// What the webhook did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookAck {
    /// `processed`, `duplicate` or `ignored`.
    pub result: String,
}

fn ack(result: &'static str) -> Json<WebhookAck> {
    metrics::counter!(WEBHOOKS, "result" => result).increment(1);
    Json(WebhookAck {
        result: result.into(),
    })
}

fn refuse(result: &'static str, problem: Problem) -> Problem {
    metrics::counter!(WEBHOOKS, "result" => result).increment(1);
    problem
}

/// Gateway webhook: payment captured or failed. Signed with HMAC-SHA256 over
/// `"<X-Nivesh-Timestamp>.<raw body>"`.
#[utoipa::path(post, path = "/v1/payments/webhook", tag = "payments", security(()),
    params(
        ("X-Nivesh-Timestamp" = String, Header, description = "signing time, unix seconds"),
        ("X-Nivesh-Signature" = String, Header, description = "sha256=<hex HMAC-SHA256(secret, timestamp + \".\" + body)>"),
    ),
    request_body = WebhookEvent,
    responses(
        (status = 200, body = WebhookAck, description = "processed, duplicate or ignored"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "authenticated but malformed"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "bad or missing signature, or stale timestamp; nothing changed"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "unknown payment"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "contradicts the payment (other gateway payment or amount)"),
    ))]
async fn webhook(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAck>, Problem> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = signature::verify(
        state.secret.expose_secret().as_bytes(),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        state.wall_clock.now().timestamp(),
        state.tolerance,
    ) {
        tracing::warn!(error = %e, "webhook refused: authentication failed");
        return Err(refuse(
            "unauthorized",
            Problem::unauthorized(format!("webhook authentication failed: {e}")),
        ));
    }
    let event: WebhookEvent = serde_json::from_slice(&body).map_err(|e| {
        refuse(
            "invalid",
            Problem::bad_request(format!("webhook body is not a gateway event: {e}")),
        )
    })?;
    let captured = match event.event.as_str() {
        "payment.captured" => true,
        "payment.failed" => false,
        _ => return Ok(ack("ignored")),
    };
    let p = event.payload.payment.map(|w| w.entity).ok_or_else(|| {
        refuse(
            "invalid",
            Problem::bad_request("payment event without payload.payment.entity"),
        )
    })?;
    let expected_status = if captured { "captured" } else { "failed" };
    if p.status != expected_status {
        return Err(refuse(
            "invalid",
            Problem::bad_request(format!(
                "{} event for a payment in status {}",
                event.event, p.status
            )),
        ));
    }
    let unknown = || {
        refuse(
            "unknown",
            Problem::not_found(format!("no payment for gateway payment {}", p.id)),
        )
    };
    let investor = p
        .notes
        .get("investor_id")
        .filter(|i| InvestorId::parse(i).is_ok())
        .cloned()
        .ok_or_else(unknown)?;
    let order_id = p.reference.clone();
    let update = if captured {
        let captured_at = p.captured_at.and_then(unix_time).ok_or_else(|| {
            refuse(
                "invalid",
                Problem::bad_request("captured payment without captured_at"),
            )
        })?;
        Update::Captured {
            gateway_ref: p.id.clone(),
            amount_paise: p.amount,
            captured_at,
        }
    } else {
        Update::Failed {
            gateway_ref: Some(p.id.clone()),
            reason_code: reason_code_for(p.error_code.as_deref()).into(),
            reason: p
                .error_description
                .clone()
                .or(p.error_code.clone())
                .unwrap_or_else(|| "payment failed at the gateway".into()),
        }
    };
    let causation = format!("{}:{}", p.id, event.event);
    match state
        .payments
        .apply_update(&investor, &order_id, &update, None, &causation)
        .await
    {
        Ok(Applied::Changed(_)) => Ok(ack("processed")),
        Ok(Applied::Unchanged | Applied::AlreadyProcessed) => Ok(ack("duplicate")),
        Err(FlowError::NotFound(_)) => Err(unknown()),
        Err(FlowError::Invalid(e)) => {
            tracing::error!(gateway_payment = %p.id, order_id, error = %e, "webhook contradicts the payment");
            Err(refuse("invalid", Problem::unprocessable(e.to_string())))
        }
        Err(e @ FlowError::Contention(_)) => Err(refuse(
            "error",
            Problem::service_unavailable(Duration::from_secs(1)).with_detail(e.to_string()),
        )),
        Err(e) => Err(refuse("error", Problem::internal(e))),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PaymentQuery {
    /// The investor who placed the order (payments are stored per investor).
    investor_id: String,
}

/// A payment by order id (payment id = order id), with its state and timeline.
#[utoipa::path(get, path = "/v1/payments/{orderId}", tag = "payments",
    params(("orderId" = String, Path, description = "the order id (= payment id)"), PaymentQuery),
    responses(
        (status = 200, body = PaymentRecord, description = "the payment; ETag is the stored version"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "missing or malformed investorId"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "no payment for this order and investor"),
    ))]
async fn get_payment(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(order_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PaymentQuery>,
) -> Result<Response, Problem> {
    let staff = caller.has_any_role(&STAFF);
    if staff {
        caller.require_platform_role(&STAFF)?;
    } else {
        caller.require_role(Role::Investor)?;
    }
    InvestorId::parse(&q.investor_id)
        .map_err(|e| Problem::bad_request(format!("investorId: {e}")))?;
    let not_found = || {
        Problem::not_found(format!(
            "no payment for order {order_id} of investor {}",
            q.investor_id
        ))
    };
    // The record is stored under the order's investor: an investor may ask only for their own.
    if !staff && !caller.can_access_investor(DEFAULT_TENANT, &q.investor_id, None) {
        return Err(not_found());
    }
    let found = state
        .payments
        .load(&q.investor_id, &order_id)
        .await
        .map_err(Problem::internal)?;
    let Some((record, etag)) = found else {
        return Err(not_found());
    };
    if !staff && !caller.can_access_investor(DEFAULT_TENANT, &record.investor_id, None) {
        return Err(not_found());
    }
    let mut resp = Json(record).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", etag.0)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}
