//! Internal read API (reconciliation, support, the order service's diagnostics):
//!
//! - `GET /v1/allotments/{orderId}?investorId=...`: the allotment of an order: its legs'
//!   records (completed or failed, with every figure) and any leg still waiting for its NAV.
//!   The investor id is required because the ledger is partitioned by investor (a point read,
//!   no cross-partition query); every caller of this internal API has it with the order.
//! - `GET /v1/investors/{investorId}/lots`: the registrar's view of the investor's units: per
//!   scheme the folio, the units held and the FIFO lots.
//!
//! Both read the store (the system of record) directly; no cache, the API is internal and low
//! volume.
//!
//! Both need a bearer token (401): ops and admins (of the platform tenant) see every investor;
//! an investor sees their own allotments and lots, another investor's are 404 like missing
//! ones; other roles get 403.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, FixedOffset, NaiveDate};
use nivesh_auth::{Authenticator, Caller, DEFAULT_TENANT, Role, require_auth};
use nivesh_domain::{InvestorId, Units};
use nivesh_runtime::problem::{ApiJson, ApiPath, ApiQuery, Problem};
use nivesh_store::{DocumentStore, IdRange};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::ledger::{Figures, Holding, Lot, LotMove};
use crate::model::{
    AllotmentRecord, Failure, LEDGER, PendingAllotment, pending_id, record_id, status,
    switch_in_id, switch_out_id, transaction_id,
};

#[derive(OpenApi)]
#[openapi(
    paths(get_allotment, get_lots),
    components(schemas(
        OrderAllotment,
        AllotmentRecord,
        PendingLeg,
        Figures,
        Failure,
        LotMove,
        InvestorLots,
        SchemeLots,
        Lot,
        Problem
    )),
    tags((name = "allotment", description = "The registrar's unit ledger (internal)"))
)]
pub struct ApiDoc;

#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn DocumentStore>,
}

pub fn router(state: ApiState, authenticator: Authenticator) -> axum::Router {
    axum::Router::new()
        .route("/v1/allotments/{order_id}", get(get_allotment))
        .route("/v1/investors/{investor_id}/lots", get(get_lots))
        .route_layer(require_auth(authenticator))
        .with_state(state)
}

/// The staff roles that read every investor's ledger.
const STAFF: [Role; 2] = [Role::Ops, Role::Admin];

/// 403 unless the caller is staff or an investor.
fn require_reader(caller: &Caller) -> Result<(), Problem> {
    if caller.has_any_role(&STAFF) {
        caller.require_platform_role(&STAFF)
    } else {
        caller.require_role(Role::Investor)
    }
}

/// Staff (checked by [`require_reader`]) or the investor themself.
fn may_read(caller: &Caller, investor: &str) -> bool {
    caller.has_any_role(&STAFF) || caller.can_access_investor(DEFAULT_TENANT, investor, None)
}

/// A leg accepted and waiting for its NAV.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingLeg {
    pub transaction_id: String,
    pub leg: String,
    pub scheme_code: String,
    /// The NAV date it waits for.
    #[schema(value_type = String, format = Date)]
    pub nav_date: NaiveDate,
    /// Business-clock time it started waiting, in IST.
    #[schema(value_type = String, format = DateTime, example = "2025-02-25T11:00:00+05:30")]
    pub waiting_since: DateTime<FixedOffset>,
}

/// The allotment of one order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderAllotment {
    pub order_id: String,
    pub investor_id: String,
    /// `PENDING` (a leg waits for its NAV), `FAILED` (a leg failed) or `COMPLETED`.
    pub status: String,
    /// Completed or failed legs (a switch has `SWITCH_OUT` and `SWITCH_IN`).
    pub transactions: Vec<AllotmentRecord>,
    pub pending: Vec<PendingLeg>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct AllotmentQuery {
    /// The investor who placed the order (the ledger's partition key).
    pub investor_id: String,
}

fn investor(id: &str) -> Result<InvestorId, Problem> {
    InvestorId::parse(id).map_err(|e| Problem::bad_request(e.to_string()))
}

fn order_id_ok(id: &str) -> Result<(), Problem> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Problem::bad_request(
            "orderId must be 1 to 128 of letters, digits, '-', '_', '.' and ':'",
        ))
    }
}

