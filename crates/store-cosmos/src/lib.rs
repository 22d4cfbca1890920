//! nivesh-store-cosmos: the Cosmos DB for NoSQL adapter of [`nivesh_store::DocumentStore`].
//!
//! Layout (see `docs/storage.md`): one database per service, one container per aggregate (the
//! port's `container`), every container partitioned on `/partitionKey` (the port's partition
//! key), items laid out as in [`envelope`]. The SDK is `azure_data_cosmos` (exact version pinned
//! in the root `Cargo.toml`).
//!
//! - `commit` = one Cosmos transactional batch: the documents plus one `outbox` item per
//!   message, in the same logical partition, all-or-nothing. ETags map to `if-match`.
//! - `query_partition` = a single-partition query ordered by id.
//! - `change_feed` = the pull-model change feed (latest version) with our own continuation.
//! - `outbox_pending` / `outbox_ack` = the change feed of every container from a persisted lease,
//!   picking the `outbox` items; an ack deletes the item (see [`relay`]).
//! - 429s, timeouts and 503s go through [`retry`]; every request's RU charge is recorded as the
//!   `nivesh_cosmos_request_charge` histogram (labels `container`, `operation`).
//! - Session consistency: the latest session token per (container, partition key) is kept from
//!   every response and sent with reads of that partition, so a service reads its own writes.

pub mod envelope;
mod relay;
pub mod retry;
#[cfg(feature = "emulator")]
pub mod testing;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use azure_core::http::Etag;
use azure_data_cosmos::clients::{ContainerClient, DatabaseClient};
use azure_data_cosmos::feed::{ChangeFeedPageIterator, ContinuationToken};
use azure_data_cosmos::models::{ChangeFeedItem, TransactionalBatchOperationResult};
use azure_data_cosmos::options::{
    BatchDeleteOptions, BatchOptions, BatchReplaceOptions, ChangeFeedOptions, ChangeFeedStartFrom,
    ItemReadOptions, ItemWriteOptions, MaxItemCountHint, OperationOptions, OperationOptionsBuilder,
    Precondition, QueryOptions, SessionToken, ThrottlingRetryOptionsBuilder,
};
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosClientBuilder, CosmosError, FeedScope,
    Query, RoutingStrategy, TransactionalBatch,
};
use futures::StreamExt as _;
use nivesh_store::{
    Batch, Continuation, DocumentStore, Error, IdRange, PendingOutbox, Result, StoredDoc, WriteOp,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use crate::envelope::TYPE_DOC;
pub use crate::retry::RetryPolicy;
use crate::retry::{Retrier, map_error};

/// Cosmos' limit on operations in one transactional batch.
pub const MAX_BATCH_OPERATIONS: usize = 100;

/// Where and how to connect.
#[derive(Clone)]
pub struct CosmosConfig {
    /// `https://<account>.documents.azure.com:443/`
    pub endpoint: String,
    /// The service's database (`nivesh-<service>` in Terraform).
    pub database: String,
    /// Account key (from Key Vault via `NIVESH__STORE__COSMOS__KEY`).
    pub key: SecretString,
    /// The region to route to first (`centralindia`, ...).
    pub region: String,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for CosmosConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosmosConfig")
            .field("endpoint", &self.endpoint)
            .field("database", &self.database)
            .field("key", &"[REDACTED]")
            .field("region", &self.region)
            .field("retry", &self.retry)
            .finish()
    }
}

/// Operation options every client of the adapter must use: the SDK's own 429 retries are off,
/// so [`retry`] is the single place that waits on throttling (and can meter and bound it).
pub fn sdk_operation_options() -> OperationOptions {
    OperationOptionsBuilder::new()
        .with_throttling_retry_options(
            ThrottlingRetryOptionsBuilder::new()
                .with_max_retry_count(0)
                .build(),
        )
        .build()
}

/// A [`CosmosClientBuilder`] with the adapter's defaults (tests add a runtime / fault rules).
pub fn client_builder() -> CosmosClientBuilder {
    CosmosClientBuilder::new().with_default_operation_options(sdk_operation_options())
}

