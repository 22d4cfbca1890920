//! nivesh-testkit: the few facts tests across the workspace share.
//!
//! - [`redis_url`]: the real Redis tests talk to (`REDIS_URL`, default `redis://127.0.0.1:6379`).
//! - [`unique`]: a collision-free name (key prefix, group id, data dir) so tests run in parallel.
//! - [`amfi_file`]: the real AMFI NAVAll file in `../shared/data`, or `None` with a printed reason.
//! - [`kafka`]: reading a topic of a real Kafka-protocol broker (to its end, or until a predicate
//!   holds), decoding its events, producing raw bytes or an encoded event.
//! - [`auth`]: a dev identity provider on a random port ([`TestIdp`]) and bearer tokens for
//!   each role.
//!
//! Process-level helpers (broker, services, SIGKILL) live in `nivesh-fleet`, which the launcher
//! also uses, so tests drive the fleet exactly as a developer does.

use std::path::PathBuf;

pub mod auth;
pub mod kafka;

pub use auth::TestIdp;
pub use nivesh_auth::{DevClaims, Role};

/// The Redis server integration tests use.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// `prefix-<uuid>`: unique per call.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The real AMFI NAVAll file shipped beside the repository (`../shared/data/amfi/`).
/// Returns `None` (and says why on stderr) when it is absent, so a test can skip clearly.
pub fn amfi_file() -> Option<PathBuf> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidate = here.join("../../../shared/data/amfi/NAVAll-2025-02-25.txt");
    if candidate.is_file() {
        Some(candidate)
    } else {
        eprintln!(
            "SKIPPED: real AMFI file not found at {}",
            candidate.display()
        );
        None
    }
}
