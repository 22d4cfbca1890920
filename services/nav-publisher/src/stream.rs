//! `GET /v1/nav/stream`: Server-Sent Events of published NAVs, resumable with `Last-Event-ID`.
//!
//! The stream is the store's change feed of NAV history documents: the same NAVs that go out on
//! `nav.broadcast`, in commit order, each with its change-feed position as the SSE event id. A
//! client that reconnects with `Last-Event-ID` resumes exactly after the last NAV it saw, even
//! across publisher restarts; polling the change feed (rather than an in-process channel) means a
//! client sees every replica's NAVs once the store is shared (Cosmos DB).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use nivesh_store::{Continuation, DocumentStore};
use tokio::sync::Notify;

use crate::handler::NAV;

/// Where the NAV change feed ends: advanced by the handler on every commit, initialised at start.
#[derive(Clone, Default)]
pub struct FeedHead {
    seq: Arc<AtomicU64>,
    pub changed: Arc<Notify>,
}

impl FeedHead {
    pub fn advance(&self, seq: u64) {
        self.seq.fetch_max(seq, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    pub fn get(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Find the current end of the feed (once, at start-up).
    pub async fn initialise(&self, store: &Arc<dyn DocumentStore>) -> nivesh_store::Result<()> {
        let mut from = Continuation::default();
        loop {
            let (docs, next) = store.change_feed(NAV, &from, 10_000).await?;
            if let Some(last) = docs.last() {
                self.advance(last.sequence);
            }
            if docs.is_empty() {
                return Ok(());
            }
            from = next;
        }
    }
}

#[derive(Clone)]
pub struct StreamState {
    pub store: Arc<dyn DocumentStore>,
    pub head: FeedHead,
}

/// Published NAVs as they happen (`event: nav`, `id`: resume position, `data`: the NAV JSON).
#[utoipa::path(get, path = "/v1/nav/stream", security(()), params(("Last-Event-ID" = Option<String>, Header, description = "resume after this event")),
    responses((status = 200, description = "text/event-stream of NAVs", content_type = "text/event-stream")))]
pub async fn nav_stream(
    State(state): State<StreamState>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let start = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| state.head.get());
    let stream = futures::stream::unfold(
        (state, start, Vec::<Event>::new()),
        |(state, mut pos, mut pending)| async move {
            loop {
                if !pending.is_empty() {
                    let ev = pending.remove(0);
                    return Some((Ok(ev), (state, pos, pending)));
                }
                let notified = state.head.changed.notified();
                match state
                    .store
                    .change_feed(NAV, &Continuation(pos.to_string()), 500)
                    .await
                {
                    Ok((docs, _)) if !docs.is_empty() => {
                        for d in docs {
                            pos = pos.max(d.sequence);
                            if d.id.starts_with("h:") {
                                pending.push(
                                    Event::default()
                                        .id(d.sequence.to_string())
                                        .event("nav")
                                        .data(d.body.to_string()),
                                );
                            }
                        }
                    }
                    Ok(_) => {
                        // Wake on the next commit, or poll anyway (other replicas write too).
                        let _ = tokio::time::timeout(Duration::from_millis(500), notified).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "NAV stream: change feed read failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