/// Commit stamps: the `sequence` of every document written by one commit. Microseconds since
/// the epoch, strictly increasing within this process (a hybrid logical clock without the
/// network part). Cosmos' own LSN is per physical partition and is not returned by queries,
/// so it cannot serve as the port's per-container sequence.
#[derive(Debug, Default)]
pub(crate) struct SeqClock(AtomicU64);

impl SeqClock {
    pub(crate) fn next(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let mut last = self.0.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .0
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

/// Session tokens kept per (container, partition key); bounded so a long-running service with
/// millions of investors does not grow without limit (losing a token only costs a read that may
/// lag the service's own write on another replica: the SDK keeps its own per-range tokens too).
const MAX_SESSION_TOKENS: usize = 100_000;

/// The Cosmos DB `DocumentStore`.
pub struct CosmosStore {
    db: DatabaseClient,
    containers: tokio::sync::Mutex<HashMap<String, ContainerClient>>,
    retrier: Retrier,
    sessions: Mutex<HashMap<(String, String), SessionToken>>,
    clock: SeqClock,
    relay: relay::Relay,
}

impl std::fmt::Debug for CosmosStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosmosStore").finish_non_exhaustive()
    }
}

impl CosmosStore {
    /// Connect to an account with its key.
    pub async fn connect(config: &CosmosConfig) -> Result<Self> {
        let endpoint: AccountEndpoint = config
            .endpoint
            .parse()
            .map_err(|e| Error::Invalid(format!("store.cosmos.endpoint: {e}")))?;
        let account = AccountReference::with_authentication_key(
            endpoint,
            azure_core::credentials::Secret::new(config.key.expose_secret().to_string()),
        );
        let client = client_builder()
            .build(
                account,
                RoutingStrategy::ProximityTo(config.region.clone().into()),
            )
            .await
            .map_err(|e| Error::Unavailable(format!("cosmos client: {e}")))?;
        Ok(Self::from_client(
            &client,
            &config.database,
            config.retry.clone(),
        ))
    }

    /// Use a client built elsewhere (tests: the in-memory emulator; see [`client_builder`]).
    pub fn from_client(client: &CosmosClient, database: &str, retry: RetryPolicy) -> Self {
        CosmosStore {
            db: client.database_client(database.to_string()),
            containers: tokio::sync::Mutex::default(),
            retrier: Retrier::new(retry),
            sessions: Mutex::default(),
            clock: SeqClock::default(),
            relay: relay::Relay::default(),
        }
    }

    async fn container(&self, name: &str) -> Result<ContainerClient> {
        let mut cache = self.containers.lock().await;
        if let Some(c) = cache.get(name) {
            return Ok(c.clone());
        }
        let db = &self.db;
        let out = self
            .retrier
            .run(
                name,
                "read_container",
                |_| None,
                || db.container_client(name.to_string(), None),
            )
            .await;
        let client = out.result.map_err(|e| match map_error(&e, name) {
            Error::NotFound { .. } => Error::Invalid(format!(
                "cosmos container {name:?} is not provisioned (Terraform declares every container)"
            )),
            other => other,
        })?;
        cache.insert(name.to_string(), client.clone());
        Ok(client)
    }

