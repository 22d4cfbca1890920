//! nivesh-fleet: everything needed to run the whole platform on one machine, and to drive it from
//! end-to-end tests.
//!
//! - [`services`]: the list of service binaries and their local ports (one place).
//! - [`routes`]: the public API path → service table, the same one the production ingress uses.
//! - [`process`]: spawning a service or the dev broker as its own OS process, prefixing its log
//!   lines, SIGTERM/SIGKILL, readiness polling.
//! - [`ingress`]: the `:8080` entry point that proxies public paths to the owning service.
//! - [`fleet`]: the launcher behind `nivesh up`: broker, services, ingress, supervision, demo.
//! - [`reconcile`]: the any-time reconciliation check (`nivesh reconcile`): no order lost, none
//!   doubled, every holding equal to the sum of its completed transactions.
//!
//! Tests use [`process`] directly so they can SIGKILL and restart single services.

pub mod fleet;
pub mod ingress;
pub mod process;
pub mod reconcile;
pub mod routes;
pub mod services;
