//! The portfolio API.
//!
//! - `GET /v1/investors/{investorId}/portfolio`: holdings valued at the latest NAVs, with XIRR,
//!   an ETag (`If-None-Match` → 304) and `Cache-Control: private, no-cache`. Holdings and NAVs
//!   come from Redis when it has them, else from the store.
//! - `GET /v1/investors/{investorId}/portfolio/transactions?after=&limit=`: the applied
//!   transactions, oldest first, from the store.
//! - `GET /v1/investors/{investorId}/portfolio/reconciliation`: holdings vs the sum of their
//!   transactions, from the store.
//!
//! Every route needs a bearer token (401): the investor themself, the distributor who onboarded
//! them or an admin of their tenant ([`crate::access`]); other roles get 403, anyone else 404.
//!
//! An investor id that is not well-formed is a 400 problem. An investor with no transactions
//! gets 200 with no holdings and version 0: this service only learns investors from their
//! transactions, and "no holdings" is the true answer for a registered investor who has not
//! invested yet.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use nivesh_auth::{Authenticator, Caller, Role, require_auth};
use nivesh_domain::InvestorId;
use nivesh_domain::time::Clock;
use nivesh_runtime::problem::{ApiPath, ApiQuery, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::model::TxnRecord;
use crate::reconcile::{Mismatch, Reconciliation, reconcile};
use crate::repo::{Repo, RepoError};
use crate::valuation::{HoldingView, PortfolioView, Totals, etag, value};

/// Default and largest page of `.../portfolio/transactions`.
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 500;

#[derive(Clone)]
pub struct PortfolioApi {
    pub repo: Repo,
    pub clock: Arc<dyn Clock>,
    pub directory: Arc<crate::access::InvestorDirectory>,
}

#[derive(OpenApi)]
#[openapi(
    paths(get_portfolio, list_transactions, get_reconciliation),
    components(schemas(
        PortfolioView,
        HoldingView,
        Totals,
        TransactionPage,
        TxnRecord,
        crate::model::LotEffect,
        Reconciliation,
        Mismatch
    ))
)]
pub struct ApiDoc;

pub fn router(api: PortfolioApi, authenticator: Authenticator) -> axum::Router {
    axum::Router::new()
        .route("/v1/investors/{investor_id}/portfolio", get(get_portfolio))
        .route(
            "/v1/investors/{investor_id}/portfolio/transactions",
            get(list_transactions),
        )
        .route(
            "/v1/investors/{investor_id}/portfolio/reconciliation",
            get(get_reconciliation),
        )
        .route_layer(require_auth(authenticator))
        .with_state(api)
}

/// The roles that may read portfolios at all (then only those they may access).
const INVESTOR_FACING: [Role; 3] = [Role::Investor, Role::Distributor, Role::Admin];

/// The well-formed investor id of the path, if `caller` may read that investor's portfolio:
/// 403 for a role that never may, 404 for someone else's investor (whether or not it exists).
async fn investor(api: &PortfolioApi, caller: &Caller, raw: &str) -> Result<String, Problem> {
    caller.require_any_role(&INVESTOR_FACING)?;
    let investor = InvestorId::parse(raw)
        .map(|i| i.to_string())
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let allowed = api
        .directory
        .may_access(&*api.repo.store, caller, &investor)
        .await
        .map_err(Problem::internal)?;
    if allowed {
        Ok(investor)
    } else {
        Err(Problem::not_found(format!(
            "no portfolio for investor {investor}"
        )))
    }
}

fn internal(e: RepoError) -> Problem {
    Problem::internal(e)
}

/// True when `If-None-Match` lists `etag` (weak or strong) or is `*`.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// An investor's holdings valued at the latest NAVs.
#[utoipa::path(get, path = "/v1/investors/{investor_id}/portfolio",
    params(("investor_id" = String, Path, description = "Investor id: 1 to 64 of A-Z a-z 0-9 _ -", example = "INV0001"),
           ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier response")),
    responses((status = 200, body = PortfolioView, description = "The valued portfolio (empty holdings and version 0 when the investor has none)",
               headers(("ETag" = String, description = "Changes with the portfolio version, the NAVs used and the business date"))),
              (status = 304, description = "Not modified since the ETag given"),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed investor id"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "Another investor's portfolio: answered exactly like an unknown investor")))]
async fn get_portfolio(
    State(api): State<PortfolioApi>,
    caller: Caller,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let investor = investor(&api, &caller, &raw).await?;
    let (snapshot, source) = api.repo.holdings(&investor).await.map_err(internal)?;
    metrics::counter!("nivesh_portfolio_reads_total", "source" => source.as_str()).increment(1);
    let mut codes: Vec<String> = snapshot
        .holdings
        .iter()
        .filter(|h| !h.units.is_zero())
        .map(|h| h.scheme_code.clone())
        .collect();
    codes.sort();
    codes.dedup();
    let navs = api.repo.navs(&codes).await.map_err(internal)?;
    let view = value(&investor, &snapshot, &navs, api.clock.today_ist());
    let tag = etag(&view);
    let etag_header = HeaderValue::from_str(&tag).map_err(Problem::internal)?;
    let cache_control = HeaderValue::from_static("private, no-cache");
    if not_modified(&headers, &tag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag_header),
                (header::CACHE_CONTROL, cache_control),
            ],
        )
            .into_response());
    }
    let mut resp = Json(view).into_response();
    resp.headers_mut().insert(header::ETAG, etag_header);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, cache_control);
    Ok(resp)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Return transactions with a version greater than this (0, the default: from the first).
    /// Pass the previous page's `nextAfter`.
    after: Option<i64>,
    /// Page size, 1 to 500 (default 100).
    limit: Option<usize>,
}

