//! The change feed of the port, and the outbox relay's view of it.
//!
//! `change_feed`: the pull-model change feed (latest version) of a whole container. Our
//! continuation wraps the SDK's token plus the (partition key, id, etag) of documents already
//! handed out from the page that token starts at: Cosmos pages are not ours to split, so when
//! a page holds more than `max` documents we hand out a part and resume the same page next time
//! without repeating it. Non-`doc` items (outbox records, leases) and expired items are skipped.
//!
//! Outbox: an outbox record is an item of its batch's container (same logical partition, which
//! is what makes the batch atomic). `outbox_pending` scans every container of the database from
//! its *lease*: the SDK continuation before which no outbox record is left. The scan collects
//! outbox items; the lease moves over pages that hold none (an ack deletes the record, and a
//! deleted item leaves the latest-version feed, so acked pages become outbox-free). The lease is
//! persisted as an item of the container itself (partition `~relay`, type `lease`), written
//! only when it moved over pages with something besides the lease item (or every scan would
//! see its own lease write). Several replicas may scan concurrently: each publishes what is
//! pending (consumers dedupe on message id) and a lease only ever moves over acked pages, so
//! whichever lease write wins is safe.
//!
//! `PendingOutbox::seq` is a number this process assigns on first sight (in commit-stamp order),
//! mapped back to the item for `outbox_ack`; a restarted relay simply lists again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use nivesh_store::{Continuation, Error, PendingOutbox, Result, StoredDoc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::envelope::{self, PK_FIELD, TYPE_DOC, TYPE_LEASE, TYPE_OUTBOX};
use crate::{CosmosStore, FeedReader};

const LEASE_PK: &str = "~relay";
const LEASE_ID: &str = "outbox-lease";
/// Items asked for per change feed page.
const PAGE: usize = 1000;
/// How long the list of containers is reused before it is queried again.
const CONTAINER_LIST_TTL: Duration = Duration::from_secs(60);

/// Bound on the `seen` list of a continuation. A page only overflows what the caller asked for
/// when the service returns more than the page-size hint (Cosmos keeps the documents of one
/// transactional batch together, at most 100), so this covers several partial pages.
const MAX_SEEN: usize = 512;

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct FeedPosition {
    /// SDK continuation; None: the beginning of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<String>,
    /// (partition key, id, etag) delivered from pages that were only partly handed out: the
    /// SDK continuation `t` is still before them (a version, identified by its etag, appears
    /// once in the latest-version feed, so filtering it out again is always right). Kept, not
    /// cleared, after later pages: `t` covers every feed range, and the partly read page's
    /// range is polled again only when its turn comes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    seen: Vec<(String, String, String)>,
}

fn parse(from: &Continuation) -> Result<FeedPosition> {
    if from.0.is_empty() {
        return Ok(FeedPosition::default());
    }
    serde_json::from_str(&from.0)
        .map_err(|e| Error::Invalid(format!("not a cosmos change feed continuation: {e}")))
}

