//! SIPs: the schedule (pure), the runner that turns due instalments into `SIP_INSTALMENT`
//! orders, and the daily task that runs it on the business clock.
//!
//! Exactly one order per (SIP id, instalment number), however often or concurrently the runner
//! runs: the order id is a UUID v5 of `"{sipId}:{instalmentNo}"`, and the batch that creates
//! the order also advances the SIP document with its ETag. A second runner that read the same
//! SIP fails on the ETag (or on the order's `Create`) and re-reads the SIP, which by then points
//! at the next instalment.

use std::time::Duration;

use chrono::{Datelike, Months, NaiveDate};
use nivesh_events::{EventMeta, OrderFailed};
use nivesh_store::{Batch, IdRange, WriteOp};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::identity::Standing;
use crate::model::{
    Failure, IndexEntry, Locator, ORDER_LOCATORS, ORDERS, Order, OrderKind, OrderStatus, SIP_INDEX,
    Sip, SipInstalment, SipStatus, TimelineEntry, index_doc_id, ist_now, order_doc_id, sip_doc_id,
    sip_index_partition,
};
use crate::place::placed_event;
use crate::service::{Error, MAX_ATTEMPTS, OrderService, to_value};
use crate::{GROUP, ORDER_FAILED_TOPIC, ORDER_PLACED_TOPIC};

/// Namespace of instalment order ids (UUID v5): fixed forever, or ids would change.
const INSTALMENT_NAMESPACE: Uuid = Uuid::from_u128(0x6e69_7665_7368_4000_8000_7369_7069_6e73);

/// Index documents read per page while scanning.
const PAGE: usize = 500;

/// The first instalment date: `day_of_month` in the start month, or the next month when the
/// start date is past that day.
pub(crate) fn first_due(start: NaiveDate, day_of_month: u32) -> NaiveDate {
    let this_month = start.with_day(day_of_month).unwrap_or(start);
    if this_month >= start {
        this_month
    } else {
        this_month
            .checked_add_months(Months::new(1))
            .unwrap_or(this_month)
    }
}

/// The due date of instalment `n` (1-based). `day_of_month` is 1..=28, so every month has it.
pub(crate) fn due_date(start: NaiveDate, day_of_month: u32, n: u32) -> Option<NaiveDate> {
    first_due(start, day_of_month).checked_add_months(Months::new(n.checked_sub(1)?))
}

/// The order id of instalment `n` of a SIP: the same on every run.
pub(crate) fn instalment_order_id(sip_id: &str, n: u32) -> String {
    Uuid::new_v5(&INSTALMENT_NAMESPACE, format!("{sip_id}:{n}").as_bytes()).to_string()
}

/// Moves a SIP past its next instalment (recorded as `order_id` with `status`).
pub(crate) fn advance(sip: &mut Sip, order_id: String, status: OrderStatus) {
    let n = sip.next_instalment_no;
    let due = sip
        .next_instalment_date
        .unwrap_or_else(|| first_due(sip.start_date, sip.day_of_month));
    sip.instalment_orders.push(SipInstalment {
        instalment_no: n,
        due_date: due,
        order_id,
        status,
    });
    sip.next_instalment_no = n + 1;
    if sip.instalments.is_some_and(|count| n >= count) {
        sip.status = SipStatus::Completed;
        sip.next_instalment_date = None;
    } else {
        sip.next_instalment_date = due_date(sip.start_date, sip.day_of_month, n + 1);
    }
}

/// What one run did (`POST /v1/sips/run`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SipRunReport {
    pub as_of: Option<NaiveDate>,
    /// SIPs looked at.
    pub sips_checked: u64,
    /// Instalment orders placed (`order.placed`).
    pub instalments_placed: u64,
    /// Instalments recorded as FAILED at placement (KYC or scheme no longer allows it; `order.failed`).
    pub instalments_failed: u64,
}

