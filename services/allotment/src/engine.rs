//! The transaction engine: executes legs at their applicable NAV, effectively once.
//!
//! Three ways a leg gets executed, all through [`Engine::execute`]:
//!
//! 1. **At once** when its event arrives and the NAV is already in the table
//!    ([`Engine::submit`]): inbox marker + lots + record + outbox in one batch.
//! 2. **Released by the NAV** ([`Engine::store_nav`]): the leg was parked as a pending document
//!    (investor partition) plus a wait-index entry (scheme partition, id `{date}|{txn}`); the
//!    NAV handler stores the NAV, then looks the index up and executes each waiting leg.
//! 3. **By the sweeper** ([`crate::sweeper`]), the safety net: executes pending legs whose NAV
//!    exists and fails those that waited longer than the limit.
//!
//! No lost wakeup: the parking side writes pending → index → re-reads the NAV; the NAV side
//! writes the NAV → reads the index. Whichever runs second sees the other's write, so at least
//! one of them executes the leg; when both do, the batch of the second conflicts (the record is
//! a `Create`, the pending delete and the lots replace carry ETags) and it re-checks, sees the
//! record, and stops. The same conflict makes every redelivery harmless.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeDelta, Utc};
use futures::StreamExt;
use nivesh_bus::HandlerError;
use nivesh_domain::time::Clock;
use nivesh_domain::{Amount, Nav};
use nivesh_events::{
    AvroCodec, EventMeta, LotMovement, NavPublished, TransactionCompleted, TransactionFailed, leg,
};
use nivesh_runtime::outbox::outbox_message;
use nivesh_store::{
    Batch, DocumentStore, ETag, Error as StoreError, IdRange, WriteOp, inbox_marker,
};
use nivesh_txn_rules::HolidaySet;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::config::{Config, ExitLoadConfig, RoundingConfig};
use crate::ledger::{Figures, Holding, RedeemError};
use crate::model::{
    Action, AllotmentRecord, Failure, INFO, Instruction, LEDGER, NAVS, NavEntry, PendingAllotment,
    SchemeInfo, SwitchTarget, WAITS, WaitEntry, lots_id, nav_id, pending_id, reason, record_id,
    status, switch_in_id, wait_id,
};

/// The consumer group, also the producer name on events.
pub(crate) const GROUP: &str = "allotment";
pub(crate) const COMPLETED_TOPIC: &str = "transaction.completed";
pub(crate) const FAILED_TOPIC: &str = "transaction.failed";

/// How often one leg is re-tried within a call when concurrent writers keep winning.
const MAX_ATTEMPTS: usize = 8;
/// Investors whose waiting legs one NAV releases concurrently.
const RELEASE_CONCURRENCY: usize = 8;

/// The business rules of the service, from [`Config`].
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) holidays: HolidaySet,
    pub(crate) exit_loads: ExitLoadConfig,
    pub(crate) rounding: RoundingConfig,
    pub(crate) nav_wait_limit: TimeDelta,
}

impl Rules {
    pub(crate) fn from_config(c: &Config) -> Self {
        Rules {
            holidays: c.holidays.clone(),
            exit_loads: c.exit_loads.clone(),
            rounding: c.units_rounding.clone(),
            nav_wait_limit: c.nav_wait_limit(),
        }
    }
}

pub(crate) struct Engine {
    pub(crate) store: Arc<dyn DocumentStore>,
    pub(crate) codec: AvroCodec,
    pub(crate) outbox_notify: Arc<Notify>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rules: Rules,
}

/// The outcome of one attempt at executing a leg.
enum Exec {
    /// Committed; a switch-out may leave its switch-in leg waiting for the target's NAV.
    Committed {
        follow_up: Option<Box<PendingAllotment>>,
    },
    /// The leg's NAV is not in the table.
    NotReady,
    /// Someone else changed what the batch depended on (or processed the message): re-check.
    Contended,
}

pub(crate) fn retryable(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retryable(e.to_string())
}

/// Failures a re-check resolves: a `Create` that exists, a stale ETag, a delete of a vanished doc.
fn is_contention(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Conflict { .. }
            | StoreError::PreconditionFailed { .. }
            | StoreError::NotFound { .. }
    )
}