    fn session(&self, container: &str, pk: &str) -> Option<SessionToken> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(&(container.to_string(), pk.to_string()))
            .cloned()
    }

    /// The session token kept for reads of one partition (observability and tests).
    pub fn session_token(&self, container: &str, partition_key: &str) -> Option<String> {
        self.session(container, partition_key)
            .map(|t| t.as_str().to_string())
    }

    fn remember_session(&self, container: &str, pk: &str, token: Option<&SessionToken>) {
        let Some(token) = token else { return };
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= MAX_SESSION_TOKENS {
            sessions.clear();
        }
        let key = (container.to_string(), pk.to_string());
        let merged = match sessions.get(&key) {
            Some(old) => old.merge(token).unwrap_or_else(|_| token.clone()),
            None => token.clone(),
        };
        sessions.insert(key, merged);
    }

    /// Read one raw item (any type), with the partition's session token. `None` when absent.
    async fn read_raw(
        &self,
        container: &str,
        pk: &str,
        id: &str,
        operation: &'static str,
    ) -> Result<Option<Value>> {
        let client = self.container(container).await?;
        let mut options = ItemReadOptions::default();
        if let Some(token) = self.session(container, pk) {
            options = options.with_session_token(token);
        }
        let out = self
            .retrier
            .run(
                container,
                operation,
                |r: &azure_data_cosmos::models::ItemResponse| {
                    r.headers().request_charge().map(|c| c.value())
                },
                || client.read_item(pk.to_string(), id, Some(options.clone())),
            )
            .await;
        match out.result {
            Ok(resp) => {
                self.remember_session(container, pk, resp.headers().session_token());
                let item: Value = resp
                    .into_model()
                    .map_err(|e| Error::Backend(format!("cosmos item body: {e}")))?;
                Ok(Some(item))
            }
            Err(e) if e.status().is_not_found() => Ok(None),
            Err(e) => Err(map_error(&e, id)),
        }
    }

    /// The raw item as the SDK returns it (tests assert the `ttl` property with it).
    pub async fn raw_item(&self, container: &str, pk: &str, id: &str) -> Result<Option<Value>> {
        self.read_raw(container, pk, id, "read").await
    }

    async fn delete_raw(&self, container: &str, pk: &str, id: &str) -> Result<()> {
        let client = self.container(container).await?;
        let out = self
            .retrier
            .run(
                container,
                "delete",
                |r: &azure_data_cosmos::models::ItemResponse| {
                    r.headers().request_charge().map(|c| c.value())
                },
                || client.delete_item(pk.to_string(), id, Some(ItemWriteOptions::default())),
            )
            .await;
        match out.result {
            Ok(resp) => {
                self.remember_session(container, pk, resp.headers().session_token());
                Ok(())
            }
            Err(e) if e.status().is_not_found() => Ok(()),
            Err(e) => Err(map_error(&e, id)),
        }
    }

    async fn upsert_raw(&self, container: &str, pk: &str, item: &Value) -> Result<()> {
        let client = self.container(container).await?;
        let out = self
            .retrier
            .run(
                container,
                "upsert",
                |r: &azure_data_cosmos::models::ItemResponse| {
                    r.headers().request_charge().map(|c| c.value())
                },
                || {
                    client.upsert_item(
                        pk.to_string(),
                        item["id"].as_str().unwrap_or_default(),
                        item,
                        None,
                    )
                },
            )
            .await;
        out.result
            .map(drop)
            .map_err(|e| map_error(&e, item["id"].as_str().unwrap_or_default()))
    }

    /// How many feed ranges (physical partitions) the container has: a scan of the whole
    /// container is at its end after that many empty pages in a row.
    async fn feed_ranges(&self, container: &str) -> Result<usize> {
        let client = self.container(container).await?;
        let out = self
            .retrier
            .run(
                container,
                "read_feed_ranges",
                |_| None,
                || client.read_feed_ranges(None),
            )
            .await;
        Ok(out
            .result
            .map_err(|e| map_error(&e, container))?
            .len()
            .max(1))
    }

    /// Ids of the database's containers.
    async fn container_names(&self) -> Result<Vec<String>> {
        let db = &self.db;
        let out = self
            .retrier
            .run(
                "-",
                "query_containers",
                |_| None,
                || async {
                    let mut it = db.query_containers("SELECT * FROM c", None).await?;
                    let mut names = Vec::new();
                    while let Some(props) = it.next().await {
                        names.push(props?.id.to_string());
                    }
                    Ok(names)
                },
            )
            .await;
        out.result.map_err(|e| map_error(&e, "containers"))
    }

    /// After an ambiguous failure (the service may have applied an earlier attempt) the retry
    /// failed on a precondition: read back what the batch wrote and decide.
    async fn verify_landed(
        &self,
        batch: &Batch,
        commit: &str,
        written: &[Option<Value>],
    ) -> Result<Option<Vec<StoredDoc>>> {
        let probe = written
            .iter()
            .flatten()
            .next()
            .map(|item| item["id"].as_str().unwrap_or_default().to_string())
            .or_else(|| {
                batch
                    .outbox
                    .first()
                    .map(|m| envelope::outbox_item_id(&m.message_id))
            });
        let Some(probe) = probe else {
            return Ok(None);
        };
        let item = self
            .read_raw(&batch.container, &batch.partition_key, &probe, "verify")
            .await?;
        if item.as_ref().and_then(envelope::item_commit) != Some(commit) {
            return Ok(None);
        }
        let mut docs = Vec::new();
        for item in written.iter().flatten() {
            let id = item["id"].as_str().unwrap_or_default();
            let stored = self
                .read_raw(&batch.container, &batch.partition_key, id, "verify")
                .await?;
            match stored {
                Some(s) if envelope::item_commit(&s) == Some(commit) => {
                    docs.push(envelope::stored_doc(&batch.container, &s, None)?);
                }
                _ => {
                    return Err(Error::Unavailable(format!(
                        "commit {commit} landed but {id} changed again before it could be read back"
                    )));
                }
            }
        }
        Ok(Some(docs))
    }
}

