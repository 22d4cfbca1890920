//! The order service's HTTP API.
//!
//! - `POST /v1/orders` (Idempotency-Key required): purchase, redemption, switch, or SIP registration.
//! - `GET /v1/orders/{orderId}`, `GET /v1/investors/{investorId}/orders?limit=&cursor=`.
//! - `GET /v1/sips/{sipId}`, `POST /v1/sips/run?asOf=YYYY-MM-DD` (operations).
//! - `GET /v1/orders/schemes/{schemeCode}`: the scheme as the order service sees it (open or not).
//!
//! Every route but the scheme view needs a bearer token (401 without). Orders and SIPs: the
//! investor themself, the distributor who onboarded them (registry `distributorId`, or the
//! distributor of `investor.onboarded`: see `identity`), or an
//! admin of their tenant; other roles 403, anyone else's resources 404 exactly like missing
//! ones (placing an order for them: the unknown-investor 422). `POST /v1/sips/run`: ops or admin.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::NaiveDate;
use nivesh_auth::{Authenticator, Caller, DEFAULT_TENANT, Role, require_auth};
use nivesh_domain::{InvestorId, OrderId, SchemeCode};
use nivesh_runtime::problem::{ApiJson, ApiPath, ApiQuery, Problem};
use nivesh_store::{IdRange, WriteOp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::model::{
    Allotment, Failure, IdempotencyRecord, IndexEntry, OPS, ORDER_LOCATORS, ORDERS, Order,
    OrderKind, OrderStatus, SIP_LOCATORS, SIP_RUN_PARTITION, Scheme, Sip, SipInstalment, SipStatus,
    TimelineEntry, idem_doc_id, ist_now, order_doc_id, sip_doc_id,
};
use crate::place::{Reply, idempotency_key, request_hash};
use crate::service::{OrderService, to_value};
use crate::sip::SipRunReport;

#[derive(OpenApi)]
#[openapi(
    paths(place_order, get_order, list_orders, get_sip, run_sips, get_scheme),
    components(schemas(
        OrderRequest,
        Order,
        OrderKind,
        OrderStatus,
        TimelineEntry,
        Failure,
        Allotment,
        OrderPage,
        Sip,
        SipStatus,
        SipInstalment,
        SipRunReport,
        SchemeView,
        Scheme
    )),
    tags((name = "orders", description = "Investor orders: purchase, redemption, switch, SIP"))
)]
pub struct ApiDoc;

pub fn router(svc: Arc<OrderService>, authenticator: Authenticator) -> axum::Router {
    let protected = axum::Router::new()
        .route("/v1/orders", post(place_order))
        .route("/v1/orders/{order_id}", get(get_order))
        .route("/v1/investors/{investor_id}/orders", get(list_orders))
        .route("/v1/sips/run", post(run_sips))
        .route("/v1/sips/{sip_id}", get(get_sip))
        .route_layer(require_auth(authenticator));
    axum::Router::new()
        .route("/v1/orders/schemes/{scheme_code}", get(get_scheme))
        .merge(protected)
        .with_state(svc)
}

/// Who may see and act on investors' orders at all (then only their own: [`may_access`]).
const INVESTOR_FACING: [Role; 3] = [Role::Investor, Role::Distributor, Role::Admin];

/// May `caller` see/act on `investor`'s orders? The merged investor view (registry file,
/// overridden by what onboarding's events told us: see `identity`) gives the investor's tenant
/// and onboarding distributor; an investor unknown to both is of the default tenant, onboarded
/// by nobody (only admins and the investor themself would match, and such an investor has no
/// orders anyway).
async fn may_access(svc: &OrderService, caller: &Caller, investor: &str) -> Result<bool, Problem> {
    let view = svc.investor(investor).await.map_err(Problem::internal)?;
    Ok(match view {
        Some(v) => caller.can_access_investor(&v.tenant, investor, v.distributor_id.as_deref()),
        None => caller.can_access_investor(DEFAULT_TENANT, investor, None),
    })
}

/// The investor `locate` found, if `caller` may access them.
async fn accessible(
    svc: &OrderService,
    caller: &Caller,
    investor: Option<String>,
) -> Result<Option<String>, Problem> {
    match investor {
        Some(i) if may_access(svc, caller, &i).await? => Ok(Some(i)),
        _ => Ok(None),
    }
}

