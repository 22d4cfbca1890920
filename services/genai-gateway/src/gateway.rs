//! The request pipeline every use case goes through:
//!
//! ```text
//! retrieved sources ─▶ mask (PII → tokens) ─▶ prompt ─▶ cache? ─hit─▶ restore ─▶ answer
//!                                                  │ miss
//!                                                  ▼
//!                          single-flight (identical concurrent requests share one call)
//!                                                  ▼
//!                quota (Lua, tenant+role, day+month) ─exhausted─▶ quota template + AlertRaised
//!                                                  ▼
//!                LLM (timeout, retry, breaker) ─down─▶ unavailable template
//!                                                  ▼
//!      policy filter + grounding ─blocked / below min_grounding─▶ escalation template + TicketCreated
//!                                                  ▼
//!                           cache (TTL) ─▶ restore tokens for this caller ─▶ answer
//! ```
//!
//! Every request is metered (metrics) and audited (store: masked prompt and answer, hashed
//! user id, tokens, cost, latency, cache hit); ticket and alert events are written in the same
//! batch as the audit record (transactional outbox). Every outcome is a 200 with an answer the
//! user can read; nothing here turns into a 5xx.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use nivesh_events::{AlertRaised, AvroCodec, EventMeta, TicketCreated, alert_severity};
use nivesh_runtime::outbox::outbox_message;
use nivesh_store::{Batch, Cache, DocumentStore, WriteOp};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, OnceCell};
use utoipa::ToSchema;

use crate::context::{Retrieved, Source};
use crate::llm::{ChatRequest, LlmProvider, estimate_tokens};
use crate::mask::TokenMap;
use crate::model::{AUDIT, AuditRecord};
use crate::policy::{self, Check};
use crate::prompt::{SYSTEM_PROMPT, Task, user_message};
use crate::quota::{Charge, QuotaSettings, Quotas, windows};

pub const SERVICE: &str = "genai-gateway";

/// What the user sees when an answer is blocked or poorly grounded.
pub const ESCALATION_TEMPLATE: &str =
    "This query needs a human advisor. We've created a support ticket.";
/// What the user sees when the LLM is down, hanging or its circuit is open.
pub const UNAVAILABLE_TEMPLATE: &str = "Our assistant cannot answer right now. Please try again in a few minutes; your portfolio and fund pages are available as usual.";
/// What the user sees when the tenant's or role's GenAI budget is used up (and no cached answer).
pub const QUOTA_TEMPLATE: &str = "Our assistant has reached its usage limit for now. Please try again later; your portfolio and fund pages are available as usual.";
/// Shown with every answer.
pub const DISCLAIMER: &str = "Mutual fund investments are subject to market risks, read all scheme related documents carefully. This answer is generated from your account data and fund facts and is not investment advice.";

/// Use cases and their cost tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseCase {
    Ask,
    Anomaly,
    Document,
    SupportDraft,
}

impl UseCase {
    pub fn as_str(self) -> &'static str {
        match self {
            UseCase::Ask => "ask",
            UseCase::Anomaly => "anomaly",
            UseCase::Document => "document",
            UseCase::SupportDraft => "support-draft",
        }
    }

    /// Budget multiplier: Q&A 1x, documents 3x.
    pub fn tier(self) -> u64 {
        match self {
            UseCase::Document => 3,
            _ => 1,
        }
    }

    fn channel(self) -> &'static str {
        match self {
            UseCase::Ask => "GENAI_ASK",
            UseCase::Anomaly => "GENAI_ANOMALY",
            UseCase::Document => "GENAI_DOCUMENT",
            UseCase::SupportDraft => "GENAI_SUPPORT_DRAFT",
        }
    }

    fn task(self) -> Task {
        match self {
            UseCase::Ask => Task::Answer,
            UseCase::Anomaly => Task::Explain,
            UseCase::Document => Task::Summarise,
            UseCase::SupportDraft => Task::Draft,
        }
    }
}

/// `[service]` settings the pipeline uses.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub min_grounding: Decimal,
    pub cache_ttl: Duration,
    pub quotas: QuotaSettings,
    pub max_tokens: u32,
    /// Price per 1000 tokens, for the cost estimate.
    pub price_per_1k_input: Decimal,
    pub price_per_1k_output: Decimal,
    pub user_hash_salt: String,
    pub alert_ttl: Duration,
}

