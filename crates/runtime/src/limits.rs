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
//!    - a request without one is limited per client address: the TCP peer, or, when the peer
//!      is a trusted proxy (`trusted_proxies`, default loopback: the Istio sidecar), the
//!      address found in `X-Forwarded-For` right to left past `trusted_hops` entries and past
//!      entries that are trusted proxies themselves ([`client_ip`]); `X-Forwarded-For` from
//!      any other peer is ignored, so a client cannot pick its own bucket;
//!    - a request with a bearer token on a route without the guard (the token is never
//!      verified) is charged to its client address after the fact, and refused up front when
//!      that bucket is empty, so an `Authorization` header cannot be used to dodge the limit;
//!    - refused: 429 problem with `Retry-After`; every limited answer carries
//!      `X-RateLimit-Limit`, `-Remaining` and `-Reset`;
//!    - Redis away: allowed (fail open) and `nivesh_ratelimit_fail_open_total` counts it.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header;
use nivesh_resilience::ratelimit::{Bucket, Decision, LimiterConfig, Quota, RateLimiter};
use nivesh_resilience::{LoadShedder, bulkhead::LOAD_SHED_TOTAL, deadline};
use serde::{Deserialize, Deserializer};

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
    /// Peers whose `X-Forwarded-For` is believed (CIDRs; a list, or one comma-separated string
    /// in the environment). Default loopback only: in the pod that is the Istio sidecar, which
    /// every inbound request passes; no other peer can set the client address.
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<Cidr>,
    /// `X-Forwarded-For` entries (from the right) appended by proxies of ours that are not in
    /// `trusted_proxies` (e.g. a cloud load balancer in front of the ingress gateway, whose
    /// addresses change); skipped before the client address is taken.
    pub trusted_hops: usize,
    pub rate_limit: RateLimitSettings,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_in_flight: 512,
            shed_retry_after_secs: 1,
            default_deadline_ms: 0,
            trusted_proxies: vec![
                Cidr::from_str("127.0.0.0/8").expect("valid"),
                Cidr::from_str("::1/128").expect("valid"),
            ],
            trusted_hops: 0,
            rate_limit: RateLimitSettings::default(),
        }
    }
}

/// An IP network (`10.0.0.0/8`, `fd00::/8`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let network = IpAddr::from_str(addr)
            .map_err(|_| format!("{s:?} is not an IP network (e.g. 10.0.0.0/8)"))?
            .to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A list of CIDRs from a TOML array or one comma-separated string (environment variables).
fn cidr_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let items = match Raw::deserialize(d)? {
        Raw::One(s) => s.split(',').map(str::to_string).collect(),
        Raw::Many(v) => v,
    };
    items
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| Cidr::from_str(s).map_err(serde::de::Error::custom))
        .collect()
}

/// The client's address: `peer`, unless `peer` is in `trusted`; then `X-Forwarded-For`
/// (`xff`: every header value, in order) is read right to left: the first `hops` entries are
/// skipped (our own proxies), then entries inside `trusted`; the first other entry is the
/// client. An entry that is not an address ends the walk at the last address reached (it was
/// written by someone we do not trust). Entries may carry a port (`1.2.3.4:5`, `[::1]:5`).
pub fn client_ip<'a>(
    peer: IpAddr,
    xff: impl IntoIterator<Item = &'a str>,
    trusted: &[Cidr],
    hops: usize,
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    let entries: Vec<&str> = xff
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let mut skip = hops;
    for entry in entries.into_iter().rev() {
        let Some(ip) = parse_forwarded(entry) else {
            break;
        };
        client = ip;
        if skip > 0 {
            skip -= 1;
        } else if !is_trusted(ip) {
            break;
        }
    }
    client
}

fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let ip = IpAddr::from_str(entry)
        .or_else(|_| SocketAddr::from_str(entry).map(|s| s.ip()))
        .ok()?;
    Some(ip.to_canonical())
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
    trusted_proxies: Arc<[Cidr]>,
    trusted_hops: usize,
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
            trusted_proxies: settings.trusted_proxies.clone().into(),
            trusted_hops: settings.trusted_hops,
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