/// The body of `POST /v1/orders` (fields by `kind`; decimals are strings).
///
/// - `PURCHASE`: `investorId`, `schemeCode`, `amount` (>= 100.00), `paymentInstrument`.
/// - `REDEMPTION`: `investorId`, `schemeCode`, exactly one of `units`, `amount`, `allUnits: true`.
/// - `SWITCH`: as REDEMPTION plus `targetSchemeCode`.
/// - `SIP`: `investorId`, `schemeCode`, `amount` (>= 100.00), `dayOfMonth` (1-28), `startDate`,
///   optional `instalments`, `paymentInstrument`. Answers with the SIP resource.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"investorId": "INV0001", "kind": "PURCHASE", "schemeCode": "119551",
    "amount": "5000.00", "paymentInstrument": "aarav.sharma@okicici"}))]
pub struct OrderRequest {
    pub investor_id: String,
    /// `PURCHASE`, `REDEMPTION`, `SWITCH` or `SIP`.
    pub kind: String,
    pub scheme_code: String,
    pub target_scheme_code: Option<String>,
    /// Rupees, at most 2 decimals, as a string.
    pub amount: Option<String>,
    /// Units, at most 3 decimals, as a string.
    pub units: Option<String>,
    pub all_units: Option<bool>,
    /// UPI VPA (`name@handle`) or another instrument reference.
    pub payment_instrument: Option<String>,
    pub day_of_month: Option<u32>,
    pub start_date: Option<NaiveDate>,
    pub instalments: Option<u32>,
}

/// Place an order (or register a SIP). Idempotent under `Idempotency-Key`: a repeat with the
/// same key and body returns the first response with `Idempotent-Replayed: true`.
#[utoipa::path(post, path = "/v1/orders", tag = "orders", request_body = OrderRequest,
    params(("Idempotency-Key" = String, Header, description = "8-128 of A-Z a-z 0-9 _ . : -; scoped per investor, kept 48 h")),
    responses(
        (status = 201, description = "order placed (Order) or SIP registered (Sip); Location header", body = Order),
        (status = 400, description = "missing/malformed Idempotency-Key or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid order: field errors, unknown investor, KYC not verified, investor erased, unknown/closed scheme, not enough free units, key reused with another body", body = Problem, content_type = "application/problem+json"),
    ))]
async fn place_order(
    State(svc): State<Arc<OrderService>>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Reply, Problem> {
    caller.require_any_role(&INVESTOR_FACING)?;
    // Someone else's investor id is answered exactly like an unregistered one (and before the
    // idempotency key is looked at, so a replay cannot leak another investor's order either).
    if let Some(id) = body.get("investorId").and_then(Value::as_str)
        && let Ok(investor) = InvestorId::parse(id)
        && !may_access(&svc, &caller, investor.as_str()).await?
    {
        return Err(svc.unknown_investor(&investor));
    }
    let key = idempotency_key(&headers)?;
    svc.submit(&caller.tenant, &key, &body).await
}

fn parse_order_id(raw: &str) -> Result<String, Problem> {
    OrderId::parse(raw)
        .map(|id| id.to_string())
        .map_err(|e| Problem::bad_request(format!("malformed order id: {}", e.reason())))
}

/// An order with its status timeline.
#[utoipa::path(get, path = "/v1/orders/{orderId}", tag = "orders",
    params(("orderId" = String, Path, description = "order id (UUID)")),
    responses((status = 200, body = Order),
        (status = 400, description = "malformed order id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown order", body = Problem, content_type = "application/problem+json")))]
