//! Public API path → owning service. The local ingress and the Helm VirtualService are both
//! derived from this table, so local routing is exactly production routing.

/// A route: a path pattern whose segments match a request path's leading segments (`*` matches
/// any one segment), and the service that owns it. First match wins, so specific routes come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub pattern: &'static str,
    pub service: &'static str,
}

pub const ROUTES: &[Route] = &[
    Route {
        pattern: "/v1/nav/files",
        service: "nav-ingestor",
    },
    Route {
        pattern: "/v1/nav",
        service: "nav-publisher",
    },
    Route {
        pattern: "/v1/orders",
        service: "order",
    },
    Route {
        pattern: "/v1/investors/*/orders",
        service: "order",
    },
    Route {
        pattern: "/v1/sips",
        service: "order",
    },
    Route {
        pattern: "/v1/investors/*/portfolio",
        service: "portfolio",
    },
    Route {
        pattern: "/v1/investors/*/notifications",
        service: "notification",
    },
    Route {
        pattern: "/v1/payments",
        service: "payment",
    },
    Route {
        pattern: "/v1/genai",
        service: "genai-gateway",
    },
    Route {
        pattern: "/v1/compliance",
        service: "compliance",
    },
    // Onboarding: after every `/v1/investors/*/<x>` route of other services (first match wins).
    Route {
        pattern: "/v1/leads",
        service: "onboarding",
    },
    Route {
        pattern: "/v1/investors",
        service: "onboarding",
    },
    Route {
        pattern: "/v1/distributors",
        service: "onboarding",
    },
    Route {
        pattern: "/v1/kyc",
        service: "onboarding",
    },
    Route {
        pattern: "/v1/commission",
        service: "onboarding",
    },
];

/// The service owning `path`, if any.
pub fn route_for(path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| matches(r.pattern, path))
}

fn matches(pattern: &str, path: &str) -> bool {
    let mut path_segments = path.split('/').filter(|s| !s.is_empty());
    pattern
        .split('/')
        .filter(|s| !s.is_empty())
        .all(|want| match path_segments.next() {
            Some(got) => want == "*" || want == got,
            None => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Specific routes win over their prefixes and wildcards match exactly one segment.
    #[test]
    fn routes_resolve_to_their_owner() {
        let owner = |p: &str| route_for(p).map(|r| r.service);
        assert_eq!(owner("/v1/nav/files"), Some("nav-ingestor"));
        assert_eq!(owner("/v1/nav/files/abc"), Some("nav-ingestor"));
        assert_eq!(owner("/v1/nav/schemes/119551"), Some("nav-publisher"));
        assert_eq!(owner("/v1/navigate"), None);
        assert_eq!(owner("/v1/investors/INV1/portfolio"), Some("portfolio"));
        assert_eq!(owner("/v1/investors/INV1/orders"), Some("order"));
        assert_eq!(owner("/v1/investors/INV1"), Some("onboarding"));
        assert_eq!(owner("/v1/investors"), Some("onboarding"));
        assert_eq!(owner("/v1/distributors/D1/commissions"), Some("onboarding"));
        assert_eq!(owner("/v1/orders/0192"), Some("order"));
        assert_eq!(owner("/v2/orders"), None);
    }

    /// Every route names a service the fleet actually runs.
    #[test]
    fn every_route_targets_a_known_service() {
        for r in ROUTES {
            assert!(
                crate::services::service(r.service).is_some(),
                "{} -> unknown {}",
                r.pattern,
                r.service
            );
        }
    }
}