/// The allotment of an order: its legs' records and any leg waiting for its NAV.
#[utoipa::path(
    get,
    path = "/v1/allotments/{orderId}",
    tag = "allotment",
    params(("orderId" = String, Path, description = "Order id"), AllotmentQuery),
    responses(
        (status = 200, body = OrderAllotment),
        (status = 400, description = "malformed order or investor id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no allotment (yet) for this order", body = Problem, content_type = "application/problem+json")
    )
)]
async fn get_allotment(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(order_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AllotmentQuery>,
) -> Result<ApiJson<OrderAllotment>, Problem> {
    require_reader(&caller)?;
    order_id_ok(&order_id)?;
    let inv = investor(&q.investor_id)?;
    let not_found = || {
        Problem::not_found(format!(
            "no allotment for order {order_id} of investor {inv}"
        ))
    };
    if !may_read(&caller, inv.as_str()) {
        return Err(not_found());
    }
    let txns = [
        transaction_id(&order_id),
        switch_out_id(&order_id),
        switch_in_id(&order_id),
    ];
    let mut transactions = Vec::new();
    let mut pending = Vec::new();
    for txn in &txns {
        if let Some(doc) = state
            .store
            .get(LEDGER, inv.as_str(), &record_id(txn))
            .await
            .map_err(Problem::internal)?
        {
            transactions.push(
                serde_json::from_value::<AllotmentRecord>(doc.body).map_err(Problem::internal)?,
            );
        }
        if let Some(doc) = state
            .store
            .get(LEDGER, inv.as_str(), &pending_id(txn))
            .await
            .map_err(Problem::internal)?
        {
            let p: PendingAllotment =
                serde_json::from_value(doc.body).map_err(Problem::internal)?;
            pending.push(PendingLeg {
                transaction_id: p.instruction.transaction_id,
                leg: p.instruction.leg,
                scheme_code: p.instruction.scheme_code,
                nav_date: p.instruction.nav_date,
                waiting_since: p.waiting_since,
            });
        }
    }
    if transactions.is_empty() && pending.is_empty() {
        return Err(not_found());
    }
    let status = if !pending.is_empty() {
        status::PENDING
    } else if transactions.iter().any(|t| t.status == status::FAILED) {
        status::FAILED
    } else {
        status::COMPLETED
    };
    Ok(ApiJson(OrderAllotment {
        order_id,
        investor_id: inv.to_string(),
        status: status.into(),
        transactions,
        pending,
    }))
}

/// One scheme of an investor as the registrar holds it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemeLots {
    pub scheme_code: String,
    pub folio: String,
    pub amc: Option<String>,
    #[schema(value_type = String, example = "96.199")]
    pub units: Units,
    /// Oldest first (the FIFO order redemptions consume them in).
    pub lots: Vec<Lot>,
}

/// The registrar's view of an investor's units.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvestorLots {
    pub investor_id: String,
    /// Schemes with units (or lots history) in scheme-code order.
    pub schemes: Vec<SchemeLots>,
}

/// The investor's units per scheme, with the FIFO lots (for reconciliation).
#[utoipa::path(
    get,
    path = "/v1/investors/{investorId}/lots",
    tag = "allotment",
    params(("investorId" = String, Path, example = "INV0001")),
    responses(
        (status = 200, body = InvestorLots),
        (status = 400, description = "malformed investor id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no lots, or another investor's: answered alike", body = Problem, content_type = "application/problem+json")
    )
)]
async fn get_lots(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(investor_id): ApiPath<String>,
) -> Result<ApiJson<InvestorLots>, Problem> {
    require_reader(&caller)?;
    let inv = investor(&investor_id)?;
    if !may_read(&caller, inv.as_str()) {
        return Err(Problem::not_found(format!("no lots for investor {inv}")));
    }
    let docs = state
        .store
        .query_partition(
            LEDGER,
            inv.as_str(),
            IdRange {
                from: Some("lots:".into()),
                to: Some("lots:~".into()),
                limit: None,
                descending: false,
            },
        )
        .await
        .map_err(Problem::internal)?;
    let mut schemes = Vec::with_capacity(docs.len());
    for doc in docs {
        let h: Holding = serde_json::from_value(doc.body).map_err(Problem::internal)?;
        schemes.push(SchemeLots {
            units: h.balance(),
            scheme_code: h.scheme_code,
            folio: h.folio,
            amc: h.amc,
            lots: h.lots,
        });
    }
    Ok(ApiJson(InvestorLots {
        investor_id: inv.to_string(),
        schemes,
    }))
}