async fn get_order(
    State(svc): State<Arc<OrderService>>,
    caller: Caller,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<Order>, Problem> {
    caller.require_any_role(&INVESTOR_FACING)?;
    let order_id = parse_order_id(&raw)?;
    let not_found = || Problem::not_found(format!("no order {order_id}"));
    let located = svc
        .locate(ORDER_LOCATORS, &order_id)
        .await
        .map_err(Problem::internal)?;
    let investor = accessible(&svc, &caller, located)
        .await?
        .ok_or_else(not_found)?;
    let (order, _) = svc
        .load::<Order>(ORDERS, &investor, &order_doc_id(&order_id))
        .await
        .map_err(Problem::internal)?
        .ok_or_else(not_found)?;
    Ok(ApiJson(order))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    /// Page size, 1 to 100 (default 20).
    limit: Option<usize>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// One page of an investor's orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    pub items: Vec<Order>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn valid_cursor(c: &str) -> bool {
    match c.split_once('-') {
        Some((micros, id)) => {
            micros.len() == 20
                && micros.bytes().all(|b| b.is_ascii_digit())
                && OrderId::parse(id).is_ok()
        }
        None => false,
    }
}

/// An investor's orders, newest first, with cursor pagination.
#[utoipa::path(get, path = "/v1/investors/{investorId}/orders", tag = "orders",
    params(("investorId" = String, Path), ListParams),
    responses((status = 200, body = OrderPage),
        (status = 400, description = "malformed investor id, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "investor not registered", body = Problem, content_type = "application/problem+json")))]
async fn list_orders(
    State(svc): State<Arc<OrderService>>,
    caller: Caller,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<ApiJson<OrderPage>, Problem> {
    caller.require_any_role(&INVESTOR_FACING)?;
    let investor = InvestorId::parse(&raw)
        .map_err(|e| Problem::bad_request(format!("malformed investor id: {}", e.reason())))?;
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 100"));
    }
    if let Some(c) = &params.cursor
        && !valid_cursor(c)
    {
        return Err(Problem::bad_request(
            "malformed cursor: pass nextCursor unchanged",
        ));
    }
    let view = svc
        .investor(investor.as_str())
        .await
        .map_err(Problem::internal)?;
    if view.is_none_or(|v| {
        !caller.can_access_investor(&v.tenant, investor.as_str(), v.distributor_id.as_deref())
    }) {
        return Err(Problem::not_found(format!(
            "investor {investor} is not registered"
        )));
    }
    let cursor_id = params.cursor.as_ref().map(|c| format!("ix:{c}"));
    let docs = svc
        .store
        .query_partition(
            ORDERS,
            investor.as_str(),
            IdRange {
                from: Some("ix:".into()),
                to: Some(cursor_id.clone().unwrap_or_else(|| "ix:~".into())),
                // +1 for the cursor itself (bounds are inclusive), +1 to know whether more follow.
                limit: Some(limit + 2),
                descending: true,
            },
        )
        .await
        .map_err(Problem::internal)?;
    let entries: Vec<_> = docs
        .into_iter()
        .filter(|d| Some(&d.id) != cursor_id.as_ref())
        .collect();
    let more = entries.len() > limit;
    let page: Vec<_> = entries.into_iter().take(limit).collect();
    let next_cursor = if more {
        page.last()
            .and_then(|d| d.id.strip_prefix("ix:"))
            .map(str::to_string)
    } else {
        None
    };
    let reads = page.iter().map(|d| {
        let svc = svc.clone();
        let investor = investor.clone();
        let entry: Option<IndexEntry> = serde_json::from_value(d.body.clone()).ok();
        async move {
            match entry {
                Some(e) => svc
                    .load::<Order>(ORDERS, investor.as_str(), &order_doc_id(&e.order_id))
                    .await
                    .map(|o| o.map(|(o, _)| o)),
                None => Ok(None),
            }
        }
    });
    let items = futures::future::try_join_all(reads)
        .await
        .map_err(Problem::internal)?
        .into_iter()
        .flatten()
        .collect();
    Ok(ApiJson(OrderPage { items, next_cursor }))
}

/// A SIP with its schedule and the instalment orders placed so far.
#[utoipa::path(get, path = "/v1/sips/{sipId}", tag = "orders",
    params(("sipId" = String, Path, description = "SIP id (UUID)")),
    responses((status = 200, body = Sip),
        (status = 400, description = "malformed SIP id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown SIP", body = Problem, content_type = "application/problem+json")))]
async fn get_sip(
    State(svc): State<Arc<OrderService>>,
    caller: Caller,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<Sip>, Problem> {
    caller.require_any_role(&INVESTOR_FACING)?;
    let sip_id = uuid::Uuid::try_parse(&raw)
        .map_err(|e| Problem::bad_request(format!("malformed SIP id: {e}")))?
        .to_string();
    let not_found = || Problem::not_found(format!("no SIP {sip_id}"));
    let located = svc
        .locate(SIP_LOCATORS, &sip_id)
        .await
        .map_err(Problem::internal)?;
    let investor = accessible(&svc, &caller, located)
        .await?
        .ok_or_else(not_found)?;
    let (sip, _) = svc
        .load::<Sip>(ORDERS, &investor, &sip_doc_id(&sip_id))
        .await
        .map_err(Problem::internal)?
        .ok_or_else(not_found)?;
    Ok(ApiJson(sip))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct RunParams {
    /// Place instalments due on or before this date (default: today, business clock).
    as_of: Option<NaiveDate>,
}

/// Operations: place every SIP instalment due up to `asOf`. Each (SIP, instalment) produces
/// exactly one order however often this runs; the daily task calls the same code.
#[utoipa::path(post, path = "/v1/sips/run", tag = "orders",
    params(RunParams, ("Idempotency-Key" = String, Header, description = "required; a repeat replays the first report")),
    responses((status = 200, body = SipRunReport),
        (status = 400, description = "missing/malformed key or date", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "asOf is after today, or the key was used for another date", body = Problem, content_type = "application/problem+json")))]
async fn run_sips(
    State(svc): State<Arc<OrderService>>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<RunParams>,
) -> Result<Response, Problem> {
    caller.require_platform_role(&[Role::Ops, Role::Admin])?;
    let key = idempotency_key(&headers)?;
    let today = svc.clock.today_ist();
    let as_of = params.as_of.unwrap_or(today);
    let hash = request_hash(&serde_json::json!({ "asOf": as_of }));
    if let Some(reply) = svc.replay(OPS, SIP_RUN_PARTITION, &key, &hash).await? {
        return Ok(reply.into_response());
    }
    if as_of > today {
        return Err(Problem::unprocessable(format!(
            "asOf {as_of} is after today's business date {today}: instalments are never placed early"
        ))
        .with_field_errors([("asOf", "must not be after today")]));
    }
    let report = svc.run_sips(as_of).await.map_err(Problem::internal)?;
    let body = to_value(&report);
    let record = IdempotencyRecord {
        key: key.to_string(),
        scope: SIP_RUN_PARTITION.into(),
        request_hash: hash.clone(),
        status: 200,
        location: None,
        body: body.clone(),
        created_at: ist_now(svc.clock.now()),
    };
    let batch = nivesh_store::Batch::new(OPS, SIP_RUN_PARTITION).op(WriteOp::Create {
        id: idem_doc_id(key.as_str()),
        body: to_value(&record),
        ttl: Some(svc.idempotency_ttl()),
    });
    match svc.store.commit(batch).await {
        Ok(_) => {}
        // A concurrent run with the same key stored its report first: answer with that one.
        Err(nivesh_store::Error::Conflict { .. }) => {
            if let Some(reply) = svc.replay(OPS, SIP_RUN_PARTITION, &key, &hash).await? {
                return Ok(reply.into_response());
            }
        }
        Err(e) => return Err(Problem::internal(e)),
    }
    Ok(Reply {
        status: 200,
        location: None,
        body,
        replayed: false,
    }
    .into_response())
}

/// A scheme as the order service knows it, and whether it takes purchases.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemeView {
    #[serde(flatten)]
    pub scheme: Scheme,
    /// Open-ended (or of unknown type) and not in `[service] closed_schemes`.
    pub open_for_purchase: bool,
}

