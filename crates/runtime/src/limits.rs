//! Load shedding, rate limiting and deadlines for every service's HTTP server (the layer
//! [`crate::http::app_router`] adds when [`crate::http::RuntimeState::with_limits`] was called;
//! [`crate::service::run_on`] does that from `[http.limits]`).
//!
//! Per request, except the runtime's probes (`/healthz`, `/readyz`, `/metrics`,
//! `/openapi.json`, which must answer exactly when the service is overloaded):
//! 1. load shedding: more than `max_in_flight` requests in the service → 503 problem with
//!    `Retry-After` at once (queueing would only add latency to a request that then times out);
//! 2. deadline: the request runs under the budget in `x-nivesh-deadline-ms`, or
//!    `default_deadline_ms` (see [`nivesh_resilience::deadline`]);
//! 3. rate limiting (token buckets in Redis, [`nivesh_resilience::ratelimit`]):
//!    - a request with a bearer token is limited per TENANT and per INVESTOR (the token's
//!      investor id, else its subject) once the authentication guard knows the caller: the stack
//!      puts a [`CallerGate`] into the request's extensions and `nivesh_auth::require_auth`
//!      calls [`CallerGate::admit`] after verifying the token (a forged token never reaches the
//!      buckets, so nobody can drain somebody else's);
//!    - a request without one is limited per client address (the TCP peer);
//!    - a request with a bearer token on a route without the guard (the token is never
//!      verified) is charged to its client address after the fact, and refused up front when
//!      that bucket is empty, so an `Authorization` header cannot be used to dodge the limit;
//!    - refused: 429 problem with `Retry-After`; every limited answer carries
//!      `X-RateLimit-Limit`, `-Remaining` and `-Reset`;
//!    - Redis away: allowed (fail open) and `nivesh_ratelimit_fail_open_total` counts it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header;
use nivesh_resilience::ratelimit::{Bucket, Decision, LimiterConfig, Quota, RateLimiter};
use nivesh_resilience::{LoadShedder, bulkhead::LOAD_SHED_TOTAL, deadline};
use serde::Deserialize;

use crate::problem::Problem;

/// `[http.limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Requests in progress at once before new ones are shed with 503 (0: no limit).
    pub max_in_flight: usize,
    /// `Retry-After` of a shed request (seconds).
    pub shed_retry_after_secs: u64,
    /// Budget of a request that carries no `x-nivesh-deadline-ms` (milliseconds; 0: none).
    pub default_deadline_ms: u64,
    pub rate_limit: RateLimitSettings,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_in_flight: 512,
            shed_retry_after_secs: 1,
            default_deadline_ms: 0,
            rate_limit: RateLimitSettings::default(),
        }
    }
}

/// `[http.limits.rate_limit]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Off: no buckets, no Redis calls.
    pub enabled: bool,
    /// Per tenant (every authenticated request of the tenant).
    pub tenant: Quota,
    /// Per investor (a token with an investor id).
    pub investor: Quota,
    /// Per subject, for tokens without an investor id (distributors, ops, compliance, admin and
    /// their tools: reconciliation reads every order, so an investor's quota would throttle it).
    pub staff: Quota,
    /// Per client address, for requests without a verified caller.
    pub client: Quota,
    /// Bound on one limiter call to Redis (milliseconds); past it the request is allowed.
    pub redis_timeout_ms: u64,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            enabled: true,
            tenant: Quota {
                burst: 20_000,
                per_second: 10_000.0,
            },
            investor: Quota {
                burst: 100,
                per_second: 50.0,
            },
            staff: Quota {
                burst: 2000,
                per_second: 1000.0,
            },
            // Off (see config/default.toml): behind the ingress every peer is the sidecar.
            client: Quota {
                burst: 0,
                per_second: 0.0,
            },
            redis_timeout_ms: 100,
        }
    }
}

/// What the limits layer needs. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    service: Arc<str>,
    shedder: Option<LoadShedder>,
    shed_retry_after: Duration,
    default_deadline: Option<Duration>,
    limiter: Option<(RateLimiter, RateLimitSettings)>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("service", &self.service)
            .field(
                "max_in_flight",
                &self.shedder.as_ref().map(LoadShedder::limit),
            )
            .field("rate_limited", &self.limiter.is_some())
            .finish()
    }
}

impl Limits {
    /// From `[http.limits]`; the limiter talks to the Redis at `redis_url` (None: rate limits
    /// always fail open, with the alarm metric) under `key_prefix`.
    pub fn new(
        service: &str,
        settings: &HttpLimits,
        redis_url: Option<&str>,
        key_prefix: &str,
    ) -> Self {
        let limiter = settings.rate_limit.enabled.then(|| {
            let config = LimiterConfig {
                timeout: Duration::from_millis(settings.rate_limit.redis_timeout_ms.max(1)),
                ..LimiterConfig::default()
            };
            (
                RateLimiter::new(redis_url, key_prefix, config),
                settings.rate_limit.clone(),
            )
        });
        Limits {
            service: service.into(),
            shedder: (settings.max_in_flight > 0).then(|| LoadShedder::new(settings.max_in_flight)),
            shed_retry_after: Duration::from_secs(settings.shed_retry_after_secs.max(1)),
            default_deadline: (settings.default_deadline_ms > 0)
                .then(|| Duration::from_millis(settings.default_deadline_ms)),
            limiter,
        }
    }
}

