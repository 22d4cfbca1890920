//! The OpenAPI document a service serves at `/openapi.json`: the service's own document (from
//! `#[derive(utoipa::OpenApi)]`) merged with the runtime's paths (`/healthz`, `/readyz`,
//! `/metrics`, `/openapi.json`) and the shared schemas (`Problem`, the readiness report), so
//! a client generator sees every endpoint and error shape in one place.

use utoipa::OpenApi as _;
use utoipa::openapi::{Info, OpenApi};

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(crate::http::healthz, crate::http::readyz, crate::http::metrics, crate::http::openapi_json),
    components(schemas(
        crate::problem::Problem,
        crate::health::ReadinessReport,
        crate::health::CheckOutcome,
        crate::health::Readiness,
        crate::http::Alive
    )),
    tags((name = "runtime", description = "Liveness, readiness, metrics and this document; served by every service"))
)]
struct RuntimeDoc;

/// The runtime's own paths and schemas.
pub fn runtime_document() -> OpenApi {
    RuntimeDoc::openapi()
}

/// `service_doc` (if any) merged with the runtime's document, titled after the service.
/// The service's paths come first and win on a clash; the info block is the service's name
/// and the workspace version, whatever either document said.
pub fn document(service_name: &str, service_doc: Option<OpenApi>) -> OpenApi {
    let mut doc = service_doc
        .unwrap_or_else(|| OpenApi::new(Info::new("", ""), utoipa::openapi::Paths::new()));
    doc.merge(runtime_document());
    let mut info = Info::new(
        format!("nivesh {service_name}"),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    info.description = Some(format!(
        "HTTP API of the {service_name} service. Every 4xx/5xx body is application/problem+json (RFC 7807) with a request_id."
    ));
    doc.info = info;
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Merging keeps the service's paths and adds the runtime's, under the service's title.
    #[test]
    fn merges_service_and_runtime_paths() {
        let mut service = OpenApi::new(Info::new("svc", "1"), utoipa::openapi::Paths::new());
        service
            .paths
            .paths
            .insert("/v1/things".into(), utoipa::openapi::PathItem::default());
        let doc = document("svc", Some(service));
        assert!(doc.paths.paths.contains_key("/v1/things"));
        assert!(doc.paths.paths.contains_key("/healthz"));
        assert!(doc.paths.paths.contains_key("/readyz"));
        assert_eq!(doc.info.title, "nivesh svc");
        let schemas = &doc.components.as_ref().expect("components").schemas;
        assert!(schemas.contains_key("Problem"));
    }
}