/// One request as the pipeline sees it (already authorised and retrieved).
#[derive(Debug, Clone)]
pub struct Job {
    pub use_case: UseCase,
    pub tenant: String,
    pub role: String,
    pub subject: String,
    /// The investor the context is about, if any (ticket key, cache scope).
    pub investor: Option<String>,
    pub question: String,
    pub retrieved: Retrieved,
    pub advice_allowed: bool,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Answered,
    Escalated,
    QuotaExhausted,
    LlmUnavailable,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "ANSWERED",
            Outcome::Escalated => "ESCALATED",
            Outcome::QuotaExhausted => "QUOTA_EXHAUSTED",
            Outcome::LlmUnavailable => "LLM_UNAVAILABLE",
        }
    }
}

/// A source as returned to the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceView {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub excerpt: String,
}

/// The grounding of an answer (see the policy module for the formula).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroundingView {
    /// Supported sentences / counted sentences, 0 to 1.
    #[schema(value_type = String, example = "1.00")]
    pub score: Decimal,
    pub supported_sentences: usize,
    pub counted_sentences: usize,
}

/// What every GenAI endpoint answers (HTTP 200 in every case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnswerView {
    pub answer: String,
    pub outcome: Outcome,
    pub sources: Vec<SourceView>,
    pub grounding: Option<GroundingView>,
    /// True when the answer came from the response cache.
    pub cache_hit: bool,
    /// Set when a support ticket was opened.
    pub ticket_id: Option<String>,
    /// The rules that blocked the model's answer, if any.
    pub policy_violations: Vec<String>,
    pub disclaimer: String,
    pub request_id: String,
}

/// The shared result of one flight (masked; restored per caller).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Computed {
    outcome: Outcome,
    /// Masked answer (tokens not restored).
    answer: String,
    grounding: Option<(Decimal, usize, usize)>,
    violations: Vec<String>,
    tokens_in: u64,
    tokens_out: u64,
    provider: String,
    ticket_id: Option<String>,
    /// Events the leader must emit with its audit record.
    #[serde(skip)]
    events: Vec<PendingEvent>,
}

#[derive(Debug, Clone)]
enum PendingEvent {
    Ticket(TicketCreated),
    Alert(AlertRaised),
}

/// Identical concurrent requests share one computation.
#[derive(Default)]
pub struct SingleFlight {
    flights: Mutex<HashMap<String, Arc<OnceCell<Computed>>>>,
}

impl std::fmt::Debug for SingleFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight").finish_non_exhaustive()
    }
}

impl SingleFlight {
    /// Run `work` unless an identical flight is in progress, in which case wait for its result.
    /// Returns the result and whether this call did the work.
    async fn run<F, Fut>(&self, key: &str, work: F) -> (Computed, bool)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Computed>,
    {
        let cell = {
            let mut map = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            map.entry(key.to_string()).or_default().clone()
        };
        let led = AtomicBool::new(false);
        let value = cell
            .get_or_init(|| async {
                led.store(true, Ordering::SeqCst);
                work().await
            })
            .await
            .clone();
        let leader = led.load(Ordering::SeqCst);
        if leader {
            let mut map = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            if map.get(key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                map.remove(key);
            }
        }
        (value, leader)
    }
}

