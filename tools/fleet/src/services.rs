//! The services of the fleet. Adding a service = one line here plus its crate under `services/`.

/// A service binary and the port it gets locally (production uses one port per pod).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Service name: also its consumer group and its data directory name.
    pub name: &'static str,
    /// The binary cargo builds for it.
    pub binary: &'static str,
    /// Local HTTP port under `nivesh up`.
    pub port: u16,
}

pub const SERVICES: &[ServiceSpec] = &[
    ServiceSpec {
        name: "nav-ingestor",
        binary: "nivesh-nav-ingestor",
        port: 8101,
    },
    ServiceSpec {
        name: "nav-calculator",
        binary: "nivesh-nav-calculator",
        port: 8102,
    },
    ServiceSpec {
        name: "nav-publisher",
        binary: "nivesh-nav-publisher",
        port: 8103,
    },
    ServiceSpec {
        name: "order",
        binary: "nivesh-order",
        port: 8104,
    },
    ServiceSpec {
        name: "payment",
        binary: "nivesh-payment",
        port: 8105,
    },
    ServiceSpec {
        name: "portfolio",
        binary: "nivesh-portfolio",
        port: 8106,
    },
    ServiceSpec {
        name: "notification",
        binary: "nivesh-notification",
        port: 8107,
    },
    ServiceSpec {
        name: "genai-gateway",
        binary: "nivesh-genai-gateway",
        port: 8108,
    },
    ServiceSpec {
        name: "allotment",
        binary: "nivesh-allotment",
        port: 8109,
    },
    ServiceSpec {
        name: "onboarding",
        binary: "nivesh-onboarding",
        port: 8110,
    },
    ServiceSpec {
        name: "compliance",
        binary: "nivesh-compliance",
        port: 8111,
    },
];

pub fn service(name: &str) -> Option<&'static ServiceSpec> {
    SERVICES.iter().find(|s| s.name == name)
}
