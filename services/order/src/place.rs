//! `POST /v1/orders`: idempotent placement.
//!
//! One attempt:
//! 1. read the idempotency record `idem:{key}` in the investor's partition: present → replay it
//!    (same request hash) or refuse (422, different body);
//! 2. validate (shape, investor + KYC (see `identity`), scheme table, free units);
//! 3. upsert the locator (order id → investor) in its own partition;
//! 4. commit ONE batch in the investor's partition: `Create idem:{key}` (with the response to
//!    replay) + `Create order:{id}` + `Create ix:…` (listing) + the ETag'd position (locks) +
//!    the `order.placed` outbox record.
//!
//! Concurrent duplicates all reach step 4; the first `Create idem:{key}` wins, the others fail
//! with a conflict on that id and loop back to step 1, which now replays the winner's response.
//! A concurrent redemption that moved the position first makes the `Replace` fail on its ETag:
//! the attempt is recomputed against the new locks, so two redemptions never lock the same units.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use nivesh_domain::{IdempotencyKey, InvestorId, Nav, OrderId, SchemeCode, Units};
use nivesh_events::{EventMeta, OrderPlaced};
use nivesh_runtime::problem::Problem;
use nivesh_store::{Batch, ETag, WriteOp};
use nivesh_txn_rules::{TxnKind, applicable_nav_date, units_for_amount_up};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::idem_cache::{Begin, IdemCache};
use crate::identity::Standing;
use crate::model::{
    IdempotencyRecord, IndexEntry, ORDER_LOCATORS, ORDERS, Order, OrderKind, OrderStatus, Position,
    SIP_INDEX, SIP_LOCATORS, Scheme, Sip, SipStatus, TimelineEntry, idem_doc_id, index_doc_id,
    ist_now, order_doc_id, position_doc_id, sip_doc_id, sip_index_partition,
};
use crate::service::{Error, MAX_ATTEMPTS, OrderService, class_of, to_value};
use crate::validate::{self, FieldError, Quantity, Request, SipRequest, field_error};
use crate::{GROUP, ORDER_PLACED_TOPIC};

/// Header set on a replayed response.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// A response as first given (and as replayed).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) body: Value,
    pub(crate) replayed: bool,
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut resp = (status, axum::Json(self.body)).into_response();
        let h = resp.headers_mut();
        if let Some(loc) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            h.insert(header::LOCATION, loc);
        }
        if self.replayed {
            h.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        }
        resp
    }
}

/// The `Idempotency-Key` header: required, and a valid [`IdempotencyKey`].
pub(crate) fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<IdempotencyKey, Problem> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Err(Problem::bad_request(
            "the Idempotency-Key header is required on every POST (8 to 128 of A-Z a-z 0-9 _ . : -)",
        )
        .with_type("urn:nivesh:problem:idempotency-key-required", "Idempotency-Key required"));
    };
    let text = raw
        .to_str()
        .map_err(|_| Problem::bad_request("the Idempotency-Key header must be ASCII"))?;
    IdempotencyKey::parse(text).map_err(|e| {
        Problem::bad_request(format!("malformed Idempotency-Key: {}", e.reason())).with_type(
            "urn:nivesh:problem:idempotency-key-malformed",
            "Malformed Idempotency-Key",
        )
    })
}