fn to_body(v: &impl Serialize) -> Result<serde_json::Value, HandlerError> {
    serde_json::to_value(v).map_err(retryable)
}

fn record(
    instr: &Instruction,
    figures: Option<Figures>,
    failure: Option<Failure>,
    now: DateTime<FixedOffset>,
) -> AllotmentRecord {
    AllotmentRecord {
        transaction_id: instr.transaction_id.clone(),
        order_id: instr.order_id.clone(),
        investor_id: instr.investor_id.clone(),
        status: if failure.is_some() {
            status::FAILED
        } else {
            status::COMPLETED
        }
        .into(),
        order_kind: instr.order_kind.clone(),
        leg: instr.leg.clone(),
        scheme_code: instr.scheme_code.clone(),
        nav_date: instr.nav_date,
        figures,
        failure,
        linked_transaction_id: instr.linked_transaction_id.clone(),
        sip_id: instr.sip_id.clone(),
        instalment_no: instr.instalment_no,
        recorded_at: now,
    }
}

fn completed_record(
    instr: &Instruction,
    figures: Figures,
    now: DateTime<FixedOffset>,
) -> AllotmentRecord {
    record(instr, Some(figures), None, now)
}

fn failed_record(
    instr: &Instruction,
    failure: Failure,
    now: DateTime<FixedOffset>,
) -> AllotmentRecord {
    record(instr, None, Some(failure), now)
}

/// A purchase-type leg failure (the amount buys nothing): refund what was paid.
fn purchase_failure(instr: &Instruction, why: String) -> Failure {
    let (payment_id, refund_amount) = instr.refund();
    Failure {
        reason_code: reason::AMOUNT_TOO_SMALL.into(),
        reason: why,
        payment_id,
        refund_amount,
    }
}

/// The `transaction.completed` event of a completed record.
pub(crate) fn completed_event(rec: &AllotmentRecord, f: &Figures) -> TransactionCompleted {
    TransactionCompleted {
        meta: EventMeta::new::<TransactionCompleted>(GROUP, Some(rec.transaction_id.clone())),
        transaction_id: rec.transaction_id.clone(),
        order_id: rec.order_id.clone(),
        investor_id: rec.investor_id.clone(),
        folio: f.folio.clone(),
        leg: rec.leg.clone(),
        order_kind: rec.order_kind.clone(),
        scheme_code: rec.scheme_code.clone(),
        nav: f.nav.as_decimal(),
        nav_date: f.nav_date,
        gross_amount: f.gross_amount.as_decimal(),
        stamp_duty: f.stamp_duty.as_decimal(),
        exit_load: f.exit_load.as_decimal(),
        net_amount: f.net_amount.as_decimal(),
        units: f.units.as_decimal(),
        balance_units: f.balance_units.as_decimal(),
        lots: f
            .lots
            .iter()
            .map(|m| LotMovement {
                lot_id: m.lot_id.clone(),
                units: m.units.as_decimal(),
                lot_nav_date: m.lot_nav_date,
                lot_nav: m.lot_nav.as_decimal(),
                cost: m.cost.as_decimal(),
                exit_load: m.exit_load.as_decimal(),
                days_held: i32::try_from(m.days_held).unwrap_or(i32::MAX),
            })
            .collect(),
        allotted_at: rec.recorded_at.with_timezone(&Utc),
        sip_id: rec.sip_id.clone(),
        instalment_no: rec.instalment_no,
        linked_order_leg: rec.linked_transaction_id.clone(),
    }
}

/// The `transaction.failed` event of a failed record.
pub(crate) fn failed_event(rec: &AllotmentRecord, f: &Failure) -> TransactionFailed {
    TransactionFailed {
        meta: EventMeta::new::<TransactionFailed>(GROUP, Some(rec.transaction_id.clone())),
        order_id: rec.order_id.clone(),
        investor_id: rec.investor_id.clone(),
        order_kind: rec.order_kind.clone(),
        scheme_code: rec.scheme_code.clone(),
        reason_code: f.reason_code.clone(),
        reason: f.reason.clone(),
        payment_id: f.payment_id.clone(),
        refund_amount: f.refund_amount.map(|a| a.as_decimal()),
    }
}