impl OrderService {
    /// Places every instalment due on or before `as_of`, for every SIP.
    pub(crate) async fn run_sips(&self, as_of: NaiveDate) -> Result<SipRunReport, Error> {
        let mut report = SipRunReport {
            as_of: Some(as_of),
            ..Default::default()
        };
        for dom in 1..=28 {
            let partition = sip_index_partition(dom);
            let mut from: Option<String> = None;
            loop {
                let docs = self
                    .store
                    .query_partition(
                        SIP_INDEX,
                        &partition,
                        IdRange {
                            from: from.clone(),
                            to: None,
                            limit: Some(PAGE),
                            descending: false,
                        },
                    )
                    .await?;
                let full = docs.len() == PAGE;
                let last = docs.last().map(|d| d.id.clone());
                // `from` is inclusive: the previous page's last id comes back first.
                let page: Vec<_> = docs
                    .into_iter()
                    .filter(|d| Some(&d.id) != from.as_ref())
                    .collect();
                for doc in page {
                    let Ok(loc) = serde_json::from_value::<Locator>(doc.body) else {
                        tracing::warn!(sip_id = %doc.id, "unreadable SIP index entry skipped");
                        continue;
                    };
                    report.sips_checked += 1;
                    self.run_sip(&loc.investor_id, &doc.id, as_of, &mut report)
                        .await?;
                }
                if !full {
                    break;
                }
                from = last;
            }
        }
        Ok(report)
    }