type FeedPages = ChangeFeedPageIterator<ChangeFeedItem<Value>>;

/// Reads a container's change feed (latest version, all feed ranges) page by page from a
/// continuation. One reader keeps one SDK iterator, which polls the feed ranges round-robin, so
/// `ranges` consecutive empty pages mean every range is at its end. On a retryable failure the
/// iterator is reopened from the last page's continuation (nothing is skipped or repeated).
pub(crate) struct FeedReader<'a> {
    store: &'a CosmosStore,
    client: ContainerClient,
    container: String,
    page_size: NonZeroU32,
    token: Option<String>,
    pages: Option<FeedPages>,
}

impl<'a> FeedReader<'a> {
    pub(crate) async fn open(
        store: &'a CosmosStore,
        container: &str,
        token: Option<String>,
        page_size: usize,
    ) -> Result<Self> {
        Ok(FeedReader {
            client: store.container(container).await?,
            store,
            container: container.to_string(),
            page_size: NonZeroU32::new(page_size.clamp(1, 1000) as u32).unwrap_or(NonZeroU32::MIN),
            token,
            pages: None,
        })
    }

    /// The continuation after the last page read (None: nothing read yet from the beginning).
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    async fn open_pages(
        client: ContainerClient,
        token: Option<String>,
        page_size: NonZeroU32,
    ) -> Result<FeedPages, CosmosError> {
        let mut options =
            ChangeFeedOptions::default().with_max_item_count(MaxItemCountHint::Limit(page_size));
        if let Some(t) = token {
            options = options.with_continuation_token(ContinuationToken::from_string(t));
        }
        client
            .query_change_feed::<Value>(
                FeedScope::full_container(),
                ChangeFeedStartFrom::Beginning,
                Some(options),
            )
            .await
    }