fn client_bucket(req: &Request, limits: &Limits, quota: Quota) -> Bucket {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(
            || "unknown".to_string(),
            |c| {
                let xff = req
                    .headers()
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok());
                client_ip(c.0.ip(), xff, &limits.trusted_proxies, limits.trusted_hops).to_string()
            },
        );
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
    let client = client_bucket(&req, &limits, settings.client);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    /// CIDRs parse (bare addresses are host routes) and match by prefix, v4-mapped v6 as v4.
    #[test]
    fn cidr_parsing_and_matching() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains(ip("10.1.255.7")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        assert!(!c.contains(ip("fd00::1")));
        let host: Cidr = "192.0.2.9".parse().unwrap();
        assert_eq!(host.to_string(), "192.0.2.9/32");
        assert!(host.contains(ip("192.0.2.9")) && !host.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        for bad in ["10.0.0.0/33", "::/129", "ten/8", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    /// From an untrusted peer, X-Forwarded-For is ignored whatever it says.
    #[test]
    fn untrusted_peer_cannot_choose_its_address() {
        let trusted = cidrs(&["127.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("198.51.100.4"), ["1.2.3.4"], &trusted, 0),
            ip("198.51.100.4")
        );
        assert_eq!(
            client_ip(ip("198.51.100.4"), ["1.2.3.4"], &trusted, 3),
            ip("198.51.100.4")
        );
    }

    /// Behind the sidecar: the entry the ingress appended (rightmost) is the client; what the
    /// client put further left is ignored; entries of trusted proxies are skipped.
    #[test]
    fn trusted_peer_rightmost_untrusted_entry_wins() {
        let trusted = cidrs(&["127.0.0.0/8", "10.0.0.0/8"]);
        let sidecar = ip("127.0.0.6");
        assert_eq!(client_ip(sidecar, [], &trusted, 0), sidecar, "no header");
        assert_eq!(
            client_ip(sidecar, ["6.6.6.6, 203.0.113.7"], &trusted, 0),
            ip("203.0.113.7")
        );
        // Two header lines are one list; 10.x (an in-cluster proxy) is skipped.
        assert_eq!(
            client_ip(sidecar, ["6.6.6.6, 203.0.113.7", "10.4.0.12"], &trusted, 0),
            ip("203.0.113.7")
        );
        // Ports and v4-mapped addresses are normalised.
        assert_eq!(
            client_ip(sidecar, ["203.0.113.7:51234"], &trusted, 0),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_ip(sidecar, ["[2001:db8::5]:443"], &trusted, 0),
            ip("2001:db8::5")
        );
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), ["::ffff:203.0.113.7"], &trusted, 0),
            ip("203.0.113.7")
        );
        // Every entry trusted: the leftmost one is as far as we can see.
        assert_eq!(
            client_ip(sidecar, ["10.0.0.1, 10.0.0.2"], &trusted, 0),
            ip("10.0.0.1")
        );
    }

    /// `trusted_hops` skips that many entries from the right first (a load balancer whose
    /// addresses are not listed).
    #[test]
    fn trusted_hops_skip_our_own_entries() {
        let trusted = cidrs(&["127.0.0.0/8"]);
        let sidecar = ip("127.0.0.1");
        let xff = ["6.6.6.6, 203.0.113.7, 52.1.2.3"];
        assert_eq!(client_ip(sidecar, xff, &trusted, 0), ip("52.1.2.3"));
        assert_eq!(client_ip(sidecar, xff, &trusted, 1), ip("203.0.113.7"));
        // More hops than entries: the leftmost entry.
        assert_eq!(
            client_ip(sidecar, ["52.1.2.3"], &trusted, 2),
            ip("52.1.2.3")
        );
    }

    /// Garbage ends the walk at the last address reached.
    #[test]
    fn malformed_entries_stop_the_walk() {
        let trusted = cidrs(&["127.0.0.0/8", "10.0.0.0/8"]);
        let sidecar = ip("127.0.0.1");
        assert_eq!(client_ip(sidecar, ["unknown"], &trusted, 0), sidecar);
        assert_eq!(
            client_ip(sidecar, ["1.1.1.1, bogus, 10.0.0.3"], &trusted, 0),
            ip("10.0.0.3")
        );
    }

    /// The settings accept a TOML list or one comma-separated string (environment).
    #[test]
    fn trusted_proxies_from_list_or_string() {
        let from_list: HttpLimits =
            serde_json::from_value(serde_json::json!({"trusted_proxies": ["10.0.0.0/8", "::1"]}))
                .unwrap();
        assert_eq!(from_list.trusted_proxies, cidrs(&["10.0.0.0/8", "::1/128"]));
        let from_env: HttpLimits = serde_json::from_value(
            serde_json::json!({"trusted_proxies": "10.0.0.0/8, 192.168.0.0/16", "trusted_hops": 1}),
        )
        .unwrap();
        assert_eq!(
            from_env.trusted_proxies,
            cidrs(&["10.0.0.0/8", "192.168.0.0/16"])
        );
        assert_eq!(from_env.trusted_hops, 1);
        assert_eq!(
            HttpLimits::default().trusted_proxies,
            cidrs(&["127.0.0.0/8", "::1"])
        );
        assert!(
            serde_json::from_value::<HttpLimits>(serde_json::json!({"trusted_proxies": ["nope"]}))
                .is_err()
        );
    }
}