/// The switch-in leg a switch-out's net proceeds buy.
fn switch_in_instruction(
    out: &Instruction,
    target: &SwitchTarget,
    proceeds: Amount,
) -> Instruction {
    Instruction {
        transaction_id: switch_in_id(&out.order_id),
        leg: leg::SWITCH_IN.into(),
        scheme_code: target.scheme_code.clone(),
        scheme_category: target.scheme_category.clone(),
        nav_date: target.nav_date,
        action: Action::Purchase {
            amount: proceeds,
            payment_id: None,
        },
        linked_transaction_id: Some(out.transaction_id.clone()),
        ..out.clone()
    }
}

impl Engine {
    async fn get_json<T: DeserializeOwned>(
        &self,
        container: &str,
        partition: &str,
        id: &str,
    ) -> Result<Option<(T, ETag)>, HandlerError> {
        let Some(doc) = self
            .store
            .get(container, partition, id)
            .await
            .map_err(retryable)?
        else {
            return Ok(None);
        };
        let value = serde_json::from_value(doc.body).map_err(|e| {
            HandlerError::Retryable(format!(
                "unreadable document {container}/{partition}/{id}: {e}"
            ))
        })?;
        Ok(Some((value, doc.etag)))
    }

    pub(crate) async fn nav(
        &self,
        scheme: &str,
        date: NaiveDate,
    ) -> Result<Option<NavEntry>, HandlerError> {
        Ok(self
            .get_json::<NavEntry>(NAVS, scheme, &nav_id(date))
            .await?
            .map(|(n, _)| n))
    }

    pub(crate) async fn info(&self, scheme: &str) -> Result<Option<SchemeInfo>, HandlerError> {
        Ok(self.get_json(NAVS, scheme, INFO).await?.map(|(i, _)| i))
    }

    pub(crate) async fn record(
        &self,
        investor: &str,
        txn: &str,
    ) -> Result<Option<AllotmentRecord>, HandlerError> {
        Ok(self
            .get_json(LEDGER, investor, &record_id(txn))
            .await?
            .map(|(r, _)| r))
    }

    pub(crate) async fn pending(
        &self,
        investor: &str,
        txn: &str,
    ) -> Result<Option<(PendingAllotment, ETag)>, HandlerError> {
        self.get_json(LEDGER, investor, &pending_id(txn)).await
    }

    async fn holding(
        &self,
        investor: &str,
        scheme: &str,
        amc: Option<&str>,
    ) -> Result<(Holding, Option<ETag>), HandlerError> {
        Ok(
            match self
                .get_json::<Holding>(LEDGER, investor, &lots_id(scheme))
                .await?
            {
                Some((h, etag)) => (h, Some(etag)),
                None => (Holding::new(investor, scheme, amc), None),
            },
        )
    }