    /// The next page's current documents (empty: this range has nothing new right now).
    pub(crate) async fn next_page(&mut self) -> Result<Vec<Value>> {
        let retrier = &self.store.retrier;
        let (mut n, mut throttle_waited, mut maybe_applied) = (0, Duration::ZERO, false);
        loop {
            retrier.wait_gate(&self.container).await;
            n += 1;
            let err = match self.pages.take() {
                None => {
                    match Self::open_pages(self.client.clone(), self.token.clone(), self.page_size)
                        .await
                    {
                        Ok(pages) => {
                            self.pages = Some(pages);
                            n -= 1;
                            continue;
                        }
                        Err(e) => e,
                    }
                }
                Some(mut pages) => match pages.next().await {
                    Some(Ok(page)) => {
                        retry::record_charge(
                            &self.container,
                            "change_feed",
                            page.headers().request_charge().map(|c| c.value()),
                        );
                        let next = pages.to_continuation_token().map_err(|e| {
                            Error::Backend(format!("change feed continuation: {e}"))
                        })?;
                        self.token = Some(next.as_str().to_string());
                        self.pages = Some(pages);
                        return Ok(page
                            .into_items()
                            .into_iter()
                            .filter_map(|change| change.current().cloned())
                            .collect());
                    }
                    Some(Err(e)) => e,
                    None => {
                        return Err(Error::Backend("the change feed stream ended".into()));
                    }
                },
            };
            retry::record_charge(&self.container, "change_feed", retry::error_charge(&err));
            match retrier.decide(
                &self.container,
                "change_feed",
                &err,
                n,
                &mut throttle_waited,
                &mut maybe_applied,
            ) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(map_error(&err, &self.container)),
            }
        }
    }
}

/// The first failing operation of a batch (status != 424 "failed dependency").
fn batch_failure(results: &[TransactionalBatchOperationResult]) -> Option<(usize, u16)> {
    results
        .iter()
        .enumerate()
        .find(|(_, r)| !r.is_success() && r.status_code() != 424)
        .map(|(i, r)| (i, r.status_code()))
}

/// A failed batch may come back as an error whose body lists the per-operation results.
fn batch_failure_in_error(e: &CosmosError) -> Option<(usize, u16)> {
    let response = e.response()?;
    let azure_data_cosmos_driver::models::ResponseBody::Bytes(bytes) = response.body() else {
        return None;
    };
    let results: Vec<Value> = serde_json::from_slice(bytes).ok()?;
    results.iter().enumerate().find_map(|(i, r)| {
        let status = r.get("statusCode")?.as_u64()? as u16;
        (status >= 300 && status != 424).then_some((i, status))
    })
}

fn status_error(status: u16, id: &str, what: &str) -> Error {
    match status {
        404 => Error::NotFound { id: id.to_string() },
        409 => Error::Conflict { id: id.to_string() },
        412 => Error::PreconditionFailed { id: id.to_string() },
        400 | 413 => Error::Invalid(format!("{what}: operation on {id} rejected ({status})")),
        429 | 408 | 503 => Error::Unavailable(format!("{what}: operation on {id} ({status})")),
        _ => Error::Backend(format!("{what}: operation on {id} failed ({status})")),
    }
}

#[async_trait]
impl DocumentStore for CosmosStore {
    async fn get(
        &self,
        container: &str,
        partition_key: &str,
        id: &str,
    ) -> Result<Option<StoredDoc>> {
        let Some(item) = self.read_raw(container, partition_key, id, "read").await? else {
            return Ok(None);
        };
        if envelope::item_type(&item) != Some(TYPE_DOC) || envelope::is_expired(&item) {
            return Ok(None);
        }
        envelope::stored_doc(container, &item, None).map(Some)
    }

