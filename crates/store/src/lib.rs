//! nivesh-store: the storage ports (see [`port`]) and their local implementations.
//!
//! - [`port`]: `DocumentStore` (documents, transactional batch + outbox, range queries, change
//!   feed) and `Cache` (lossy fast state). Services depend only on these traits.
//! - [`embedded`]: SQLite-backed `DocumentStore`, the default for local runs and tests. One writer
//!   thread group-commits many batches per SQLite transaction (a SAVEPOINT per batch keeps their
//!   failures apart); a small pool of read connections serves reads concurrently under WAL.
//! - [`inbox`]: idempotent consumers. A handler adds [`inbox_marker`] to the same batch as its
//!   state change and treats the resulting conflict ([`is_inbox_conflict`]) as "already done".
//! - [`redis_cache`] / [`memory_cache`]: `Cache` on Redis (every Redis failure becomes
//!   [`Error::Unavailable`] within a bounded time, so callers can degrade), and in-process when
//!   Redis is absent.
//! - [`cache_aside`]: read-through caching on any `Cache`: single flight per key (one load per
//!   key per process, concurrent misses await it), jittered TTLs, cache failures never errors.
//! - [`contract`]: the behavioural suite every `DocumentStore` / `Cache` backend must pass; the
//!   embedded store, both caches and (later) the Cosmos adapter all run the same checks.
//!
//! Errors: every backend maps its failures into the one [`Error`] enum below, so callers branch
//! on meaning (conflict, precondition, not found, unavailable) rather than on the backend.

pub mod cache_aside;
pub mod contract;
pub mod embedded;
pub mod inbox;
pub mod memory_cache;
pub mod port;
pub mod redis_cache;

pub use cache_aside::{CacheAside, CacheStats, Fetched, Origin};
pub use embedded::{EmbeddedConfig, EmbeddedStore};
pub use inbox::{inbox_marker, inbox_marker_id, is_inbox_conflict};
pub use memory_cache::MemoryCache;
pub use port::*;
pub use redis_cache::{RedisCache, RedisConfig};

/// Errors every storage backend maps into, so callers can branch without knowing the backend.
#[derive(Debug, Clone, thiserror::Error)]
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
