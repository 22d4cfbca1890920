//! MemoryCache against the Cache contract.

use std::sync::Arc;

use nivesh_store::MemoryCache;
use nivesh_store::contract::cache_contract;

/// The whole Cache contract holds for the in-process cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_on_memory_cache() {
    cache_contract(Arc::new(MemoryCache::new())).await;
}
