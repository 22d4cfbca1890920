//! The OpenAPI document a service serves at `/openapi.json`: the service's own document (from
//! `#[derive(utoipa::OpenApi)]`) merged with the runtime's paths (`/healthz`, `/readyz`,
//! `/metrics`, `/openapi.json`) and the shared schemas (`Problem`, the readiness report), so
//! a client generator sees every endpoint and error shape in one place.
//!
//! Security is declared here once for every service ([`secure`]): the `bearer` scheme (JWT,
//! `crates/auth`), and on each of the service's operations the bearer requirement plus 401 and
//! 403 problem+json answers, unless the operation declares itself public with `security(())`
//! (an empty requirement: no credentials; NAV reads, HMAC-signed webhooks). Protected is the
//! default because it is what `require_auth` makes most routes; a public route that forgets
//! `security(())` is documented as needing a token (the safe mistake). The runtime's own paths
//! are public.

use utoipa::OpenApi as _;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Components, Content, Info, OpenApi, Ref, Response};

/// Name of the bearer (JWT) security scheme in every document; operations reference it as
/// `security(("bearer" = []))`.
pub const BEARER_SCHEME: &str = "bearer";

/// Content type of every error answer.
const PROBLEM_JSON: &str = "application/problem+json";

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
    secure(&mut doc);
    let mut runtime = runtime_document();
    for (_, op) in operations_mut(&mut runtime) {
        op.security = Some(vec![SecurityRequirement::default()]);
    }
    doc.merge(runtime);
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

/// Every operation of `doc` with its path.
pub fn operations_mut(doc: &mut OpenApi) -> impl Iterator<Item = (&str, &mut Operation)> {
    doc.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .filter_map(move |op| op.as_mut().map(|op| (path.as_str(), op)))
    })
}

/// Is the operation declared public (`security(())`: only empty requirements)?
pub fn is_public(op: &Operation) -> bool {
    op.security
        .as_ref()
        .is_some_and(|reqs| reqs.iter().all(|r| *r == SecurityRequirement::default()))
}

/// Declare the bearer scheme and, on every operation not declared public, the bearer
/// requirement and 401/403 problem+json answers (kept when the operation already documents
/// them more precisely). Idempotent.
pub fn secure(doc: &mut OpenApi) {
    let mut any_protected = false;
    for (_, op) in operations_mut(doc) {
        if is_public(op) {
            continue;
        }
        any_protected = true;
        let bearer = SecurityRequirement::new(BEARER_SCHEME, Vec::<String>::new());
        match &mut op.security {
            Some(reqs) if reqs.contains(&bearer) => {}
            Some(reqs) => reqs.push(bearer),
            None => op.security = Some(vec![bearer]),
        }
        for (status, what) in [
            (
                "401",
                "No, malformed, expired or wrongly signed bearer token (WWW-Authenticate: Bearer)",
            ),
            ("403", "The caller's role may not do this"),
        ] {
            op.responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| problem_response(what).into());
        }
    }
    if any_protected {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "OAuth 2 access token (JWT, RS256/ES256) from the identity provider: Azure AD B2C \
                 in production, the dev identity provider locally (docs/services/auth.md)",
            ))
            .build();
        doc.components
            .get_or_insert_with(Components::new)
            .security_schemes
            .insert(BEARER_SCHEME.to_string(), SecurityScheme::Http(scheme));
    }
}

fn problem_response(description: &str) -> Response {
    Response::builder()
        .description(description)
        .content(
            PROBLEM_JSON,
            Content::new(Some(Ref::from_schema_name("Problem"))),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder};
    use utoipa::openapi::{PathItem, Paths};

    fn service_doc() -> OpenApi {
        let op = |public: bool| {
            let b = OperationBuilder::new()
                .response("200", Response::new("ok"))
                .response("404", Response::new("not yours, or missing"));
            if public {
                b.securities(Some([SecurityRequirement::default()])).build()
            } else {
                b.build()
            }
        };
        let mut paths = Paths::new();
        paths.paths.insert(
            "/v1/things/{id}".into(),
            PathItem::new(HttpMethod::Get, op(false)),
        );
        paths.paths.insert(
            "/v1/public".into(),
            PathItem::new(HttpMethod::Get, op(true)),
        );
        OpenApi::new(Info::new("svc", "1"), paths)
    }

    /// Walks the served document: every operation not declared public carries the bearer
    /// requirement and 401/403 problem+json answers (its own 404 kept); public operations and
    /// the runtime's paths carry no bearer; the scheme is declared as HTTP bearer JWT.
    #[test]
    fn protected_operations_carry_bearer_and_401() {
        let mut doc = document("svc", Some(service_doc()));
        let json = serde_json::to_value(&doc).unwrap();
        let scheme = &json["components"]["securitySchemes"][BEARER_SCHEME];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "bearer");
        assert_eq!(scheme["bearerFormat"], "JWT");
        let mut seen = 0;
        for (path, op) in operations_mut(&mut doc) {
            let op = serde_json::to_value(&*op).unwrap();
            let bearer = op["security"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r.get(BEARER_SCHEME).is_some()));
            if path == "/v1/things/{id}" {
                assert!(bearer, "{path}: {op:#}");
                for status in ["401", "403"] {
                    let r = &op["responses"][status];
                    assert!(
                        r["content"][PROBLEM_JSON]["schema"]["$ref"]
                            .as_str()
                            .is_some_and(|s| s.ends_with("/Problem")),
                        "{path} {status}: {op:#}"
                    );
                }
                assert_eq!(
                    op["responses"]["404"]["description"],
                    "not yours, or missing"
                );
            } else {
                assert!(!bearer, "{path} is public: {op:#}");
                assert!(op["responses"].get("401").is_none(), "{path}: {op:#}");
                assert_eq!(op["security"], serde_json::json!([{}]), "{path}");
            }
            seen += 1;
        }
        assert!(seen >= 6, "service and runtime operations walked: {seen}");
        // Applying it again changes nothing.
        let again = {
            let mut d = doc.clone();
            secure(&mut d);
            serde_json::to_value(&d).unwrap()
        };
        assert_eq!(again, serde_json::to_value(&doc).unwrap());
    }

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