/// The pipeline and its dependencies.
pub struct Gateway {
    pub store: Arc<dyn DocumentStore>,
    pub cache: Arc<dyn Cache>,
    pub quotas: Quotas,
    pub llm: Arc<dyn LlmProvider>,
    pub codec: AvroCodec,
    pub outbox_notify: Arc<Notify>,
    pub settings: PipelineSettings,
    pub flights: SingleFlight,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("llm", &self.llm.name())
            .finish_non_exhaustive()
    }
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// Lower-case, punctuation dropped, whitespace collapsed.
pub fn normalise_question(q: &str) -> String {
    q.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '[' || c == ']' || c == '_' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl Gateway {
    pub fn user_hash(&self, tenant: &str, subject: &str) -> String {
        sha256_hex(&[&self.settings.user_hash_salt, tenant, subject])
    }

    /// Run one request through the pipeline. Never fails: every outcome is an answer.
    pub async fn run(&self, job: Job, request_id: String) -> AnswerView {
        let started = Instant::now();
        let mut tokens = TokenMap::new();
        for (kind, value) in &job.retrieved.known_pii {
            tokens.know(*kind, value);
        }
        let masked_sources: Vec<Source> = job
            .retrieved
            .sources
            .iter()
            .map(|s| Source {
                text: tokens.mask(&s.text),
                title: tokens.mask(&s.title),
                ..s.clone()
            })
            .collect();
        let masked_question = tokens.mask(&job.question);
        let user = user_message(job.use_case.task(), &masked_sources, &masked_question);
        let context_text: String = masked_sources
            .iter()
            .map(|s| format!("{} {}", s.title, s.text))
            .collect::<Vec<_>>()
            .join("\n");
        let user_hash = self.user_hash(&job.tenant, &job.subject);
        let scope = job.investor.clone().unwrap_or_else(|| user_hash.clone());
        let cache_key = format!(
            "genai:answer:{}:{}",
            job.tenant,
            sha256_hex(&[
                job.use_case.as_str(),
                &scope,
                &normalise_question(&masked_question),
                &sha256_hex(&[SYSTEM_PROMPT, &context_text]),
            ])
        );

        let (computed, cache_hit, leader) = match self.cached(&cache_key).await {
            Some(c) => (c, true, false),
            None => {
                let (c, leader) = self
                    .flights
                    .run(&cache_key, || {
                        self.compute(
                            &job,
                            &user,
                            &context_text,
                            &masked_question,
                            &cache_key,
                            &user_hash,
                        )
                    })
                    .await;
                (c, false, leader)
            }
        };

        let latency = started.elapsed();
        let (tokens_in, tokens_out) = if leader {
            (computed.tokens_in, computed.tokens_out)
        } else {
            (0, 0)
        };
        let cost = self.cost(tokens_in, tokens_out);
        let kind = job.use_case.as_str();
        metrics::counter!("nivesh_genai_requests_total", "kind" => kind, "outcome" => computed.outcome.as_str(), "cache_hit" => if cache_hit { "true" } else { "false" }).increment(1);
        metrics::counter!("nivesh_genai_tokens_total", "kind" => kind, "direction" => "in")
            .increment(tokens_in);
        metrics::counter!("nivesh_genai_tokens_total", "kind" => kind, "direction" => "out")
            .increment(tokens_out);
        metrics::histogram!("nivesh_genai_request_seconds", "kind" => kind)
            .record(latency.as_secs_f64());
        metrics::histogram!("nivesh_genai_cost_estimate", "kind" => kind)
            .record(cost.to_string().parse::<f64>().unwrap_or(0.0));
        if cache_hit {
            metrics::counter!("nivesh_genai_cache_hits_total", "kind" => kind).increment(1);
        }
        if !leader && !cache_hit {
            metrics::counter!("nivesh_genai_deduplicated_total", "kind" => kind).increment(1);
        }

        let record = AuditRecord {
            request_id: request_id.clone(),
            tenant: job.tenant.clone(),
            user_hash,
            role: job.role.clone(),
            kind: kind.to_string(),
            outcome: computed.outcome.as_str().to_string(),
            prompt: if computed.outcome == Outcome::QuotaExhausted {
                // Never sent; kept so the audit shows what was asked.
                masked_question.clone()
            } else {
                format!("{SYSTEM_PROMPT}\n\n{user}")
            },
            response: computed.answer.clone(),
            sources: masked_sources.iter().map(|s| s.id.clone()).collect(),
            grounding: computed.grounding.map(|g| g.0),
            violations: computed.violations.clone(),
            provider: computed.provider.clone(),
            tokens_in,
            tokens_out,
            cost_estimate: cost,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            cache_hit,
            ticket_id: computed.ticket_id.clone(),
            at: Utc::now(),
        };
        let events = if leader {
            computed.events.clone()
        } else {
            Vec::new()
        };
        self.audit(&record, &events, job.investor.as_deref()).await;

        let restore = |s: &str| tokens.restore(s);
        let show_sources = matches!(computed.outcome, Outcome::Answered);
        AnswerView {
            answer: restore(&computed.answer),
            outcome: computed.outcome,
            sources: if show_sources {
                job.retrieved
                    .sources
                    .iter()
                    .map(|s| SourceView {
                        id: s.id.clone(),
                        kind: s.kind.clone(),
                        title: s.title.clone(),
                        excerpt: excerpt(&s.text),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            grounding: computed.grounding.map(|(score, s, c)| GroundingView {
                score,
                supported_sentences: s,
                counted_sentences: c,
            }),
            cache_hit,
            ticket_id: computed.ticket_id.clone(),
            policy_violations: computed.violations.clone(),
            disclaimer: DISCLAIMER.to_string(),
            request_id,
        }
    }

    async fn cached(&self, key: &str) -> Option<Computed> {
        match self.cache.get(key).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
            Ok(None) => None,
            Err(e) => {
                metrics::counter!("nivesh_genai_degraded_total", "what" => "cache").increment(1);
                tracing::warn!(error = %e, "response cache unavailable; answering without it");
                None
            }
        }
    }

    fn cost(&self, tokens_in: u64, tokens_out: u64) -> Decimal {
        let k = Decimal::from(1000);
        (Decimal::from(tokens_in) * self.settings.price_per_1k_input / k
            + Decimal::from(tokens_out) * self.settings.price_per_1k_output / k)
            .round_dp(6)
    }

    /// The leader's work: quota, LLM, policy, cache.
    async fn compute(
        &self,
        job: &Job,
        user: &str,
        context_text: &str,
        masked_question: &str,
        cache_key: &str,
        user_hash: &str,
    ) -> Computed {
        // A flight that finished just before this one started has filled the cache: nothing is
        // spent on this request.
        if let Some(c) = self.cached(cache_key).await {
            return Computed {
                tokens_in: 0,
                tokens_out: 0,
                ..c
            };
        }
        let estimate = estimate_tokens(SYSTEM_PROMPT)
            + estimate_tokens(user)
            + u64::from(self.settings.max_tokens);
        let charge = estimate * job.use_case.tier();
        let ws = windows(&self.settings.quotas, &job.tenant, &job.role, Utc::now());
        let backend = match self.quotas.charge(&ws, charge).await {
            Charge::Granted { backend } => backend,
            Charge::Exhausted { window, backend } => {
                tracing::warn!(tenant = %job.tenant, role = %job.role, window = %window.name, backend, "GenAI quota exhausted");
                metrics::counter!("nivesh_genai_quota_exhausted_total", "window" => window.name.clone())
                    .increment(1);
                let mut events = Vec::new();
                if self
                    .quotas
                    .first_time(
                        &format!("genai:alerted:{}", window.key),
                        self.settings.alert_ttl,
                    )
                    .await
                {
                    events.push(PendingEvent::Alert(AlertRaised {
                        meta: EventMeta::new::<AlertRaised>(SERVICE, Some(window.key.clone())),
                        source_service: SERVICE.into(),
                        alert_code: "LLM_QUOTA_EXHAUSTED".into(),
                        severity: alert_severity::WARNING.into(),
                        message: format!(
                            "GenAI quota {} of tenant {} is used up ({} tokens, {} requests); requests get a templated answer until the window resets.",
                            window.name, job.tenant, window.token_limit, window.request_limit
                        ),
                        subject_id: Some(job.tenant.clone()),
                        raised_at: Utc::now(),
                    }));
                }
                return Computed {
                    outcome: Outcome::QuotaExhausted,
                    answer: QUOTA_TEMPLATE.into(),
                    grounding: None,
                    violations: Vec::new(),
                    tokens_in: 0,
                    tokens_out: 0,
                    provider: "none".into(),
                    ticket_id: None,
                    events,
                };
            }
        };
        let request = ChatRequest {
            system: SYSTEM_PROMPT.into(),
            user: user.to_string(),
            max_tokens: self.settings.max_tokens,
        };
        let response = match self.llm.complete(&request).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "LLM call failed; answering with the fallback template");
                // Nothing was consumed: give the estimate back.
                self.quotas
                    .adjust(&ws, -i64::try_from(charge).unwrap_or(i64::MAX), backend)
                    .await;
                return Computed {
                    outcome: Outcome::LlmUnavailable,
                    answer: UNAVAILABLE_TEMPLATE.into(),
                    grounding: None,
                    violations: Vec::new(),
                    tokens_in: 0,
                    tokens_out: 0,
                    provider: self.llm.name().into(),
                    ticket_id: None,
                    events: Vec::new(),
                };
            }
        };
        let actual = (response.prompt_tokens + response.completion_tokens) * job.use_case.tier();
        self.quotas
            .adjust(
                &ws,
                i64::try_from(actual).unwrap_or(i64::MAX) - i64::try_from(charge).unwrap_or(0),
                backend,
            )
            .await;
        let verdict = policy::check(Check {
            answer: &response.content,
            context: context_text,
            question: masked_question,
            system_prompt: SYSTEM_PROMPT,
            advice_allowed: job.advice_allowed,
        });
        let grounding = Some((
            verdict.grounding,
            verdict.supported_sentences,
            verdict.counted_sentences,
        ));
        let mut violations: Vec<String> = verdict
            .violations
            .iter()
            .map(|v| v.code().to_string())
            .collect();
        let poorly_grounded = verdict.grounding < self.settings.min_grounding;
        if verdict.blocked() || poorly_grounded {
            if poorly_grounded && !verdict.blocked() {
                violations.push("LOW_GROUNDING".into());
            }
            for v in &verdict.violations {
                tracing::warn!(
                    rule = v.code(),
                    detail = v.detail(),
                    "answer blocked by policy"
                );
            }
            let ticket_id = uuid::Uuid::now_v7().to_string();
            let ticket = TicketCreated {
                meta: EventMeta::new::<TicketCreated>(SERVICE, Some(ticket_id.clone())),
                ticket_id: ticket_id.clone(),
                tenant: job.tenant.clone(),
                investor_id: job.investor.clone(),
                source_service: SERVICE.into(),
                channel: job.use_case.channel().into(),
                reason_code: if verdict.blocked() {
                    "POLICY_BLOCKED".into()
                } else {
                    "LOW_GROUNDING".into()
                },
                reasons: violations.clone(),
                summary: masked_question.chars().take(1000).collect(),
                requester_hash: user_hash.to_string(),
                created_at: Utc::now(),
            };
            metrics::counter!("nivesh_genai_escalations_total", "kind" => job.use_case.as_str())
                .increment(1);
            return Computed {
                outcome: Outcome::Escalated,
                answer: ESCALATION_TEMPLATE.into(),
                grounding,
                violations,
                tokens_in: response.prompt_tokens,
                tokens_out: response.completion_tokens,
                provider: self.llm.name().into(),
                ticket_id: Some(ticket_id),
                events: vec![PendingEvent::Ticket(ticket)],
            };
        }
        let computed = Computed {
            outcome: Outcome::Answered,
            answer: response.content,
            grounding,
            violations,
            tokens_in: response.prompt_tokens,
            tokens_out: response.completion_tokens,
            provider: self.llm.name().into(),
            ticket_id: None,
            events: Vec::new(),
        };
        if let Ok(bytes) = serde_json::to_vec(&computed)
            && let Err(e) = self
                .cache
                .set(cache_key, &bytes, Some(self.settings.cache_ttl))
                .await
        {
            metrics::counter!("nivesh_genai_degraded_total", "what" => "cache").increment(1);
            tracing::warn!(error = %e, "response cache unavailable; answer not cached");
        }
        computed
    }

    /// The audit record with its events, in one batch (transactional outbox).
    async fn audit(&self, record: &AuditRecord, events: &[PendingEvent], investor: Option<&str>) {
        let day = record.at.with_timezone(&nivesh_events::IST).date_naive();
        let partition = format!("{}:{day}", record.tenant);
        let id = format!("{}:{}", record.at.to_rfc3339(), record.request_id);
        let Ok(body) = serde_json::to_value(record) else {
            return;
        };
        let mut batch = Batch::new(AUDIT, &partition).op(WriteOp::Create {
            id,
            body,
            ttl: None,
        });
        for e in events {
            let message = match e {
                PendingEvent::Ticket(t) => {
                    let key = investor.unwrap_or(&record.tenant);
                    outbox_message(&self.codec, "support.tickets", key, t).await
                }
                PendingEvent::Alert(a) => {
                    outbox_message(&self.codec, "ops.alerts", SERVICE, a).await
                }
            };
            match message {
                Ok(m) => batch = batch.emit(m),
                Err(e) => tracing::error!(error = %e, "could not encode a GenAI event"),
            }
        }
        match self.store.commit(batch).await {
            Ok(_) => {
                if !events.is_empty() {
                    self.outbox_notify.notify_one();
                }
            }
            Err(e) => {
                metrics::counter!("nivesh_genai_audit_failures_total").increment(1);
                tracing::error!(error = %e, request_id = %record.request_id, "GenAI audit record not stored");
            }
        }
    }
}

fn excerpt(text: &str) -> String {
    let max = 280;
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}
