//! Public NAV reads (no token): latest NAV per scheme and NAV history. Served from Redis when it
//! has the answer, else from the store (the system of record), so a Redis outage costs latency,
//! never an error. Responses carry an ETag and Cache-Control so clients and CDNs can cache.
//! The latest NAV is read through [`nivesh_store::CacheAside`]: a miss on a popular scheme (at
//! publish time every app asks for the same few schemes) is one store read per process, the
//! others await it; the copy it leaves in Redis is `SET NX` (never over the projection's newer
//! value) and lives [`LATEST_FILL_TTL`] ± 10 %.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use nivesh_runtime::problem::Problem;
use nivesh_store::{CacheAside, DocumentStore, IdRange};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::directory::{SchemeDirectory, SearchQuery};
use crate::handler::{LATEST, NAV, cache_key, history_id};
use crate::model::SchemeNav;
use crate::stream::{StreamState, nav_stream};

/// How long a latest NAV a reader put into Redis lives (± 10 %). The projection's own copy has
/// no TTL and is replaced by every new NAV; a reader's copy only bounds how long a copy the
/// projection never refreshed (a lost write) can be served.
pub const LATEST_FILL_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub struct NavReads {
    pub store: Arc<dyn DocumentStore>,
    /// Cache-aside over the service's cache (`CacheAside::new(ctx.cache, "nav_latest",
    /// LATEST_FILL_TTL)`).
    pub cache: CacheAside,
    pub directory: SchemeDirectory,
}

#[derive(OpenApi)]
#[openapi(
    paths(latest_nav, nav_history, search_schemes, crate::stream::nav_stream),
    components(schemas(SchemeNav, NavHistory, SchemePage))
)]
pub struct ApiDoc;

pub fn router(reads: NavReads, stream: StreamState) -> axum::Router {
    let streaming = axum::Router::new()
        .route("/v1/nav/stream", get(nav_stream))
        .with_state(stream);
    axum::Router::new()
        .route("/v1/nav/schemes", get(search_schemes))
        .route("/v1/nav/schemes/{scheme_code}", get(latest_nav))
        .route("/v1/nav/schemes/{scheme_code}/history", get(nav_history))
        .with_state(reads)
        .merge(streaming)
}

impl NavReads {
    /// Latest NAV: cache first; on a miss or when the cache is down, the store through the
    /// key's single flight.
    pub async fn latest(&self, scheme: &str) -> Result<Option<SchemeNav>, Problem> {
        let (store, code) = (self.store.clone(), scheme.to_string());
        let fetched = self
            .cache
            .get_or_load(&cache_key(scheme), move || async move {
                let Some(latest) = store
                    .get(NAV, &code, LATEST)
                    .await
                    .map_err(Problem::internal)?
                else {
                    return Ok(None);
                };
                // `latest` names the date; the NAV itself is that date's history entry.
                let Some(date) = latest.body["navDate"]
                    .as_str()
                    .and_then(|d| d.parse::<chrono::NaiveDate>().ok())
                else {
                    return Err(Problem::internal(format!(
                        "latest NAV document of {code} has no navDate"
                    )));
                };
                let Some(doc) = store
                    .get(NAV, &code, &history_id(date))
                    .await
                    .map_err(Problem::internal)?
                else {
                    return Ok(None);
                };
                serde_json::from_value::<SchemeNav>(doc.body)
                    .map(Some)
                    .map_err(Problem::internal)
            })
            .await
            .map_err(|e| Arc::try_unwrap(e).unwrap_or_else(|e| (*e).clone()))?;
        let source = if fetched.origin.is_cache() {
            "cache"
        } else {
            "store"
        };
        metrics::counter!("nivesh_nav_reads_total", "source" => source).increment(1);
        Ok(fetched.value)
    }
}

fn validate_scheme_code(code: &str) -> Result<(), Problem> {
    nivesh_domain::SchemeCode::parse(code)
        .map(|_| ())
        .map_err(|e| Problem::bad_request(e.to_string()))
}