/// The order service's view of a scheme (from `nav.broadcast`): what orders validate against.
#[utoipa::path(get, path = "/v1/orders/schemes/{schemeCode}", tag = "orders", security(()),
    params(("schemeCode" = String, Path, example = "119551")),
    responses((status = 200, body = SchemeView),
        (status = 400, description = "malformed scheme code", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no NAV seen for the scheme", body = Problem, content_type = "application/problem+json")))]
async fn get_scheme(
    State(svc): State<Arc<OrderService>>,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<SchemeView>, Problem> {
    let code = SchemeCode::parse(&raw)
        .map_err(|e| Problem::bad_request(format!("malformed scheme code: {}", e.reason())))?;
    let scheme = svc
        .scheme(code.as_str())
        .await
        .map_err(Problem::internal)?
        .ok_or_else(|| {
            Problem::not_found(format!("no NAV has been published for scheme {code}"))
        })?;
    let open_for_purchase = svc.is_open(&scheme);
    Ok(ApiJson(SchemeView {
        scheme,
        open_for_purchase,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cursors are `{20 digits}-{uuid}`; anything else is refused.
    #[test]
    fn cursors() {
        let id = OrderId::new().to_string();
        assert!(valid_cursor(&format!(
            "{:020}-{id}",
            1_740_478_500_000_000u64
        )));
        assert!(!valid_cursor(&format!("{}-{id}", 17)));
        assert!(!valid_cursor("00000000000000000001-nope"));
        assert!(!valid_cursor("garbage"));
    }
}
