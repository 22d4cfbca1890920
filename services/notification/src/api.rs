//! `GET /v1/investors/{investorId}/notifications`: what the investor was sent (or what failed),
//! newest first, a page at a time. Served from the store (the record of what was sent).

use nivesh_auth::{Authenticator, Caller, DEFAULT_TENANT, Role, require_auth};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use nivesh_domain::InvestorId;
use nivesh_runtime::problem::{ApiPath, ApiQuery, Problem};
use nivesh_store::{DocumentStore, IdRange};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::model::{NOTIFICATION_PREFIX, NOTIFICATIONS, Notification};

pub const DEFAULT_PAGE: usize = 20;
pub const MAX_PAGE: usize = 100;

#[derive(Clone)]
pub struct NotificationReads {
    pub store: Arc<dyn DocumentStore>,
}

#[derive(OpenApi)]
#[openapi(
    paths(list_notifications),
    components(schemas(
        NotificationPage,
        Notification,
        crate::model::EventRef,
        crate::model::NotificationStatus
    ))
)]
pub struct ApiDoc;

/// Needs a bearer token (401): ops and admins of the platform tenant read every investor's
/// notifications (support), an investor their own; another investor's are 404 like missing
/// ones; other roles get 403.
pub fn router(reads: NotificationReads, authenticator: Authenticator) -> axum::Router {
    axum::Router::new()
        .route(
            "/v1/investors/{investor_id}/notifications",
            get(list_notifications),
        )
        .route_layer(require_auth(authenticator))
        .with_state(reads)
}

/// The staff roles that read every investor's notifications.
const STAFF: [Role; 2] = [Role::Ops, Role::Admin];

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageParams {
    /// Page size, 1 to 100 (default 20).
    limit: Option<usize>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// One page of an investor's notifications, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPage {
    pub investor_id: String,
    pub items: Vec<Notification>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// An investor's notifications (email, SMS, push), newest first.
#[utoipa::path(
    get,
    path = "/v1/investors/{investorId}/notifications",
    params(("investorId" = String, Path, example = "INV0001"), PageParams),
    responses(
        (status = 200, body = NotificationPage),
        (status = 400, description = "malformed investor id, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "another investor's notifications: answered like an unknown investor", body = Problem, content_type = "application/problem+json")
    )
)]
async fn list_notifications(
    State(reads): State<NotificationReads>,
    caller: Caller,
    ApiPath(investor_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<NotificationPage>, Problem> {
    if caller.has_any_role(&STAFF) {
        caller.require_platform_role(&STAFF)?;
    } else {
        caller.require_role(Role::Investor)?;
    }
    let investor =
        InvestorId::parse(&investor_id).map_err(|e| Problem::bad_request(e.to_string()))?;
    if !caller.has_any_role(&STAFF)
        && !caller.can_access_investor(DEFAULT_TENANT, investor.as_str(), None)
    {
        return Err(Problem::not_found(format!(
            "no notifications for investor {investor}"
        )));
    }
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let upper = match params.cursor {
        Some(c) if c.starts_with(NOTIFICATION_PREFIX) && c.len() <= 200 => Some(c),
        Some(_) => return Err(Problem::bad_request("cursor is not one this API returned")),
        None => None,
    };
    // Ids are `n:<time>:...`, so a descending range is newest first. The cursor is the last id
    // served: fetch one more than a page below it (inclusive bound, so skip the cursor itself).
    let range = IdRange {
        from: Some(NOTIFICATION_PREFIX.to_string()),
        to: Some(
            upper
                .clone()
                .unwrap_or_else(|| format!("{NOTIFICATION_PREFIX}~")),
        ),
        limit: Some(limit + 2),
        descending: true,
    };
    let docs = reads
        .store
        .query_partition(NOTIFICATIONS, investor.as_str(), range)
        .await
        .map_err(Problem::internal)?;
    let mut page: Vec<(String, Notification)> = Vec::with_capacity(limit + 1);
    for d in docs {
        if upper.as_deref() == Some(d.id.as_str()) {
            continue;
        }
        let n: Notification = serde_json::from_value(d.body).map_err(Problem::internal)?;
        page.push((d.id, n));
        if page.len() > limit {
            break;
        }
    }
    let more = page.len() > limit;
    page.truncate(limit);
    let next_cursor = if more {
        page.last().map(|(id, _)| id.clone())
    } else {
        None
    };
    Ok(Json(NotificationPage {
        investor_id: investor.to_string(),
        items: page.into_iter().map(|(_, n)| n).collect(),
        next_cursor,
    }))
}