    /// Places the due instalments of one SIP.
    async fn run_sip(
        &self,
        investor: &str,
        sip_id: &str,
        as_of: NaiveDate,
        report: &mut SipRunReport,
    ) -> Result<(), Error> {
        let mut contended = 0;
        loop {
            let Some((sip, etag)) = self
                .load::<Sip>(ORDERS, investor, &sip_doc_id(sip_id))
                .await?
            else {
                // An index entry whose registration batch never committed.
                return Ok(());
            };
            let Some(due) = sip.next_instalment_date else {
                return Ok(());
            };
            if sip.status != SipStatus::Active || due > as_of {
                return Ok(());
            }
            let n = sip.next_instalment_no;
            let order_id = instalment_order_id(&sip.sip_id, n);
            let failure = self.instalment_failure(&sip).await?;
            let scheme = self.scheme(&sip.scheme_code).await?;
            let placed_at = ist_now(self.clock.now());
            let mut order = Order {
                order_id: order_id.clone(),
                investor_id: investor.to_string(),
                kind: OrderKind::SipInstalment,
                scheme_code: sip.scheme_code.clone(),
                scheme_name: sip.scheme_name.clone(),
                scheme_category: scheme.as_ref().and_then(|s| s.category.clone()),
                target_scheme_code: None,
                target_scheme_category: None,
                amount: Some(sip.amount),
                units: None,
                all_units: false,
                payment_instrument: Some(sip.payment_instrument.clone()),
                sip_id: Some(sip.sip_id.clone()),
                instalment_no: Some(n),
                instalment_due_date: Some(due),
                status: OrderStatus::Placed,
                timeline: vec![],
                failure: None,
                placed_at,
                applicable_nav_date: None,
                locked_units: None,
                payment_id: None,
                allotments: vec![],
            };
            let mut next = sip.clone();
            let mut batch = Batch::new(ORDERS, investor);
            match &failure {
                None => {
                    order.timeline.push(TimelineEntry {
                        status: OrderStatus::Placed.as_str().into(),
                        at: placed_at,
                        detail: format!("SIP instalment {n} (due {due}) of ₹{}", sip.amount),
                    });
                    advance(&mut next, order_id.clone(), OrderStatus::Placed);
                    let event = placed_event(&order, Some(format!("sip:{}:{n}", sip.sip_id)), None);
                    batch = batch.emit(self.outbox(ORDER_PLACED_TOPIC, investor, &event).await?);
                }
                Some(f) => {
                    order.status = OrderStatus::Failed;
                    order.failure = Some(f.clone());
                    order.timeline.push(TimelineEntry {
                        status: OrderStatus::Failed.as_str().into(),
                        at: placed_at,
                        detail: format!("SIP instalment {n} (due {due}) not placed: {}", f.reason),
                    });
                    advance(&mut next, order_id.clone(), OrderStatus::Failed);
                    let event = OrderFailed {
                        meta: EventMeta::new::<OrderFailed>(
                            GROUP,
                            Some(format!("sip:{}:{n}", sip.sip_id)),
                        ),
                        order_id: order_id.clone(),
                        investor_id: investor.to_string(),
                        order_kind: OrderKind::SipInstalment.as_str().into(),
                        scheme_code: sip.scheme_code.clone(),
                        stage: f.stage.clone(),
                        reason_code: f.code.clone(),
                        reason: f.reason.clone(),
                        payment_id: None,
                        refund_amount: None,
                    };
                    batch = batch.emit(self.outbox(ORDER_FAILED_TOPIC, investor, &event).await?);
                }
            }
            batch = batch
                .op(WriteOp::Replace {
                    id: sip_doc_id(sip_id),
                    body: to_value(&next),
                    if_match: etag,
                    ttl: None,
                })
                .op(WriteOp::Create {
                    id: order_doc_id(&order_id),
                    body: to_value(&order),
                    ttl: None,
                })
                .op(WriteOp::Create {
                    id: index_doc_id(placed_at, &order_id),
                    body: to_value(&IndexEntry {
                        order_id: order_id.clone(),
                    }),
                    ttl: None,
                });
            self.write_locator(ORDER_LOCATORS, &order_id, investor)
                .await?;
            match self.store.commit(batch).await {
                Ok(_) => {
                    self.outbox_notify.notify_one();
                    let outcome = if failure.is_none() {
                        report.instalments_placed += 1;
                        "placed"
                    } else {
                        report.instalments_failed += 1;
                        "failed"
                    };
                    metrics::counter!("nivesh_sip_instalments_total", "outcome" => outcome)
                        .increment(1);
                    let status = if failure.is_none() {
                        "PLACED"
                    } else {
                        "FAILED"
                    };
                    metrics::counter!("nivesh_orders_total", "kind" => OrderKind::SipInstalment.as_str(), "status" => status)
                        .increment(1);
                }
                // Another runner placed this instalment (or touched the SIP) first: re-read.
                Err(nivesh_store::Error::PreconditionFailed { .. })
                | Err(nivesh_store::Error::Conflict { .. }) => {
                    contended += 1;
                    if contended > MAX_ATTEMPTS * 4 {
                        return Err(Error::Store(nivesh_store::Error::Unavailable(format!(
                            "SIP {sip_id} kept changing under the runner"
                        ))));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Why an instalment cannot be placed now (investor or scheme no longer allows it).
    async fn instalment_failure(&self, sip: &Sip) -> Result<Option<Failure>, Error> {
        let failure = |code: &str, reason: String| {
            Some(Failure {
                stage: "VALIDATION".into(),
                code: code.into(),
                reason,
            })
        };
        match self.investor(&sip.investor_id).await?.map(|v| v.standing) {
            None => {
                return Ok(failure(
                    "UNKNOWN_INVESTOR",
                    format!("investor {} is not registered", sip.investor_id),
                ));
            }
            Some(Standing::NotVerified(status)) => {
                return Ok(failure(
                    "KYC_NOT_VERIFIED",
                    format!("KYC status is {status}, a verified KYC (VALIDATED) is required"),
                ));
            }
            Some(Standing::Erased) => {
                return Ok(failure(
                    "INVESTOR_ERASED",
                    "the investor's personal data was erased (DPDP)".to_string(),
                ));
            }
            Some(Standing::Verified) => {}
        }
        Ok(match self.scheme(&sip.scheme_code).await? {
            None => failure(
                "SCHEME_UNKNOWN",
                format!("scheme {} is unknown", sip.scheme_code),
            ),
            Some(s) if !self.is_open(&s) => failure(
                "SCHEME_CLOSED",
                format!("scheme {} is not open for purchases", sip.scheme_code),
            ),
            Some(_) => None,
        })
    }
}

/// The daily task: every `interval`, place what is due up to today's business date. Running
/// more often than daily is harmless (nothing is placed twice) and picks a new day up quickly.
pub(crate) async fn scheduler(
    svc: std::sync::Arc<OrderService>,
    interval: Duration,
    shutdown: CancellationToken,
) -> Result<(), String> {
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let today = svc.clock.today_ist();
        match svc.run_sips(today).await {
            Ok(r) if r.instalments_placed + r.instalments_failed > 0 => tracing::info!(
                as_of = %today,
                placed = r.instalments_placed,
                failed = r.instalments_failed,
                "SIP instalments placed"
            ),
            Ok(_) => {}
            // A store hiccup must not stop the service: the next tick catches up.
            Err(e) => tracing::warn!(error = %e, "SIP run failed; retrying at the next tick"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nivesh_domain::Amount;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// The first instalment is in the start month when its day is still ahead, else next month.
    #[test]
    fn first_due_dates() {
        assert_eq!(first_due(d(2025, 2, 25), 25), d(2025, 2, 25));
        assert_eq!(first_due(d(2025, 2, 25), 28), d(2025, 2, 28));
        assert_eq!(first_due(d(2025, 2, 25), 5), d(2025, 3, 5));
        assert_eq!(first_due(d(2025, 12, 20), 1), d(2026, 1, 1));
    }

    /// Later instalments fall on the same day of each following month, across year ends.
    #[test]
    fn due_dates() {
        assert_eq!(due_date(d(2025, 11, 10), 5, 1), Some(d(2025, 12, 5)));
        assert_eq!(due_date(d(2025, 11, 10), 5, 2), Some(d(2026, 1, 5)));
        assert_eq!(due_date(d(2025, 1, 1), 28, 2), Some(d(2025, 2, 28)));
        assert_eq!(due_date(d(2025, 1, 1), 28, 0), None);
    }

    /// Instalment order ids are deterministic per (sip, n) and distinct across both.
    #[test]
    fn instalment_ids() {
        let a = instalment_order_id("sip-1", 1);
        assert_eq!(a, instalment_order_id("sip-1", 1));
        assert_ne!(a, instalment_order_id("sip-1", 2));
        assert_ne!(a, instalment_order_id("sip-2", 1));
        assert_eq!(Uuid::parse_str(&a).unwrap().get_version_num(), 5);
        assert!(nivesh_domain::OrderId::parse(&a).is_ok());
    }

    /// Advancing records the instalment and completes the SIP after its last one.
    #[test]
    fn advance_completes_after_count() {
        let mut sip = Sip {
            sip_id: "s".into(),
            investor_id: "INV0001".into(),
            scheme_code: "119551".into(),
            scheme_name: None,
            amount: Amount::parse("1000.00").unwrap(),
            day_of_month: 5,
            start_date: d(2025, 2, 25),
            instalments: Some(2),
            payment_instrument: "a@okicici".into(),
            status: SipStatus::Active,
            next_instalment_no: 1,
            next_instalment_date: Some(d(2025, 3, 5)),
            registered_at: ist_now(chrono::Utc::now()),
            instalment_orders: vec![],
        };
        advance(&mut sip, "o1".into(), OrderStatus::Placed);
        assert_eq!(sip.next_instalment_no, 2);
        assert_eq!(sip.next_instalment_date, Some(d(2025, 4, 5)));
        assert_eq!(sip.status, SipStatus::Active);
        advance(&mut sip, "o2".into(), OrderStatus::Failed);
        assert_eq!(sip.status, SipStatus::Completed);
        assert_eq!(sip.next_instalment_date, None);
        assert_eq!(sip.instalment_orders.len(), 2);
        assert_eq!(sip.instalment_orders[1].due_date, d(2025, 4, 5));
        assert_eq!(sip.instalment_orders[1].status, OrderStatus::Failed);
    }
}
