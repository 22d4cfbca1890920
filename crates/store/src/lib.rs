//! nivesh-store: the storage ports (see [`port`]) and their local implementations.
//!
//! - [`port`]: `DocumentStore` (documents, transactional batch + outbox, range queries, change
//!   feed) and `Cache` (lossy fast state). Services depend only on these traits.
//! - `embedded`: SQLite-backed `DocumentStore`, the default for local runs and tests.
//! - `redis_cache` / `memory_cache`: `Cache` on Redis, and in-process when Redis is absent.

pub mod port;

pub use port::*;

/// Errors every storage backend maps into, so callers can branch without knowing the backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("document {id} already exists")]
    Conflict { id: String },
    #[error("document {id} was changed by someone else (etag mismatch)")]
    PreconditionFailed { id: String },
    #[error("document {id} not found")]
    NotFound { id: String },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage backend error: {0}")]
    Backend(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
