//! The LLM provider port and its two adapters.
//!
//! - [`OpenAiProvider`]: OpenAI-compatible chat completions, `POST {base_url}/chat/completions`.
//!   For Azure OpenAI set `base_url` to the deployment
//!   (`https://<resource>.openai.azure.com/openai/deployments/<deployment>`) and `api_version`:
//!   the key then goes in an `api-key` header and `?api-version=` is appended; otherwise the key
//!   is a `Bearer` token. Each attempt is bounded by `attempt_timeout_ms`, the whole call by
//!   `timeout_ms`; transient failures (connect errors, timeouts, 429, 5xx) are retried up to
//!   `max_attempts` with exponential backoff and full jitter; the fleet's shared
//!   [`CircuitBreaker`] (nivesh-resilience, `dependency="llm"`) opens when at least
//!   `breaker_failure_rate` of the last `breaker_window` attempts (after `breaker_minimum_calls`)
//!   failed transiently, fails calls at once for `breaker_open_secs`, then admits trials.
//! - [`LocalProvider`] (`provider = "local"`): answers extractively from the context passages in
//!   the prompt (the sentences that best match the question, each cited), so the feature works
//!   offline and on the local fleet. It reads the same messages a remote model would.
//!
//! The prompt layout both understand is built by [`crate::prompt`].

use std::time::Duration;

use async_trait::async_trait;
use nivesh_resilience::{BreakerConfig, CircuitBreaker};
use rand::Rng as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::policy::{content_words, sentences};

/// The breaker's `dependency` label (gauge `nivesh_circuit_breaker_state`).
pub const DEPENDENCY: &str = "llm";

/// `[service.llm]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LlmSettings {
    /// `local` (extractive, offline) or `openai` (OpenAI-compatible, incl. Azure OpenAI).
    pub provider: String,
    /// e.g. `https://api.openai.com/v1` or an Azure deployment URL.
    pub base_url: String,
    pub model: String,
    /// `NIVESH__SERVICE__LLM__API_KEY`; never in a file.
    pub api_key: Option<SecretString>,
    /// Set (e.g. `2024-06-01`): Azure OpenAI mode (`api-key` header, `api-version` query).
    pub api_version: Option<String>,
    /// Bound on the whole call including retries (milliseconds).
    pub timeout_ms: u64,
    /// Bound on one attempt (milliseconds).
    pub attempt_timeout_ms: u64,
    pub max_attempts: u32,
    /// First retry waits up to this long; doubles per attempt (full jitter).
    pub backoff_ms: u64,
    /// Open when at least this share of the window failed transiently (0 to 1).
    pub breaker_failure_rate: f64,
    /// The breaker's sliding window (attempts) and the attempts needed before a verdict.
    pub breaker_window: usize,
    pub breaker_minimum_calls: usize,
    pub breaker_open_secs: u64,
    pub max_tokens: u32,
}

impl Default for LlmSettings {
    fn default() -> Self {
        LlmSettings {
            provider: "local".into(),
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
            api_key: None,
            api_version: None,
            timeout_ms: 15_000,
            attempt_timeout_ms: 8_000,
            max_attempts: 3,
            backoff_ms: 200,
            breaker_failure_rate: 0.5,
            breaker_window: 20,
            breaker_minimum_calls: 5,
            breaker_open_secs: 30,
            max_tokens: 400,
        }
    }
}

/// One chat-completion request: the system prompt and the user message.
#[derive(Debug, Clone, Serialize)]
pub struct ChatRequest {
    pub system: String,
    pub user: String,
    pub max_tokens: u32,
}

/// The model's answer and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    pub content: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub model: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Down, hanging, circuit open or retries exhausted: answer with the fallback template.
    #[error("LLM unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (4xx other than 429) or answered nonsense.
    #[error("LLM rejected the request: {0}")]
    Rejected(String),
}

/// The port.
#[async_trait]
pub trait LlmProvider: Send + Sync + 'static {
    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError>;
    fn name(&self) -> &'static str;
}

/// Rough token count used for budgets before the call (4 characters per token).
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// The provider the settings ask for.
pub fn provider(settings: &LlmSettings) -> Result<std::sync::Arc<dyn LlmProvider>, String> {
    match settings.provider.as_str() {
        "local" => Ok(std::sync::Arc::new(LocalProvider)),
        "openai" | "azure" | "azure-openai" => {
            Ok(std::sync::Arc::new(OpenAiProvider::new(settings)?))
        }
        other => Err(format!(
            "service.llm.provider must be \"local\" or \"openai\", not \"{other}\""
        )),
    }
}

/// OpenAI-compatible chat completions with timeout, retry and circuit breaker.
pub struct OpenAiProvider {
    http: reqwest::Client,
    url: String,
    settings: LlmSettings,
    breaker: CircuitBreaker,
}

impl std::fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

enum Attempt {
    Done(ChatResponse),
    Transient(String),
    Fatal(String),
}