fn cacheable(etag_source: &str, headers: &HeaderMap, body: impl Serialize) -> Response {
    let etag = format!("\"{}\"", etag_source);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let mut resp = Json(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("ascii etag"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=30"),
    );
    resp
}

/// The latest NAV of a scheme.
#[utoipa::path(get, path = "/v1/nav/schemes/{scheme_code}", security(()), params(("scheme_code" = String, Path, example = "119551")),
    responses((status = 200, body = SchemeNav), (status = 304, description = "not modified"),
              (status = 400, description = "malformed scheme code"), (status = 404, description = "unknown scheme")))]
async fn latest_nav(
    State(reads): State<NavReads>,
    Path(scheme): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    validate_scheme_code(&scheme)?;
    let nav = reads
        .latest(&scheme)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no NAV for scheme {scheme}")))?;
    let etag = nav.event_id.clone();
    Ok(cacheable(&etag, &headers, nav))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryParams {
    /// First date (inclusive), YYYY-MM-DD.
    from: Option<NaiveDate>,
    /// Last date (inclusive), YYYY-MM-DD.
    to: Option<NaiveDate>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NavHistory {
    pub scheme_code: String,
    pub navs: Vec<SchemeNav>,
}

/// NAV history of a scheme within a date range (oldest first, at most 1,000 entries).
#[utoipa::path(get, path = "/v1/nav/schemes/{scheme_code}/history", security(()), params(("scheme_code" = String, Path), HistoryParams),
    responses((status = 200, body = NavHistory), (status = 400, description = "bad range")))]
async fn nav_history(
    State(reads): State<NavReads>,
    Path(scheme): Path<String>,
    Query(params): Query<HistoryParams>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    validate_scheme_code(&scheme)?;
    if let (Some(f), Some(t)) = (params.from, params.to)
        && f > t
    {
        return Err(Problem::bad_request(format!("from {f} is after to {t}")));
    }
    let range = IdRange {
        from: Some(params.from.map(history_id).unwrap_or_else(|| "h:".into())),
        to: Some(params.to.map(history_id).unwrap_or_else(|| "h:~".into())),
        limit: Some(1000),
        descending: false,
    };
    let docs = reads
        .store
        .query_partition(NAV, &scheme, range)
        .await
        .map_err(Problem::internal)?;
    let navs = docs
        .into_iter()
        .map(|d| serde_json::from_value(d.body))
        .collect::<Result<Vec<SchemeNav>, _>>()
        .map_err(Problem::internal)?;
    let etag = navs
        .last()
        .map(|n| format!("{}-{}", n.event_id, navs.len()))
        .unwrap_or_else(|| "empty".into());
    Ok(cacheable(
        &etag,
        &headers,
        NavHistory {
            scheme_code: scheme,
            navs,
        },
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct SearchParams {
    /// Fund house, case-insensitive substring (e.g. `aditya birla`).
    amc: Option<String>,
    /// AMFI category, case-insensitive substring (e.g. `liquid`).
    category: Option<String>,
    /// Words that must all appear in the scheme name, AMC or code.
    q: Option<String>,
    /// 1-based page number.
    page: Option<usize>,
    /// Page size, 1 to 200 (default 50).
    page_size: Option<usize>,
}

/// One page of search results.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemePage {
    pub items: Vec<SchemeNav>,
    pub page: usize,
    pub page_size: usize,
    pub total: usize,
}

/// Search schemes by fund house, category and name; latest NAV of each.
#[utoipa::path(get, path = "/v1/nav/schemes", security(()), params(SearchParams), responses((status = 200, body = SchemePage), (status = 400, description = "bad paging")))]
async fn search_schemes(
    State(reads): State<NavReads>,
    Query(p): Query<SearchParams>,
) -> Result<Json<SchemePage>, Problem> {
    let page = p.page.unwrap_or(1);
    let page_size = p.page_size.unwrap_or(50);
    if page == 0 || !(1..=200).contains(&page_size) {
        return Err(Problem::bad_request(
            "page starts at 1 and pageSize is between 1 and 200",
        ));
    }
    let query = SearchQuery {
        amc: p.amc,
        category: p.category,
        q: p.q,
        offset: (page - 1) * page_size,
        limit: page_size,
    };
    let (items, total) = reads.directory.search(&query);
    Ok(Json(SchemePage {
        items,
        page,
        page_size,
        total,
    }))
}