    async fn commit(&self, batch: Batch) -> Result<Vec<StoredDoc>> {
        if batch.ops.is_empty() && batch.outbox.is_empty() {
            return Ok(Vec::new());
        }
        let total = batch.ops.len() + batch.outbox.len();
        if total > MAX_BATCH_OPERATIONS {
            return Err(Error::Invalid(format!(
                "a Cosmos transactional batch holds at most {MAX_BATCH_OPERATIONS} operations \
                 (documents + outbox messages), got {total}"
            )));
        }
        let pk = batch.partition_key.clone();
        let seq = self.clock.next();
        let commit = uuid::Uuid::new_v4().simple().to_string();
        let sdk = |e: CosmosError| Error::Invalid(format!("batch operation: {e}"));

        let mut tx = TransactionalBatch::new(pk.clone());
        // The item each op writes (None for deletes), and the port id of every batch operation.
        let mut written: Vec<Option<Value>> = Vec::with_capacity(batch.ops.len());
        let mut op_ids: Vec<String> = Vec::with_capacity(total);
        for op in &batch.ops {
            op_ids.push(op.id().to_string());
            match op {
                WriteOp::Create { id, body, ttl } => {
                    let item = envelope::doc_item(&pk, id, body, *ttl, seq, &commit)?;
                    tx = tx.create_item(&item).map_err(sdk)?;
                    written.push(Some(item));
                }
                WriteOp::Upsert { id, body, ttl } => {
                    let item = envelope::doc_item(&pk, id, body, *ttl, seq, &commit)?;
                    tx = tx.upsert_item(&item, None).map_err(sdk)?;
                    written.push(Some(item));
                }
                WriteOp::Replace {
                    id,
                    body,
                    if_match,
                    ttl,
                } => {
                    let item = envelope::doc_item(&pk, id, body, *ttl, seq, &commit)?;
                    let options = BatchReplaceOptions::default()
                        .with_precondition(Precondition::IfMatch(Etag::from(if_match.0.clone())));
                    tx = tx
                        .replace_item(id.clone(), &item, Some(options))
                        .map_err(sdk)?;
                    written.push(Some(item));
                }
                WriteOp::Delete { id, if_match } => {
                    let options = if_match.as_ref().map(|etag| {
                        BatchDeleteOptions::default()
                            .with_precondition(Precondition::IfMatch(Etag::from(etag.0.clone())))
                    });
                    tx = tx.delete_item(id.clone(), options);
                    written.push(None);
                }
            }
        }
        for (idx, msg) in batch.outbox.iter().enumerate() {
            op_ids.push(msg.message_id.clone());
            tx = tx
                .create_item(envelope::outbox_item(&pk, msg, seq, idx, &commit))
                .map_err(sdk)?;
        }

        let client = self.container(&batch.container).await?;
        let out = self
            .retrier
            .run(
                &batch.container,
                "batch",
                |r: &azure_data_cosmos::models::BatchResponse| {
                    r.headers().request_charge().map(|c| c.value())
                },
                || client.execute_transactional_batch(tx.clone(), Some(BatchOptions::default())),
            )
            .await;

        let failure = match out.result {
            Ok(resp) => {
                self.remember_session(&batch.container, &pk, resp.headers().session_token());
                let results = resp
                    .into_model()
                    .map_err(|e| Error::Backend(format!("cosmos batch response: {e}")))?;
                let results = results.results();
                match batch_failure(results) {
                    None => {
                        let mut docs = Vec::new();
                        for (i, item) in written.iter().enumerate() {
                            let Some(item) = item else { continue };
                            let etag = results.get(i).and_then(|r| r.etag()).ok_or_else(|| {
                                Error::Backend("cosmos batch result without etag".into())
                            })?;
                            docs.push(envelope::stored_doc_from_written(
                                &batch.container,
                                item,
                                etag,
                            )?);
                        }
                        return Ok(docs);
                    }
                    Some((i, status)) => (i, status, None),
                }
            }
            Err(e) => match batch_failure_in_error(&e) {
                Some((i, status)) => (i, status, None),
                None => (0, u16::from(e.status().status_code()), Some(e)),
            },
        };
        let (index, status, sdk_error) = failure;
        tracing::debug!(container = %batch.container, commit, status, attempts = out.attempts, "cosmos: batch failed");
        // A precondition failure may be our own earlier attempt showing through: an attempt that
        // timed out after the service applied it, retried by us or inside the SDK (its transport
        // retries are not visible here). The batch's items carry this commit's id, so one read
        // tells: if they are ours, the commit succeeded (exactly once).
        if matches!(status, 404 | 409 | 412) {
            if let Some(docs) = self.verify_landed(&batch, &commit, &written).await? {
                tracing::info!(container = %batch.container, commit, "cosmos: an ambiguous attempt had landed; not re-applied");
                return Ok(docs);
            }
        }
        if let Some(e) = sdk_error {
            let err = map_error(&e, op_ids.first().map(String::as_str).unwrap_or_default());
            if out.maybe_applied && matches!(err, Error::Unavailable(_)) {
                // Still ambiguous after the retry budget: say so, the caller retries the whole
                // unit of work (its inbox marker / outbox ids make that idempotent).
                if let Some(docs) = self
                    .verify_landed(&batch, &commit, &written)
                    .await
                    .ok()
                    .flatten()
                {
                    return Ok(docs);
                }
            }
            return Err(err);
        }
        let id = op_ids.get(index).map(String::as_str).unwrap_or_default();
        Err(status_error(status, id, "cosmos batch"))
    }