impl OpenAiProvider {
    pub fn new(settings: &LlmSettings) -> Result<Self, String> {
        let base = settings.base_url.trim_end_matches('/');
        if base.is_empty() {
            return Err("service.llm.base_url is empty".into());
        }
        let mut url = format!("{base}/chat/completions");
        if let Some(v) = settings.api_version.as_deref().filter(|v| !v.is_empty()) {
            url = format!("{url}?api-version={v}");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.attempt_timeout_ms.max(1)))
            .connect_timeout(Duration::from_millis(
                settings.attempt_timeout_ms.clamp(1, 2_000),
            ))
            .build()
            .map_err(|e| format!("LLM HTTP client: {e}"))?;
        Ok(OpenAiProvider {
            http,
            url,
            breaker: CircuitBreaker::new(
                DEPENDENCY,
                BreakerConfig {
                    failure_rate_threshold: settings.breaker_failure_rate.clamp(0.01, 1.0),
                    window: settings.breaker_window.max(1),
                    minimum_calls: settings.breaker_minimum_calls.max(1),
                    open_for: Duration::from_secs(settings.breaker_open_secs),
                    // A hanging provider is caught by the attempt timeout and counted as failed.
                    slow_call_duration: Duration::from_millis(settings.attempt_timeout_ms.max(1)),
                    ..BreakerConfig::default()
                },
            ),
            settings: settings.clone(),
        })
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    fn azure(&self) -> bool {
        self.settings
            .api_version
            .as_deref()
            .is_some_and(|v| !v.is_empty())
    }

    async fn attempt(&self, req: &ChatRequest) -> Attempt {
        let body = json!({
            "model": self.settings.model,
            "temperature": 0,
            "max_tokens": req.max_tokens,
            "messages": [
                {"role": "system", "content": req.system},
                {"role": "user", "content": req.user},
            ],
        });
        let mut call = self.http.post(&self.url).json(&body);
        if let Some(key) = &self.settings.api_key {
            call = if self.azure() {
                call.header("api-key", key.expose_secret())
            } else {
                call.bearer_auth(key.expose_secret())
            };
        }
        let resp = match call.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Transient(format!("request failed: {e}")),
        };
        let status = resp.status();
        if status.as_u16() == 429 || status.is_server_error() {
            return Attempt::Transient(format!("provider answered {status}"));
        }
        if !status.is_success() {
            return Attempt::Fatal(format!("provider answered {status}"));
        }
        let value: serde_json::Value = match resp.json().await {
            Ok(v) => v,
            Err(e) => return Attempt::Transient(format!("unreadable answer: {e}")),
        };
        let Some(content) = value
            .pointer("/choices/0/message/content")
            .and_then(|c| c.as_str())
        else {
            return Attempt::Fatal("answer has no choices[0].message.content".into());
        };
        let usage = |k: &str| {
            value
                .pointer(&format!("/usage/{k}"))
                .and_then(|v| v.as_u64())
        };
        Attempt::Done(ChatResponse {
            content: content.to_string(),
            prompt_tokens: usage("prompt_tokens")
                .unwrap_or_else(|| estimate_tokens(&req.system) + estimate_tokens(&req.user)),
            completion_tokens: usage("completion_tokens")
                .unwrap_or_else(|| estimate_tokens(content)),
            model: value
                .get("model")
                .and_then(|m| m.as_str())
                .unwrap_or(&self.settings.model)
                .to_string(),
        })
    }

    async fn with_retries(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let attempts = self.settings.max_attempts.max(1);
        let mut last = String::from("no attempt made");
        for n in 1..=attempts {
            let Ok(permit) = self.breaker.try_acquire() else {
                return Err(LlmError::Unavailable(format!(
                    "circuit open after repeated failures ({last})"
                )));
            };
            match self.attempt(req).await {
                Attempt::Done(r) => {
                    permit.record(false);
                    return Ok(r);
                }
                Attempt::Fatal(reason) => {
                    // The provider is healthy; our request is not.
                    permit.record(false);
                    return Err(LlmError::Rejected(reason));
                }
                Attempt::Transient(reason) => {
                    permit.record(true);
                    metrics::counter!("nivesh_genai_llm_transient_failures_total").increment(1);
                    tracing::warn!(attempt = n, reason = %reason, "LLM call failed");
                    last = reason;
                }
            }
            if n < attempts {
                let ceiling = self
                    .settings
                    .backoff_ms
                    .saturating_mul(1 << (n - 1).min(10));
                let wait = rand::rng().random_range(0..=ceiling.max(1));
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        }
        Err(LlmError::Unavailable(last))
    }
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let overall = Duration::from_millis(self.settings.timeout_ms.max(1));
        match tokio::time::timeout(overall, self.with_retries(req)).await {
            Ok(r) => r,
            Err(_) => {
                // The attempt in flight was abandoned with its permit; earlier ones were recorded.
                Err(LlmError::Unavailable(format!(
                    "no answer within {} ms",
                    overall.as_millis()
                )))
            }
        }
    }

    fn name(&self) -> &'static str {
        "openai"
    }
}

/// Extractive answers from the prompt's own context passages (offline).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalProvider;

/// The parts of a prompt built by [`crate::prompt`].
#[derive(Debug, Default)]
pub struct ParsedPrompt {
    pub task: String,
    /// (label like `S1`, passage text)
    pub passages: Vec<(String, String)>,
    pub question: String,
}