/// SHA-256 (hex) of the request's canonical JSON: object keys sorted, no whitespace, so the
/// same request written differently hashes the same.
pub(crate) fn request_hash(body: &Value) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    canonical(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canonical(body, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub(crate) fn invalid(errors: Vec<FieldError>) -> Problem {
    metrics::counter!("nivesh_order_rejections_total", "reason" => "validation").increment(1);
    let detail = errors
        .iter()
        .map(|e| {
            if e.field.is_empty() {
                e.reason.clone()
            } else {
                format!("{}: {}", e.field, e.reason)
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    Problem::unprocessable(detail)
        .with_type("urn:nivesh:problem:validation", "Invalid order")
        .with_field_errors(errors.into_iter().map(|e| (e.field, e.reason)))
}

fn rejected(reason: &'static str, problem: Problem) -> Problem {
    metrics::counter!("nivesh_order_rejections_total", "reason" => reason).increment(1);
    problem
}

fn internal(e: Error) -> Problem {
    Problem::internal(e)
}

/// What one attempt wants to write.
struct Plan {
    /// Locator upserts (container, id, investor), committed before the batch.
    locators: Vec<(&'static str, String)>,
    /// A SIP is also indexed by its day of month for the scheduler.
    sip_index: Option<(u32, String)>,
    batch: Batch,
    idem_id: String,
    reply: Reply,
    kind_label: &'static str,
}

enum Attempt {
    Done(Reply),
    Retry,
}

impl OrderService {
    /// The idempotency record of `key` in `scope`'s partition, replayed when the request matches.
    pub(crate) async fn replay(
        &self,
        container: &str,
        scope: &str,
        key: &IdempotencyKey,
        hash: &str,
    ) -> Result<Option<Reply>, Problem> {
        let Some((rec, _)) = self
            .load::<IdempotencyRecord>(container, scope, &idem_doc_id(key.as_str()))
            .await
            .map_err(internal)?
        else {
            return Ok(None);
        };
        checked_replay(
            key,
            hash,
            &rec.request_hash,
            Reply {
                status: rec.status,
                location: rec.location,
                body: rec.body,
                replayed: true,
            },
        )
        .map(Some)
    }

    /// `POST /v1/orders`, idempotent under `key` for `tenant`'s investor: Redis' fast path
    /// (`idem_cache`) in front of the store's idempotency record, which decides.
    pub(crate) async fn submit(
        &self,
        tenant: &str,
        key: &IdempotencyKey,
        body: &Value,
    ) -> Result<Reply, Problem> {
        let investor = validate::investor_of(body).map_err(|e| invalid(vec![e]))?;
        let hash = request_hash(body);
        let fast_key = IdemCache::key(tenant, investor.as_str(), key.as_str());
        let claimed = match self.idem_cache.begin(&fast_key, &hash).await {
            Begin::Replay(cached) => {
                return checked_replay(key, &hash, &cached.request_hash, cached.reply);
            }
            Begin::Proceed { claimed } => claimed,
        };
        let outcome = self.submit_to_store(&investor, key, &hash, body).await;
        let reply = outcome
            .as_ref()
            .ok()
            .filter(|r| (200..300).contains(&r.status));
        self.idem_cache
            .finish(&fast_key, claimed, &hash, reply)
            .await;
        outcome
    }

    /// Placement on the store alone: replay the stored record, or place and record.
    async fn submit_to_store(
        &self,
        investor: &InvestorId,
        key: &IdempotencyKey,
        hash: &str,
        body: &Value,
    ) -> Result<Reply, Problem> {
        for _ in 0..MAX_ATTEMPTS {
            if let Some(reply) = self.replay(ORDERS, investor.as_str(), key, hash).await? {
                return Ok(reply);
            }
            let today = self.clock.today_ist();
            let (_, request) =
                validate::parse(body, &self.config.limits, today).map_err(invalid)?;
            let plan = self.plan(investor, key, hash, request).await?;
            match self.execute(plan).await? {
                Attempt::Done(reply) => return Ok(reply),
                Attempt::Retry => continue,
            }
        }
        Err(Problem::service_unavailable(Duration::from_secs(1))
            .with_detail("the investor's holdings changed concurrently too often; retry with the same Idempotency-Key"))
    }

    async fn execute(&self, plan: Plan) -> Result<Attempt, Problem> {
        for (container, id) in &plan.locators {
            self.write_locator(container, id, &plan.batch.partition_key)
                .await
                .map_err(internal)?;
        }
        if let Some((dom, sip_id)) = &plan.sip_index {
            // The index entry is keyed by SIP id inside the day's partition.
            let batch = Batch::new(SIP_INDEX, sip_index_partition(*dom)).op(WriteOp::Upsert {
                id: sip_id.clone(),
                body: to_value(&crate::model::Locator {
                    investor_id: plan.batch.partition_key.clone(),
                }),
                ttl: None,
            });
            self.store
                .commit(batch)
                .await
                .map_err(|e| internal(e.into()))?;
        }
        match self.store.commit(plan.batch).await {
            Ok(_) => {
                self.outbox_notify.notify_one();
                if plan.kind_label == "SIP" {
                    metrics::counter!("nivesh_sips_registered_total").increment(1);
                } else {
                    metrics::counter!("nivesh_orders_total", "kind" => plan.kind_label, "status" => "PLACED")
                        .increment(1);
                }
                Ok(Attempt::Done(plan.reply))
            }
            // A concurrent duplicate won: the next attempt replays its response.
            Err(nivesh_store::Error::Conflict { id }) if id == plan.idem_id => Ok(Attempt::Retry),
            // The position moved under us: recompute against the new locks.
            Err(nivesh_store::Error::PreconditionFailed { .. }) => Ok(Attempt::Retry),
            Err(e) => Err(internal(e.into())),
        }
    }

    /// The 422 for an investor the registry does not know (also what a caller gets for an
    /// investor they may not act for: indistinguishable on purpose).
    pub(crate) fn unknown_investor(&self, investor: &InvestorId) -> Problem {
        rejected(
            "unknown_investor",
            Problem::unprocessable(format!("investor {investor} is not registered"))
                .with_type("urn:nivesh:problem:unknown-investor", "Unknown investor")
                .with_field_errors([("investorId", "is not a registered investor")]),
        )
    }

    /// 422 unless the investor is known (registry file or onboarding's events) with KYC
    /// verified (file `VERIFIED`, KRA `VALIDATED`) and not erased.
    pub(crate) async fn check_investor(&self, investor: &InvestorId) -> Result<(), Problem> {
        let view = self.investor(investor.as_str()).await.map_err(internal)?;
        match view.map(|v| v.standing) {
            None => Err(self.unknown_investor(investor)),
            Some(Standing::NotVerified(status)) => Err(rejected(
                "kyc_not_verified",
                Problem::unprocessable(format!(
                    "investor {investor} cannot transact: KYC status is {status}, a verified KYC (VALIDATED) is required"
                ))
                .with_type("urn:nivesh:problem:kyc-not-verified", "KYC not verified")
                .with_field_errors([("investorId", "KYC is not verified")]),
            )),
            Some(Standing::Erased) => Err(rejected(
                "investor_erased",
                Problem::unprocessable(format!(
                    "investor {investor} cannot transact: their personal data was erased at their request (DPDP)"
                ))
                .with_type("urn:nivesh:problem:investor-erased", "Investor erased")
                .with_field_errors([("investorId", "the investor's personal data was erased")]),
            )),
            Some(Standing::Verified) => Ok(()),
        }
    }

    /// The scheme from the table, or a field error (unknown; closed when `must_be_open`).
    async fn checked_scheme(
        &self,
        code: &SchemeCode,
        field: &str,
        must_be_open: bool,
        errors: &mut Vec<FieldError>,
    ) -> Result<Option<Scheme>, Problem> {
        match self.scheme(code.as_str()).await.map_err(internal)? {
            None => {
                errors.push(field_error(
                    field,
                    format!("scheme {code} is unknown (no NAV has been published for it)"),
                ));
                Ok(None)
            }
            Some(s) if must_be_open && !self.is_open(&s) => {
                errors.push(field_error(
                    field,
                    format!("scheme {code} is not open for purchases"),
                ));
                Ok(None)
            }
            Some(s) => Ok(Some(s)),
        }
    }

    async fn plan(
        &self,
        investor: &InvestorId,
        key: &IdempotencyKey,
        hash: &str,
        request: Request,
    ) -> Result<Plan, Problem> {
        let (kind, scheme_code, target_code, qty, purchase) = match &request {
            Request::Purchase {
                scheme,
                amount,
                instrument,
            } => (
                OrderKind::Purchase,
                scheme,
                None,
                None,
                Some((*amount, instrument.clone())),
            ),
            Request::Redemption { scheme, qty } => {
                (OrderKind::Redemption, scheme, None, Some(*qty), None)
            }
            Request::Switch {
                scheme,
                target,
                qty,
            } => (OrderKind::Switch, scheme, Some(target), Some(*qty), None),
            Request::Sip(sip) => return self.plan_sip(investor, key, hash, sip.clone()).await,
        };
        self.check_investor(investor).await?;
        let inv = investor.as_str();
        let mut errors = Vec::new();
        let (amount, units, all_units) = match (qty, &purchase) {
            (Some(Quantity::Amount(a)), _) => (Some(a), None, false),
            (Some(Quantity::Units(u)), _) => (None, Some(u), false),
            (Some(Quantity::All), _) => (None, None, true),
            (None, Some((a, _))) => (Some(*a), None, false),
            (None, None) => (None, None, false),
        };
        let instrument = purchase.map(|(_, i)| i);
        let scheme = self
            .checked_scheme(
                scheme_code,
                "schemeCode",
                kind == OrderKind::Purchase,
                &mut errors,
            )
            .await?;
        let target = match target_code {
            Some(t) => {
                self.checked_scheme(t, "targetSchemeCode", true, &mut errors)
                    .await?
            }
            None => None,
        };
        if !errors.is_empty() {
            return Err(rejected("scheme", invalid_quiet(errors)));
        }
        let scheme = scheme.expect("no errors means the scheme was found");

        let now = self.clock.now();
        let placed_at = ist_now(now);
        let order_id = OrderId::new().to_string();

        // Redemptions and switches lock units in the ETag'd position, in the same batch.
        let mut position_op = None;
        let mut locked_units = None;
        let mut applicable = None;
        if let Some(qty) = qty {
            let pos_id = position_doc_id(scheme_code.as_str());
            let (mut position, etag) = match self
                .load::<Position>(ORDERS, inv, &pos_id)
                .await
                .map_err(internal)?
            {
                Some((p, e)) => (p, Some(e)),
                None => (Position::empty(scheme_code.as_str()), None),
            };
            let nav = Nav::new(scheme.nav).map_err(|e| {
                internal(Error::Corrupt {
                    id: format!("scheme {}", scheme.scheme_code),
                    reason: e.to_string(),
                })
            })?;
            let lock = units_to_lock(qty, position.free(), nav, scheme.nav_date).map_err(|e| {
                rejected(
                    "insufficient_units",
                    invalid_quiet(vec![e]).with_type(
                        "urn:nivesh:problem:insufficient-units",
                        "Not enough free units",
                    ),
                )
            })?;
            position.locks.insert(order_id.clone(), lock);
            locked_units = Some(lock);
            position_op = Some(position_write(pos_id, &position, etag));
            applicable = applicable_nav_date(
                TxnKind::Redemption,
                class_of(scheme.category.as_deref()),
                placed_at,
                &self.config.holidays,
            )
            .ok();
        }

        let detail = match kind {
            OrderKind::Purchase => format!(
                "purchase of ₹{} in {} accepted; awaiting payment",
                amount.map(|a| a.to_string()).unwrap_or_default(),
                scheme_code
            ),
            _ => format!(
                "{} of {} units of {} accepted{}",
                if kind == OrderKind::Switch {
                    "switch"
                } else {
                    "redemption"
                },
                locked_units.map(|u| u.to_string()).unwrap_or_default(),
                scheme_code,
                target_code
                    .map(|t| format!(" into {t}"))
                    .unwrap_or_default()
            ),
        };
        let order = Order {
            order_id: order_id.clone(),
            investor_id: inv.to_string(),
            kind,
            scheme_code: scheme_code.to_string(),
            scheme_name: Some(scheme.scheme_name.clone()),
            scheme_category: scheme.category.clone(),
            target_scheme_code: target_code.map(|t| t.to_string()),
            target_scheme_category: target.as_ref().and_then(|t| t.category.clone()),
            amount,
            units,
            all_units,
            payment_instrument: instrument,
            sip_id: None,
            instalment_no: None,
            instalment_due_date: None,
            status: OrderStatus::Placed,
            timeline: vec![TimelineEntry {
                status: OrderStatus::Placed.as_str().into(),
                at: placed_at,
                detail,
            }],
            failure: None,
            placed_at,
            applicable_nav_date: applicable,
            locked_units,
            payment_id: None,
            allotments: vec![],
        };
        let event = placed_event(&order, Some(key.to_string()), target.as_ref());
        let outbox = self
            .outbox(ORDER_PLACED_TOPIC, inv, &event)
            .await
            .map_err(internal)?;

        let body = to_value(&order);
        let (idem_id, idem_op, reply) = self.created(
            key,
            inv,
            hash,
            format!("/v1/orders/{order_id}"),
            &body,
            placed_at,
        );
        let mut batch = Batch::new(ORDERS, inv)
            .op(idem_op)
            .op(WriteOp::Create {
                id: order_doc_id(&order_id),
                body,
                ttl: None,
            })
            .op(WriteOp::Create {
                id: index_doc_id(placed_at, &order_id),
                body: to_value(&IndexEntry {
                    order_id: order_id.clone(),
                }),
                ttl: None,
            })
            .emit(outbox);
        if let Some(op) = position_op {
            batch = batch.op(op);
        }
        Ok(Plan {
            locators: vec![(ORDER_LOCATORS, order_id)],
            sip_index: None,
            batch,
            idem_id,
            reply,
            kind_label: kind.as_str(),
        })
    }

    async fn plan_sip(
        &self,
        investor: &InvestorId,
        key: &IdempotencyKey,
        hash: &str,
        req: SipRequest,
    ) -> Result<Plan, Problem> {
        self.check_investor(investor).await?;
        let inv = investor.as_str();
        let mut errors = Vec::new();
        let scheme = self
            .checked_scheme(&req.scheme, "schemeCode", true, &mut errors)
            .await?;
        let Some(scheme) = scheme else {
            return Err(rejected("scheme", invalid_quiet(errors)));
        };
        let registered_at = ist_now(self.clock.now());
        let sip_id = uuid::Uuid::now_v7().to_string();
        let sip = Sip {
            sip_id: sip_id.clone(),
            investor_id: inv.to_string(),
            scheme_code: req.scheme.to_string(),
            scheme_name: Some(scheme.scheme_name),
            amount: req.amount,
            day_of_month: req.day_of_month,
            start_date: req.start_date,
            instalments: req.instalments,
            payment_instrument: req.instrument,
            status: SipStatus::Active,
            next_instalment_no: 1,
            next_instalment_date: Some(crate::sip::first_due(req.start_date, req.day_of_month)),
            registered_at,
            instalment_orders: vec![],
        };
        let body = to_value(&sip);
        let (idem_id, idem_op, reply) = self.created(
            key,
            inv,
            hash,
            format!("/v1/sips/{sip_id}"),
            &body,
            registered_at,
        );
        let batch = Batch::new(ORDERS, inv).op(idem_op).op(WriteOp::Create {
            id: sip_doc_id(&sip_id),
            body,
            ttl: None,
        });
        Ok(Plan {
            locators: vec![(SIP_LOCATORS, sip_id.clone())],
            sip_index: Some((req.day_of_month, sip_id)),
            batch,
            idem_id,
            reply,
            kind_label: "SIP",
        })
    }

    /// A 201 answer for `body` at `location`, and the idempotency record that stores it: a
    /// `Create`, so a concurrent duplicate conflicts on it and replays this answer instead.
    /// Returns (record id, its write, the reply).
    fn created(
        &self,
        key: &IdempotencyKey,
        scope: &str,
        hash: &str,
        location: String,
        body: &Value,
        at: chrono::DateTime<chrono::FixedOffset>,
    ) -> (String, WriteOp, Reply) {
        let idem_id = idem_doc_id(key.as_str());
        let record = IdempotencyRecord {
            key: key.to_string(),
            scope: scope.to_string(),
            request_hash: hash.to_string(),
            status: 201,
            location: Some(location.clone()),
            body: body.clone(),
            created_at: at,
        };
        let op = WriteOp::Create {
            id: idem_id.clone(),
            body: to_value(&record),
            ttl: Some(self.idempotency_ttl()),
        };
        let reply = Reply {
            status: 201,
            location: Some(location),
            body: body.clone(),
            replayed: false,
        };
        (idem_id, op, reply)
    }

    pub(crate) fn idempotency_ttl(&self) -> Duration {
        Duration::from_secs(self.config.idempotency_ttl_hours * 3600)
    }
}

/// `reply` recorded under `key` for a request hashing to `recorded`: replayed when `hash` (this
/// request's) matches, else the key was reused for another request (422).
fn checked_replay(
    key: &IdempotencyKey,
    hash: &str,
    recorded: &str,
    reply: Reply,
) -> Result<Reply, Problem> {
    if recorded != hash {
        return Err(rejected(
            "idempotency_key_reused",
            Problem::unprocessable(format!(
                "Idempotency-Key {key} was already used for a different request; use a new key for a new request",
            ))
            .with_type("urn:nivesh:problem:idempotency-key-reused", "Idempotency-Key reused"),
        ));
    }
    metrics::counter!("nivesh_order_idempotent_replays_total").increment(1);
    Ok(reply)
}

/// A 422 without counting it again (the caller counts under its own reason).
fn invalid_quiet(errors: Vec<FieldError>) -> Problem {
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.reason))
        .collect::<Vec<_>>()
        .join("; ");
    Problem::unprocessable(detail)
        .with_type("urn:nivesh:problem:validation", "Invalid order")
        .with_field_errors(errors.into_iter().map(|e| (e.field, e.reason)))
}

/// Replace with the ETag read, or Create when there was no position yet: either way a
/// concurrent writer makes this batch fail instead of being overwritten.
pub(crate) fn position_write(id: String, position: &Position, etag: Option<ETag>) -> WriteOp {
    match etag {
        Some(if_match) => WriteOp::Replace {
            id,
            body: to_value(position),
            if_match,
            ttl: None,
        },
        None => WriteOp::Create {
            id,
            body: to_value(position),
            ttl: None,
        },
    }
}

/// The units a redemption/switch locks, or why it cannot: by units as asked, by amount
/// `amount / NAV` rounded UP to 3 places at the latest NAV, all units = every free unit.
pub(crate) fn units_to_lock(
    qty: Quantity,
    free: Units,
    nav: Nav,
    nav_date: NaiveDate,
) -> Result<Units, FieldError> {
    match qty {
        Quantity::Units(u) if u > free => Err(field_error(
            "units",
            format!(
                "{u} units exceed the free units {free} (held minus pending redemptions and switches)"
            ),
        )),
        Quantity::Units(u) => Ok(u),
        Quantity::Amount(a) => {
            let u =
                units_for_amount_up(a, nav).map_err(|e| field_error("amount", e.to_string()))?;
            if u > free {
                Err(field_error(
                    "amount",
                    format!(
                        "₹{a} needs {u} units at the latest NAV {nav} ({nav_date}), more than the free units {free}"
                    ),
                ))
            } else {
                Ok(u)
            }
        }
        Quantity::All if free.is_zero() => Err(field_error(
            "allUnits",
            "there are no free units to redeem (none held, or all locked by pending orders)",
        )),
        Quantity::All => Ok(free),
    }
}

/// The `order.placed` event of an order.
pub(crate) fn placed_event(
    order: &Order,
    causation: Option<String>,
    target: Option<&Scheme>,
) -> OrderPlaced {
    OrderPlaced {
        meta: EventMeta::new::<OrderPlaced>(GROUP, causation),
        order_id: order.order_id.clone(),
        investor_id: order.investor_id.clone(),
        kind: order.kind.as_str().to_string(),
        scheme_code: order.scheme_code.clone(),
        scheme_name: order.scheme_name.clone(),
        scheme_category: order.scheme_category.clone(),
        target_scheme_code: order.target_scheme_code.clone(),
        target_scheme_category: target
            .and_then(|t| t.category.clone())
            .or_else(|| order.target_scheme_category.clone()),
        amount: order.amount.map(|a| a.as_decimal()),
        units: order.units.map(|u| u.as_decimal()),
        all_units: order.all_units,
        placed_at: order.placed_at.with_timezone(&chrono::Utc),
        sip_id: order.sip_id.clone(),
        instalment_no: order.instalment_no.and_then(|n| i32::try_from(n).ok()),
        payment_instrument: order.payment_instrument.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nivesh_domain::Amount;
    use serde_json::json;

    fn u(s: &str) -> Units {
        Units::parse(s).unwrap()
    }

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 2, 25).unwrap()
    }

    /// The hash ignores key order and whitespace but not values.
    #[test]
    fn request_hash_is_canonical() {
        let a: Value = serde_json::from_str(r#"{"a":"1","b":{"y":2,"x":[1,"2"]}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{ "b": {"x": [1, "2"], "y": 2}, "a": "1" }"#).unwrap();
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(
            request_hash(&a),
            request_hash(&json!({"a": "1", "b": {"y": 3, "x": [1, "2"]}}))
        );
        assert_ne!(
            request_hash(&json!({"a": "1"})),
            request_hash(&json!({"a": 1}))
        );
        assert_eq!(request_hash(&a).len(), 64);
    }

    /// Units are locked as asked, never above the free units.
    #[test]
    fn lock_by_units() {
        let nav = Nav::parse("10.0000").unwrap();
        assert_eq!(
            units_to_lock(Quantity::Units(u("5.000")), u("5.000"), nav, date()),
            Ok(u("5.000"))
        );
        let e = units_to_lock(Quantity::Units(u("5.001")), u("5.000"), nav, date()).unwrap_err();
        assert_eq!(e.field, "units");
        assert!(e.reason.contains("5.000"), "{e:?}");
    }

    /// An amount locks amount / NAV rounded up to 3 places.
    #[test]
    fn lock_by_amount_rounds_up() {
        let nav = Nav::parse("30.0000").unwrap();
        let a = Amount::parse("100.00").unwrap();
        // 100 / 30 = 3.3333… → 3.334
        assert_eq!(
            units_to_lock(Quantity::Amount(a), u("10.000"), nav, date()),
            Ok(u("3.334"))
        );
        let e = units_to_lock(Quantity::Amount(a), u("3.333"), nav, date()).unwrap_err();
        assert_eq!(e.field, "amount");
    }

    /// All units locks everything free, and is refused when nothing is free.
    #[test]
    fn lock_all() {
        let nav = Nav::parse("10").unwrap();
        assert_eq!(
            units_to_lock(Quantity::All, u("7.250"), nav, date()),
            Ok(u("7.250"))
        );
        assert_eq!(
            units_to_lock(Quantity::All, Units::zero(), nav, date())
                .unwrap_err()
                .field,
            "allUnits"
        );
    }

    /// Missing and malformed keys are 400s.
    #[test]
    fn key_header() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(
            idempotency_key(&h).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        h.insert("idempotency-key", HeaderValue::from_static("short"));
        assert_eq!(
            idempotency_key(&h).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        h.insert("idempotency-key", HeaderValue::from_static("has space 123"));
        assert_eq!(
            idempotency_key(&h).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        h.insert(
            "idempotency-key",
            HeaderValue::from_static("order-2025-02-25-0001"),
        );
        assert_eq!(
            idempotency_key(&h).unwrap().as_str(),
            "order-2025-02-25-0001"
        );
    }
}