    async fn query_partition(
        &self,
        container: &str,
        partition_key: &str,
        range: IdRange,
    ) -> Result<Vec<StoredDoc>> {
        let limit = range.limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut sql = format!("SELECT * FROM c WHERE c.type = '{TYPE_DOC}'");
        if range.from.is_some() {
            sql.push_str(" AND c.id >= @from");
        }
        if range.to.is_some() {
            sql.push_str(" AND c.id <= @to");
        }
        sql.push_str(if range.descending {
            " ORDER BY c.id DESC"
        } else {
            " ORDER BY c.id ASC"
        });
        let mut query = Query::from(sql);
        let bad = |e: CosmosError| Error::Invalid(format!("query parameter: {e}"));
        if let Some(from) = &range.from {
            query = query.with_parameter("@from", from).map_err(bad)?;
        }
        if let Some(to) = &range.to {
            query = query.with_parameter("@to", to).map_err(bad)?;
        }
        let client = self.container(container).await?;
        let mut options = QueryOptions::default();
        if let Some(token) = self.session(container, partition_key) {
            options = options.with_session_token(token);
        }
        let out = self
            .retrier
            .run(
                container,
                "query",
                |_| None,
                || async {
                    let mut pages = client
                        .query_items::<Value>(
                            query.clone(),
                            FeedScope::partition(partition_key.to_string()),
                            Some(options.clone()),
                        )
                        .await?
                        .into_pages();
                    let mut docs = Vec::new();
                    while let Some(page) = pages.next().await {
                        let page = page?;
                        retry::record_charge(
                            container,
                            "query",
                            page.headers().request_charge().map(|c| c.value()),
                        );
                        for item in page.into_items() {
                            if !envelope::is_expired(&item) {
                                docs.push(item);
                            }
                        }
                        if docs.len() >= limit {
                            break;
                        }
                    }
                    Ok(docs)
                },
            )
            .await;
        let items = out.result.map_err(|e| map_error(&e, partition_key))?;
        items
            .iter()
            .take(limit)
            .map(|item| envelope::stored_doc(container, item, None))
            .collect()
    }

    async fn change_feed(
        &self,
        container: &str,
        from: &Continuation,
        max: usize,
    ) -> Result<(Vec<StoredDoc>, Continuation)> {
        relay::change_feed(self, container, from, max).await
    }

    async fn outbox_pending(&self, max: usize) -> Result<Vec<PendingOutbox>> {
        relay::outbox_pending(self, max).await
    }

    async fn outbox_ack(&self, seqs: &[u64]) -> Result<()> {
        relay::outbox_ack(self, seqs).await
    }

    async fn ping(&self) -> Result<()> {
        let db = &self.db;
        let out = self
            .retrier
            .run("-", "ping", |_| None, || db.read(None))
            .await;
        out.result
            .map(drop)
            .map_err(|e| match e.status().status_code() {
                azure_core::http::StatusCode::NotFound => {
                    Error::Unavailable(format!("cosmos database not found: {e}"))
                }
                _ => Error::Unavailable(format!("cosmos: {e}")),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_clock_is_strictly_increasing() {
        let clock = SeqClock::default();
        let mut last = 0;
        for _ in 0..10_000 {
            let next = clock.next();
            assert!(next > last);
            last = next;
        }
    }
}