pub fn parse_prompt(user: &str) -> ParsedPrompt {
    let mut p = ParsedPrompt::default();
    let mut in_question = false;
    for line in user.lines() {
        if let Some(task) = line.strip_prefix("TASK:") {
            p.task = task.trim().to_string();
        } else if line.trim() == "<<<" {
            in_question = true;
        } else if line.trim() == ">>>" {
            in_question = false;
        } else if in_question {
            if !p.question.is_empty() {
                p.question.push('\n');
            }
            p.question.push_str(line);
        } else if let Some(rest) = line.strip_prefix("[S")
            && let Some((n, text)) = rest.split_once(']')
            && n.chars().all(|c| c.is_ascii_digit())
        {
            // "[S1] (kind) Title: text" -> the text after the header.
            let text = text.trim();
            let text = text
                .split_once(": ")
                .map_or(text, |(_, body)| body)
                .to_string();
            p.passages.push((format!("S{n}"), text));
        }
    }
    p
}

impl LocalProvider {
    fn answer(prompt: &ParsedPrompt) -> String {
        let mut candidates: Vec<(usize, String, String)> = Vec::new();
        for (label, text) in &prompt.passages {
            for s in sentences(text) {
                candidates.push((candidates.len(), label.clone(), s));
            }
        }
        if candidates.is_empty() {
            return "The information available to me does not answer this question.".into();
        }
        let n = candidates.len() as f64;
        let words: Vec<Vec<String>> = candidates
            .iter()
            .map(|(_, _, s)| {
                let mut w = content_words(s);
                w.sort();
                w.dedup();
                w
            })
            .collect();
        let df = |term: &str| words.iter().filter(|w| w.iter().any(|x| x == term)).count() as f64;
        let summarise = prompt.task.starts_with("summar");
        let scores: Vec<f64> = if summarise {
            // Centrality: how much of the document's vocabulary a sentence carries.
            words
                .iter()
                .map(|w| {
                    let total: f64 = w.iter().map(|t| df(t)).sum();
                    total / (w.len().max(1) as f64).sqrt()
                })
                .collect()
        } else {
            let mut q = content_words(&prompt.question);
            q.sort();
            q.dedup();
            words
                .iter()
                .map(|w| {
                    q.iter()
                        .filter(|t| w.contains(t))
                        .map(|t| (1.0 + n / df(t)).ln())
                        .sum()
                })
                .collect()
        };
        let mut ranked: Vec<usize> = (0..candidates.len()).filter(|i| scores[*i] > 0.0).collect();
        ranked.sort_by(|a, b| {
            scores[*b]
                .partial_cmp(&scores[*a])
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.cmp(b))
        });
        ranked.truncate(3);
        if ranked.is_empty() {
            return "The information available to me does not answer this question.".into();
        }
        ranked.sort();
        ranked
            .iter()
            .map(|i| {
                let (_, label, s) = &candidates[*i];
                format!("{s} [{label}]")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[async_trait]
impl LlmProvider for LocalProvider {
    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let parsed = parse_prompt(&req.user);
        let content = LocalProvider::answer(&parsed);
        Ok(ChatResponse {
            prompt_tokens: estimate_tokens(&req.system) + estimate_tokens(&req.user),
            completion_tokens: estimate_tokens(&content),
            content,
            model: "local-extractive".into(),
        })
    }

    fn name(&self) -> &'static str {
        "local"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_provider_answers_from_the_best_sentences_with_citations() {
        let user = "TASK: answer\nCONTEXT:\n\
            [S1] (portfolio) Your portfolio: Your portfolio is worth INR 10,000.00 at the latest NAVs. You hold 2 funds.\n\
            [S2] (fund) Axis Bluechip Fund: Axis Bluechip Fund is a large cap scheme. It gained most this month, up 2.5%.\n\
            [S3] (fund) SBI Liquid Fund: SBI Liquid Fund is a debt scheme.\n\
            QUESTION:\n<<<\nWhat is my portfolio worth and which fund gained most this month?\n>>>\n";
        let r = LocalProvider
            .complete(&ChatRequest {
                system: "sys".into(),
                user: user.into(),
                max_tokens: 100,
            })
            .await
            .unwrap();
        assert!(
            r.content
                .contains("Your portfolio is worth INR 10,000.00 at the latest NAVs. [S1]"),
            "{}",
            r.content
        );
        assert!(
            r.content.contains("gained most this month, up 2.5%. [S2]"),
            "{}",
            r.content
        );
        assert!(!r.content.contains("debt scheme"), "{}", r.content);
    }

    #[test]
    fn parses_its_own_layout() {
        let p = parse_prompt(
            "TASK: summarise\nCONTEXT:\n[S1] (document) T: a b c.\nQUESTION:\n<<<\nq1\nq2\n>>>\n",
        );
        assert_eq!(p.task, "summarise");
        assert_eq!(p.passages, vec![("S1".to_string(), "a b c.".to_string())]);
        assert_eq!(p.question, "q1\nq2");
    }
}