/// Put into every rate-limited request's extensions; the authentication guard calls
/// [`CallerGate::admit`] once it has verified the caller.
#[derive(Clone)]
pub struct CallerGate {
    inner: Arc<GateInner>,
}

struct GateInner {
    limiter: RateLimiter,
    settings: RateLimitSettings,
    decision: Mutex<Option<Decision>>,
}

impl std::fmt::Debug for CallerGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerGate").finish_non_exhaustive()
    }
}

impl CallerGate {
    /// Charge the request to the caller's tenant and investor (or, without an investor id, its
    /// subject, under the staff quota). `Some(response)`: refused (429 problem with `Retry-After` and the
    /// `X-RateLimit-*` headers); answer with it instead of calling the handler.
    pub async fn admit(
        &self,
        tenant: &str,
        investor_id: Option<&str>,
        subject: &str,
    ) -> Option<Response> {
        let g = &self.inner;
        let who = match investor_id {
            Some(id) => Bucket::new(format!("investor:{tenant}:{id}"), g.settings.investor),
            None => Bucket::new(format!("subject:{tenant}:{subject}"), g.settings.staff),
        };
        let buckets = [
            Bucket::new(format!("tenant:{tenant}"), g.settings.tenant),
            who,
        ];
        let decision = g.limiter.check(&buckets, 1).await;
        *g.decision.lock().unwrap_or_else(PoisonError::into_inner) = Some(decision.clone());
        (!decision.allowed).then(|| refused(&decision))
    }

    fn decision(&self) -> Option<Decision> {
        self.inner
            .decision
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Paths that are never shed or limited.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
}

fn refused(decision: &Decision) -> Response {
    let retry_after = decision.retry_after.unwrap_or(Duration::from_secs(1));
    let mut response = Problem::too_many_requests(retry_after).into_response();
    with_headers(&mut response, decision);
    response
}

fn with_headers(response: &mut Response, decision: &Decision) {
    for (name, value) in decision.headers() {
        // The problem's own Retry-After (whole seconds, at least 1) is kept.
        if name == header::RETRY_AFTER && response.headers().contains_key(&name) {
            continue;
        }
        response.headers_mut().insert(name, value);
    }
}

fn client_bucket(req: &Request, quota: Quota) -> Bucket {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
    Bucket::new(format!("client:{ip}"), quota)
}

/// The middleware (see the module documentation).
pub(crate) async fn limits(State(limits): State<Limits>, mut req: Request, next: Next) -> Response {
    if exempt(req.uri().path()) {
        return next.run(req).await;
    }
    let _slot = match &limits.shedder {
        None => None,
        Some(shedder) => match shedder.try_enter() {
            Some(slot) => Some(slot),
            None => {
                ::metrics::counter!(LOAD_SHED_TOTAL, "service" => limits.service.to_string())
                    .increment(1);
                return Problem::service_unavailable(limits.shed_retry_after)
                    .with_detail(format!(
                        "The service is at its limit of {} requests in progress; retry after {} s.",
                        shedder.limit(),
                        limits.shed_retry_after.as_secs()
                    ))
                    .into_response();
            }
        },
    };
    let budget = deadline::from_headers(req.headers()).or(limits.default_deadline);

    let Some((limiter, settings)) = &limits.limiter else {
        return run(next, req, budget).await;
    };
    let has_bearer = req.headers().contains_key(header::AUTHORIZATION);
    let client = client_bucket(&req, settings.client);
    // Without a token: charge the client address now. With one: only look (the caller's own
    // buckets are charged by the guard), and refuse an address that dodged the limit before.
    let up_front = limiter
        .check(std::slice::from_ref(&client), u32::from(!has_bearer))
        .await;
    if !up_front.allowed {
        return refused(&up_front);
    }
    let gate = CallerGate {
        inner: Arc::new(GateInner {
            limiter: limiter.clone(),
            settings: settings.clone(),
            decision: Mutex::new(None),
        }),
    };
    if has_bearer {
        req.extensions_mut().insert(gate.clone());
    }
    let mut response = run(next, req, budget).await;
    match gate.decision() {
        Some(decision) => with_headers(&mut response, &decision),
        None if has_bearer => {
            // The token was never verified (a route without the guard, or refused by it):
            // the request counts against its address.
            let after = limiter.check(std::slice::from_ref(&client), 1).await;
            with_headers(&mut response, &after);
        }
        None => with_headers(&mut response, &up_front),
    }
    response
}

async fn run(next: Next, req: Request, budget: Option<Duration>) -> Response {
    match budget {
        Some(b) => deadline::within(b, next.run(req)).await,
        None => next.run(req).await,
    }
}