/// One page of applied transactions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionPage {
    pub investor_id: String,
    /// Oldest first (by portfolio version).
    pub items: Vec<TxnRecord>,
    /// Pass as `after` for the next page; null when this is the last page.
    pub next_after: Option<i64>,
}

/// The transactions applied to an investor's portfolio, oldest first.
#[utoipa::path(get, path = "/v1/investors/{investor_id}/portfolio/transactions",
    params(("investor_id" = String, Path, example = "INV0001"), PageParams),
    responses((status = 200, body = TransactionPage),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed investor id or paging"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "Another investor's transactions: answered exactly like an unknown investor")))]
async fn list_transactions(
    State(api): State<PortfolioApi>,
    caller: Caller,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<TransactionPage>, Problem> {
    let investor = investor(&api, &caller, &raw).await?;
    let after = p.after.unwrap_or(0);
    let limit = p.limit.unwrap_or(DEFAULT_PAGE);
    if after < 0 {
        return Err(Problem::bad_request("after must be 0 or more"));
    }
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    // One more than asked, to know whether another page exists.
    let mut items = api
        .repo
        .txn_page(&investor, after, limit + 1)
        .await
        .map_err(internal)?;
    let more = items.len() > limit;
    items.truncate(limit);
    let next_after = if more {
        items.last().map(|t| t.version)
    } else {
        None
    };
    Ok(Json(TransactionPage {
        investor_id: investor,
        items,
        next_after,
    }))
}

/// Recompute units and invested per holding from the stored transactions and compare.
#[utoipa::path(get, path = "/v1/investors/{investor_id}/portfolio/reconciliation",
    params(("investor_id" = String, Path, example = "INV0001")),
    responses((status = 200, body = Reconciliation, description = "ok=true when every holding equals the sum of its transactions, else the mismatches"),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed investor id"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "Another investor's reconciliation: answered exactly like an unknown investor")))]
async fn get_reconciliation(
    State(api): State<PortfolioApi>,
    caller: Caller,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Reconciliation>, Problem> {
    let investor = investor(&api, &caller, &raw).await?;
    // Store only: a reconciliation of a cache would prove nothing.
    let snapshot = api
        .repo
        .holdings_from_store(&investor)
        .await
        .map_err(internal)?;
    let txns = api.repo.all_txns(&investor).await.map_err(internal)?;
    let version = match api
        .repo
        .store
        .get(crate::model::PORTFOLIO, &investor, crate::model::VERSION_ID)
        .await
        .map_err(Problem::internal)?
    {
        Some(doc) => {
            serde_json::from_value::<crate::model::VersionDoc>(doc.body)
                .map_err(Problem::internal)?
                .version
        }
        None => 0,
    };
    let report = reconcile(&investor, version, &snapshot.holdings, &txns);
    let outcome = if report.ok { "ok" } else { "mismatch" };
    metrics::counter!("nivesh_portfolio_reconciliations_total", "outcome" => outcome).increment(1);
    if !report.ok {
        tracing::warn!(
            investor,
            mismatches = report.mismatches.len(),
            "portfolio reconciliation found mismatches"
        );
    }
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `If-None-Match` matches the exact tag, a weak form of it, one of a list, or `*`.
    #[test]
    fn if_none_match_forms() {
        let tag = "\"p1-abc\"";
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(not_modified(&h("\"p1-abc\""), tag));
        assert!(not_modified(&h("W/\"p1-abc\""), tag));
        assert!(not_modified(&h("\"x\", \"p1-abc\""), tag));
        assert!(not_modified(&h("*"), tag));
        assert!(!not_modified(&h("\"p1-abd\""), tag));
        assert!(!not_modified(&HeaderMap::new(), tag));
    }
}
