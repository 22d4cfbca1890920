//! The single local entry point (`http://127.0.0.1:8080`): routes public API paths to the owning
//! service exactly as the production ingress does (same [`crate::routes::ROUTES`] table), using
//! `axum-reverse-proxy` for the forwarding itself (hop-by-hop headers, streaming bodies).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use axum::routing::get;
use axum_reverse_proxy::ReverseProxy;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

type Upstream = BoxCloneSyncService<Request<Body>, Response<Body>, std::convert::Infallible>;

use crate::routes::route_for;

/// Build the ingress router from `service name -> base URL` upstreams.
pub fn router(upstreams: &HashMap<String, String>) -> Router {
    let proxies: Arc<HashMap<String, Upstream>> = Arc::new(
        upstreams
            .iter()
            .map(|(name, url)| {
                (
                    name.clone(),
                    BoxCloneSyncService::new(ReverseProxy::new("", url.as_str())),
                )
            })
            .collect(),
    );
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .fallback(move |req: Request<Body>| {
            let proxies = proxies.clone();
            async move { forward(&proxies, req).await }
        })
}

async fn forward(proxies: &HashMap<String, Upstream>, req: Request<Body>) -> Response<Body> {
    let Some(route) = route_for(req.uri().path()) else {
        return problem(
            StatusCode::NOT_FOUND,
            "No such API",
            &format!("no route for {}", req.uri().path()),
        );
    };
    let Some(proxy) = proxies.get(route.service) else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service not running",
            route.service,
        );
    };
    let mut proxy = proxy.clone();
    let ready = match proxy.ready().await {
        Ok(p) => p,
        Err(never) => match never {},
    };
    match ready.call(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response<Body> {
    let body = serde_json::json!({ "type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail });
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/problem+json")
        .body(Body::from(body.to_string()))
        .expect("static response")
}