    /// Removes a wait-index entry; best effort (a stale entry is cleaned by the sweeper).
    pub(crate) async fn delete_wait(&self, scheme: &str, date: NaiveDate, txn: &str) {
        let batch = Batch::new(WAITS, scheme).op(WriteOp::Delete {
            id: wait_id(date, txn),
            if_match: None,
        });
        match self.store.commit(batch).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => tracing::debug!(error = %e, txn, "wait entry not removed (sweeper will)"),
        }
    }

    // ---- the NAV table --------------------------------------------------------------------

    /// Stores a broadcast NAV (and the scheme's info), then releases every leg waiting for it.
    /// Upserts only, so a redelivery rewrites the same values.
    pub(crate) async fn store_nav(
        &self,
        ev: &NavPublished,
        nav: Nav,
    ) -> Result<usize, HandlerError> {
        let entry = NavEntry {
            scheme_code: ev.scheme_code.clone(),
            nav_date: ev.nav_date,
            nav,
            change_kind: ev.change_kind.clone(),
            event_id: ev.meta.event_id.to_string(),
        };
        let info = SchemeInfo {
            scheme_code: ev.scheme_code.clone(),
            scheme_name: ev.scheme_name.clone(),
            amc: ev.amc.clone(),
            category: ev.category.clone(),
            scheme_type: ev.scheme_type.clone(),
        };
        let batch = Batch::new(NAVS, &ev.scheme_code)
            .op(WriteOp::Upsert {
                id: nav_id(ev.nav_date),
                body: to_body(&entry)?,
                ttl: None,
            })
            .op(WriteOp::Upsert {
                id: INFO.into(),
                body: to_body(&info)?,
                ttl: None,
            });
        self.store.commit(batch).await.map_err(retryable)?;
        metrics::counter!("nivesh_allotment_navs_stored_total").increment(1);
        self.release_waiting(&ev.scheme_code, ev.nav_date).await
    }

    /// Executes every leg in the wait index for (scheme, date). Returns how many were looked at.
    pub(crate) async fn release_waiting(
        &self,
        scheme: &str,
        date: NaiveDate,
    ) -> Result<usize, HandlerError> {
        let range = IdRange {
            from: Some(format!("{date}|")),
            to: Some(format!("{date}|~")),
            limit: None,
            descending: false,
        };
        let docs = self
            .store
            .query_partition(WAITS, scheme, range)
            .await
            .map_err(retryable)?;
        let entries: Vec<WaitEntry> = docs
            .into_iter()
            .filter_map(|d| serde_json::from_value(d.body).ok())
            .collect();
        let n = entries.len();
        // One investor's legs run one after another in id order (order ids are UUID v7, so
        // that is placement order: a redemption placed after a purchase sees its lot); different
        // investors' legs run concurrently.
        let mut by_investor: BTreeMap<String, Vec<WaitEntry>> = BTreeMap::new();
        for e in entries {
            by_investor
                .entry(e.investor_id.clone())
                .or_default()
                .push(e);
        }
        let results: Vec<Result<(), HandlerError>> =
            futures::stream::iter(by_investor.into_values())
                .map(|legs| async move {
                    for e in &legs {
                        self.release_entry(e).await?;
                    }
                    Ok(())
                })
                .buffer_unordered(RELEASE_CONCURRENCY)
                .collect()
                .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        if n > 0 {
            metrics::counter!("nivesh_allotment_released_total").increment(n as u64);
        }
        Ok(n)
    }

    /// Executes the leg a wait entry points at, or drops the entry when nothing waits any more.
    pub(crate) async fn release_entry(&self, e: &WaitEntry) -> Result<(), HandlerError> {
        match self.pending(&e.investor_id, &e.transaction_id).await? {
            Some((p, _)) => self.ensure_waiting(p).await,
            None => {
                self.delete_wait(&e.scheme_code, e.nav_date, &e.transaction_id)
                    .await;
                Ok(())
            }
        }
    }

    // ---- legs -----------------------------------------------------------------------------

    /// A leg from a consumed event (`event_id` is the inbox marker): executes it now when its
    /// NAV is known, else parks it. Redelivery-safe: an existing record or pending ends it.
    pub(crate) async fn submit(
        &self,
        instr: Instruction,
        event_id: &str,
    ) -> Result<(), HandlerError> {
        let (inv, txn) = (&instr.investor_id, &instr.transaction_id);
        for _ in 0..MAX_ATTEMPTS {
            if self.record(inv, txn).await?.is_some() {
                metrics::counter!("nivesh_allotment_duplicates_total").increment(1);
                return Ok(());
            }
            if let Some((p, _)) = self.pending(inv, txn).await? {
                return self.ensure_waiting(p).await;
            }
            match self.execute(&instr, Some(event_id)).await? {
                Exec::Committed { follow_up } => {
                    if let Some(p) = follow_up {
                        self.ensure_waiting(*p).await?;
                    }
                    return Ok(());
                }
                Exec::Contended => continue,
                Exec::NotReady => {
                    let p = PendingAllotment {
                        instruction: instr.clone(),
                        waiting_since: self.clock.now_ist(),
                    };
                    let batch = Batch::new(LEDGER, inv)
                        .op(inbox_marker(GROUP, event_id))
                        .op(WriteOp::Create {
                            id: pending_id(txn),
                            body: to_body(&p)?,
                            ttl: None,
                        });
                    match self.store.commit(batch).await {
                        Ok(_) => {
                            metrics::counter!("nivesh_allotment_parked_total").increment(1);
                            return self.ensure_waiting(p).await;
                        }
                        Err(e) if is_contention(&e) => continue,
                        Err(e) => return Err(retryable(e)),
                    }
                }
            }
        }
        Err(HandlerError::Retryable(format!(
            "{txn}: still contended after {MAX_ATTEMPTS} attempts"
        )))
    }

    /// Makes a pending leg findable by its (scheme, date), then re-reads the NAV and executes
    /// the leg if it arrived meanwhile (the parking half of the lost-wakeup protocol). Follows a
    /// switch-out into its switch-in leg.
    pub(crate) async fn ensure_waiting(&self, first: PendingAllotment) -> Result<(), HandlerError> {
        let mut next = Some(first);
        while let Some(p) = next.take() {
            let i = &p.instruction;
            let entry = WaitEntry {
                investor_id: i.investor_id.clone(),
                transaction_id: i.transaction_id.clone(),
                scheme_code: i.scheme_code.clone(),
                nav_date: i.nav_date,
            };
            let batch = Batch::new(WAITS, &i.scheme_code).op(WriteOp::Upsert {
                id: wait_id(i.nav_date, &i.transaction_id),
                body: to_body(&entry)?,
                ttl: None,
            });
            self.store.commit(batch).await.map_err(retryable)?;
            if self.nav(&i.scheme_code, i.nav_date).await?.is_none() {
                return Ok(());
            }
            next = self.release(i).await?;
        }
        Ok(())
    }

    /// Executes a pending leg (no inbox marker: the record's `Create` is the guard).
    async fn release(&self, instr: &Instruction) -> Result<Option<PendingAllotment>, HandlerError> {
        let (inv, txn) = (&instr.investor_id, &instr.transaction_id);
        for _ in 0..MAX_ATTEMPTS {
            if self.record(inv, txn).await?.is_some() {
                // A pending written after the leg executed (a redelivery racing the NAV) is stale.
                if let Some((_, etag)) = self.pending(inv, txn).await? {
                    let batch = Batch::new(LEDGER, inv).op(WriteOp::Delete {
                        id: pending_id(txn),
                        if_match: Some(etag),
                    });
                    if let Err(e) = self.store.commit(batch).await
                        && !is_contention(&e)
                    {
                        return Err(retryable(e));
                    }
                }
                self.delete_wait(&instr.scheme_code, instr.nav_date, txn)
                    .await;
                return Ok(None);
            }
            if self.pending(inv, txn).await?.is_none() {
                self.delete_wait(&instr.scheme_code, instr.nav_date, txn)
                    .await;
                return Ok(None);
            }
            match self.execute(instr, None).await? {
                Exec::Committed { follow_up } => return Ok(follow_up.map(|p| *p)),
                Exec::NotReady => return Ok(None),
                Exec::Contended => continue,
            }
        }
        Err(HandlerError::Retryable(format!(
            "{txn}: still contended after {MAX_ATTEMPTS} attempts"
        )))
    }

    /// One attempt: price the leg at its NAV and commit lots + record(s) + event(s) (+ the
    /// removal of its pending, + the inbox marker) in one batch of the investor's partition.
    async fn execute(
        &self,
        instr: &Instruction,
        inbox: Option<&str>,
    ) -> Result<Exec, HandlerError> {
        let Some(nav) = self.nav(&instr.scheme_code, instr.nav_date).await? else {
            return Ok(Exec::NotReady);
        };
        let now = self.clock.now_ist();
        let inv = &instr.investor_id;
        let mut batch = Batch::new(LEDGER, inv);
        if let Some(event_id) = inbox {
            batch = batch.op(inbox_marker(GROUP, event_id));
        }
        if let Some((_, etag)) = self.pending(inv, &instr.transaction_id).await? {
            batch = batch.op(WriteOp::Delete {
                id: pending_id(&instr.transaction_id),
                if_match: Some(etag),
            });
        }
        let info = self.info(&instr.scheme_code).await?.unwrap_or_default();
        let (mut holding, etag) = self
            .holding(inv, &instr.scheme_code, info.amc.as_deref())
            .await?;
        // Holdings to write (with the ETag they were read at) and records to create.
        let mut changed: Vec<(Holding, Option<ETag>)> = Vec::new();
        let mut records: Vec<AllotmentRecord> = Vec::new();
        let mut follow_up = None;

        match &instr.action {
            Action::Purchase { amount, .. } => {
                let rounding = self.rules.rounding.for_amc(info.amc.as_deref());
                match holding.purchase(
                    &instr.transaction_id,
                    *amount,
                    nav.nav,
                    instr.nav_date,
                    rounding,
                ) {
                    Ok(f) => {
                        records.push(completed_record(instr, f, now));
                        changed.push((holding, etag));
                    }
                    Err(e) => records.push(failed_record(
                        instr,
                        purchase_failure(instr, e.to_string()),
                        now,
                    )),
                }
            }
            Action::Redeem { request, switch_to } => {
                let category = info
                    .category
                    .as_deref()
                    .or(instr.scheme_category.as_deref());
                let schedule = self
                    .rules
                    .exit_loads
                    .schedule_for(&instr.scheme_code, category);
                match holding.redeem(*request, nav.nav, instr.nav_date, schedule) {
                    Ok(f) => {
                        let proceeds = f.net_amount;
                        records.push(completed_record(instr, f, now));
                        changed.push((holding, etag));
                        if let Some(target) = switch_to {
                            let in_instr = switch_in_instruction(instr, target, proceeds);
                            match self.nav(&target.scheme_code, target.nav_date).await? {
                                Some(in_nav) => {
                                    let tinfo =
                                        self.info(&target.scheme_code).await?.unwrap_or_default();
                                    let (mut th, tetag) = self
                                        .holding(inv, &target.scheme_code, tinfo.amc.as_deref())
                                        .await?;
                                    let rounding =
                                        self.rules.rounding.for_amc(tinfo.amc.as_deref());
                                    match th.purchase(
                                        &in_instr.transaction_id,
                                        proceeds,
                                        in_nav.nav,
                                        in_instr.nav_date,
                                        rounding,
                                    ) {
                                        Ok(f) => {
                                            records.push(completed_record(&in_instr, f, now));
                                            changed.push((th, tetag));
                                        }
                                        Err(e) => records.push(failed_record(
                                            &in_instr,
                                            purchase_failure(&in_instr, e.to_string()),
                                            now,
                                        )),
                                    }
                                }
                                None => {
                                    let p = PendingAllotment {
                                        instruction: in_instr,
                                        waiting_since: now,
                                    };
                                    batch = batch.op(WriteOp::Create {
                                        id: pending_id(&p.instruction.transaction_id),
                                        body: to_body(&p)?,
                                        ttl: None,
                                    });
                                    follow_up = Some(Box::new(p));
                                }
                            }
                        }
                    }
                    Err(RedeemError::Insufficient(why)) => records.push(failed_record(
                        instr,
                        Failure {
                            reason_code: reason::INSUFFICIENT_UNITS.into(),
                            reason: why,
                            payment_id: None,
                            refund_amount: None,
                        },
                        now,
                    )),
                    Err(RedeemError::Invalid(why)) => records.push(failed_record(
                        instr,
                        Failure {
                            reason_code: reason::INVALID_ORDER.into(),
                            reason: why,
                            payment_id: None,
                            refund_amount: None,
                        },
                        now,
                    )),
                }
            }
        }

        for (h, etag) in &changed {
            let body = to_body(h)?;
            let id = lots_id(&h.scheme_code);
            batch = batch.op(match etag {
                Some(etag) => WriteOp::Replace {
                    id,
                    body,
                    if_match: etag.clone(),
                    ttl: None,
                },
                None => WriteOp::Create {
                    id,
                    body,
                    ttl: None,
                },
            });
        }
        for rec in &records {
            batch = batch.op(WriteOp::Create {
                id: record_id(&rec.transaction_id),
                body: to_body(rec)?,
                ttl: None,
            });
            batch = batch.emit(self.event_for(rec).await?);
        }
        match self.store.commit(batch).await {
            Ok(_) => {
                self.outbox_notify.notify_one();
                for rec in &records {
                    count_record(rec);
                }
                self.delete_wait(&instr.scheme_code, instr.nav_date, &instr.transaction_id)
                    .await;
                Ok(Exec::Committed { follow_up })
            }
            Err(e) if is_contention(&e) => {
                metrics::counter!("nivesh_allotment_contended_total").increment(1);
                Ok(Exec::Contended)
            }
            Err(e) => Err(retryable(e)),
        }
    }

    async fn event_for(
        &self,
        rec: &AllotmentRecord,
    ) -> Result<nivesh_store::OutboxMessage, HandlerError> {
        match (&rec.figures, &rec.failure) {
            (Some(f), _) => outbox_message(
                &self.codec,
                COMPLETED_TOPIC,
                &rec.investor_id,
                &completed_event(rec, f),
            )
            .await
            .map_err(retryable),
            (None, Some(f)) => outbox_message(
                &self.codec,
                FAILED_TOPIC,
                &rec.investor_id,
                &failed_event(rec, f),
            )
            .await
            .map_err(retryable),
            (None, None) => Err(HandlerError::Retryable(format!(
                "record {} has neither figures nor failure",
                rec.transaction_id
            ))),
        }
    }

    /// Refuses a leg at intake (inbox marker + FAILED record + `transaction.failed`).
    pub(crate) async fn reject(
        &self,
        instr: &Instruction,
        event_id: &str,
        failure: Failure,
    ) -> Result<(), HandlerError> {
        let rec = failed_record(instr, failure, self.clock.now_ist());
        let batch = Batch::new(LEDGER, &instr.investor_id)
            .op(inbox_marker(GROUP, event_id))
            .op(WriteOp::Create {
                id: record_id(&rec.transaction_id),
                body: to_body(&rec)?,
                ttl: None,
            })
            .emit(self.event_for(&rec).await?);
        match self.store.commit(batch).await {
            Ok(_) => {
                self.outbox_notify.notify_one();
                count_record(&rec);
                Ok(())
            }
            // Processed before (same event, or the same order from another event).
            Err(e) if is_contention(&e) => Ok(()),
            Err(e) => Err(retryable(e)),
        }
    }

    /// Fails a pending leg whose NAV never came (`NAV_NOT_AVAILABLE`; purchases carry the
    /// refund). `false` when the leg was no longer pending (executed or failed by someone else).
    pub(crate) async fn fail_waiting(
        &self,
        txn_investor: &str,
        txn: &str,
    ) -> Result<bool, HandlerError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some((p, etag)) = self.pending(txn_investor, txn).await? else {
                return Ok(false);
            };
            let i = &p.instruction;
            let (payment_id, refund_amount) = i.refund();
            let failure = Failure {
                reason_code: reason::NAV_NOT_AVAILABLE.into(),
                reason: format!(
                    "no NAV for scheme {} on {} was published within {} s",
                    i.scheme_code,
                    i.nav_date,
                    self.rules.nav_wait_limit.num_seconds()
                ),
                payment_id,
                refund_amount,
            };
            let rec = failed_record(i, failure, self.clock.now_ist());
            let batch = Batch::new(LEDGER, txn_investor)
                .op(WriteOp::Delete {
                    id: pending_id(txn),
                    if_match: Some(etag),
                })
                .op(WriteOp::Create {
                    id: record_id(txn),
                    body: to_body(&rec)?,
                    ttl: None,
                })
                .emit(self.event_for(&rec).await?);
            match self.store.commit(batch).await {
                Ok(_) => {
                    self.outbox_notify.notify_one();
                    count_record(&rec);
                    self.delete_wait(&i.scheme_code, i.nav_date, txn).await;
                    return Ok(true);
                }
                Err(e) if is_contention(&e) => continue,
                Err(e) => return Err(retryable(e)),
            }
        }
        Err(HandlerError::Retryable(format!(
            "{txn}: still contended after {MAX_ATTEMPTS} attempts"
        )))
    }
}

fn count_record(rec: &AllotmentRecord) {
    match &rec.failure {
        None => metrics::counter!("nivesh_allotments_total", "leg" => rec.leg.clone()).increment(1),
        Some(f) => {
            metrics::counter!("nivesh_allotment_failures_total", "reason" => f.reason_code.clone())
                .increment(1)
        }
    }
}