fn key(item: &Value) -> (String, String, String) {
    let s = |f: &str| {
        item.get(f)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (s(PK_FIELD), s("id"), s("_etag"))
}

pub(crate) async fn change_feed(
    store: &CosmosStore,
    container: &str,
    from: &Continuation,
    max: usize,
) -> Result<(Vec<StoredDoc>, Continuation)> {
    let mut pos = parse(from)?;
    if max == 0 {
        return Ok((Vec::new(), from.clone()));
    }
    let ranges = store.feed_ranges(container).await?;
    let mut reader = FeedReader::open(store, container, pos.t.clone(), max).await?;
    let mut out: Vec<StoredDoc> = Vec::new();
    let mut empty_pages = 0;
    loop {
        let room = max - out.len();
        let items = reader.next_page().await?;
        let next = reader.token().map(str::to_string);
        if items.is_empty() {
            pos.t = next;
            empty_pages += 1;
            if empty_pages >= ranges {
                break;
            }
            continue;
        }
        empty_pages = 0;
        let seen: HashSet<_> = pos.seen.iter().cloned().collect();
        let fresh: Vec<&Value> = items
            .iter()
            .filter(|item| envelope::item_type(item) == Some(TYPE_DOC))
            .filter(|item| !envelope::is_expired(item))
            .filter(|item| !seen.contains(&key(item)))
            .collect();
        if fresh.len() <= room {
            for item in fresh {
                out.push(envelope::stored_doc(container, item, None)?);
            }
            pos.t = next;
            if out.len() == max {
                break;
            }
        } else {
            for item in fresh.into_iter().take(room) {
                pos.seen.push(key(item));
                out.push(envelope::stored_doc(container, item, None)?);
            }
            let excess = pos.seen.len().saturating_sub(MAX_SEEN);
            pos.seen.drain(..excess);
            break;
        }
    }
    let token = serde_json::to_string(&pos)
        .map_err(|e| Error::Backend(format!("change feed continuation: {e}")))?;
    Ok((out, Continuation(token)))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ItemRef {
    container: String,
    pk: String,
    id: String,
}

#[derive(Debug, Default)]
struct Lease {
    loaded: bool,
    token: Option<String>,
}

#[derive(Debug, Default)]
struct RelayState {
    containers: Option<(Instant, Vec<String>)>,
    leases: HashMap<String, Lease>,
    next_seq: u64,
    by_item: HashMap<ItemRef, u64>,
    by_seq: BTreeMap<u64, ItemRef>,
}

/// One relay per store: scans are serialized (the relay is one loop per service anyway).
#[derive(Debug, Default)]
pub(crate) struct Relay(Mutex<RelayState>);

struct Found {
    stamp: (u64, u64),
    item: ItemRef,
    message: nivesh_store::OutboxMessage,
}

async fn containers(store: &CosmosStore, state: &mut RelayState) -> Result<Vec<String>> {
    if let Some((at, names)) = &state.containers {
        if at.elapsed() < CONTAINER_LIST_TTL {
            return Ok(names.clone());
        }
    }
    let names = store.container_names().await?;
    state.containers = Some((Instant::now(), names.clone()));
    Ok(names)
}

async fn scan(
    store: &CosmosStore,
    lease: &mut Lease,
    container: &str,
    max: usize,
) -> Result<Vec<Found>> {
    if !lease.loaded {
        let item = store
            .read_raw(container, LEASE_PK, LEASE_ID, "read_lease")
            .await?;
        lease.token = item
            .as_ref()
            .and_then(|i| i.get("continuation"))
            .and_then(Value::as_str)
            .map(str::to_string);
        lease.loaded = true;
    }
    let ranges = store.feed_ranges(container).await?;
    let mut reader = FeedReader::open(store, container, lease.token.clone(), PAGE).await?;
    let mut lease_token = lease.token.clone();
    let mut advancing = true;
    let mut moved_over_data = false;
    let mut found = Vec::new();
    let mut empty_pages = 0;
    loop {
        let items = reader.next_page().await?;
        let next = reader.token().map(str::to_string);
        if items.is_empty() {
            empty_pages += 1;
            if advancing {
                lease_token = next;
            }
            if empty_pages >= ranges {
                break;
            }
            continue;
        }
        empty_pages = 0;
        let mut has_outbox = false;
        for item in &items {
            match envelope::item_type(item) {
                Some(TYPE_OUTBOX) => {
                    has_outbox = true;
                    let (seq, idx, message) = envelope::outbox_message(item)?;
                    let (pk, id, _) = key(item);
                    found.push(Found {
                        stamp: (seq, idx),
                        item: ItemRef {
                            container: container.to_string(),
                            pk,
                            id,
                        },
                        message,
                    });
                }
                Some(TYPE_LEASE) => {}
                _ => moved_over_data |= advancing,
            }
        }
        if has_outbox {
            advancing = false;
        } else if advancing {
            lease_token = next;
        }
        if found.len() >= max {
            break;
        }
    }
    if lease_token != lease.token {
        if moved_over_data {
            if let Some(t) = &lease_token {
                store
                    .upsert_raw(
                        container,
                        LEASE_PK,
                        &envelope::lease_item(LEASE_PK, LEASE_ID, t),
                    )
                    .await?;
            }
        }
        lease.token = lease_token;
    }
    Ok(found)
}

pub(crate) async fn outbox_pending(store: &CosmosStore, max: usize) -> Result<Vec<PendingOutbox>> {
    let mut state = store.relay.0.lock().await;
    let names = containers(store, &mut state).await?;
    let mut found = Vec::new();
    for name in names {
        let mut lease = state.leases.remove(&name).unwrap_or_default();
        let scanned = scan(store, &mut lease, &name, max).await;
        state.leases.insert(name.clone(), lease);
        found.extend(scanned?);
    }
    // Commit order: the commit stamp, then the position in the batch.
    found.sort_by_key(|f| f.stamp);
    let mut out: Vec<PendingOutbox> = Vec::with_capacity(found.len().min(max));
    for f in found {
        let seq = match state.by_item.get(&f.item) {
            Some(seq) => *seq,
            None => {
                state.next_seq += 1;
                let seq = state.next_seq;
                state.by_item.insert(f.item.clone(), seq);
                state.by_seq.insert(seq, f.item);
                seq
            }
        };
        out.push(PendingOutbox {
            seq,
            message: f.message,
        });
    }
    // Numbers of records seen earlier are smaller: list in number order, then cut.
    out.sort_by_key(|p| p.seq);
    out.truncate(max);
    Ok(out)
}

pub(crate) async fn outbox_ack(store: &CosmosStore, seqs: &[u64]) -> Result<()> {
    let items: Vec<(u64, ItemRef)> = {
        let state = store.relay.0.lock().await;
        seqs.iter()
            .filter_map(|s| state.by_seq.get(s).map(|i| (*s, i.clone())))
            .collect()
    };
    let results: Vec<(u64, ItemRef, Result<()>)> = futures::stream::iter(items)
        .map(|(seq, item)| async move {
            let r = store.delete_raw(&item.container, &item.pk, &item.id).await;
            (seq, item, r)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut state = store.relay.0.lock().await;
    let mut first_err = None;
    for (seq, item, r) in results {
        match r {
            Ok(()) => {
                state.by_seq.remove(&seq);
                state.by_item.remove(&item);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}
