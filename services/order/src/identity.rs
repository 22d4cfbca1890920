//! Investors as the onboarding service announces them, merged with the seeded registry.
//!
//! The `order` group consumes `investor.onboarded`, `kyc.verified` and `investor.erased` (all
//! keyed by investor id) into one document per investor, `orders/{investor id}/investor`
//! ([`KnownInvestor`]), written together with the inbox marker in one batch in the investor's
//! partition (ETag-guarded; a lost race re-reads and re-applies). The three topics are not
//! co-ordered and an event may come back from a retry tier late, so applying them is a join
//! that gives the same document whatever the order and however often each arrives:
//!
//! - **KYC status** follows onboarding's state machine, `PENDING → REGISTERED → VALIDATED |
//!   ON_HOLD | REJECTED`, `ON_HOLD → VALIDATED | REJECTED`, with VALIDATED and REJECTED final.
//!   A status only ever moves forward in that order, so the entry keeps the furthest status
//!   seen ([`rank`]); between two events of the same rank the later `verified_at` /
//!   `onboarded_at` wins (a newer ON_HOLD reason). A final status is never replaced: an
//!   ON_HOLD (or REGISTERED) arriving after VALIDATED is a reordered older event, because
//!   onboarding never emits a verdict after a final one.
//! - **Tenant and distributor** come from `investor.onboarded` (the other two carry the tenant,
//!   `investor.erased` the distributor too, and fill them in when they arrive first).
//! - **Erasure** is final: the name is dropped and never written again (a redelivered
//!   `investor.onboarded` does not bring it back); tenant and distributor stay, so the investor's
//!   order history remains readable by their distributor and admins, but nothing new is placed.
//!
//! Reads ([`OrderService::investor`]) go to the store every time (a point read in the
//! investor's partition): the store is the only source of truth across replicas, and there is
//! no cache that could keep answering "not verified" after the verdict arrived. The seeded
//! `config/investors.json` ([`crate::registry`]) is the bootstrap for the demo investors: a
//! stored entry overrides the file field by field (tenant, KYC; the distributor once
//! `investor.onboarded` named one).

use chrono::{DateTime, Utc};
use nivesh_bus::HandlerError;
use nivesh_events::{Event, InvestorErased, InvestorOnboarded, KycVerified, kyc_status};
use nivesh_store::{Batch, WriteOp, inbox_marker, is_inbox_conflict};
use serde::{Deserialize, Serialize};

use crate::GROUP;
use crate::model::ORDERS;
use crate::service::{Error, MAX_ATTEMPTS, OrderService, to_value};

/// The investor's identity document in their partition of `orders`.
pub(crate) const IDENTITY_DOC: &str = "investor";

/// What order knows of an investor from the onboarding service's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KnownInvestor {
    pub(crate) investor_id: String,
    pub(crate) tenant: String,
    /// Set by `investor.onboarded` (or `investor.erased`); `None` until then or when the
    /// investor onboarded themself.
    pub(crate) distributor_id: Option<String>,
    /// The investor's name (never after erasure).
    pub(crate) name: Option<String>,
    /// The furthest KYC status seen (`nivesh_events::kyc_status`); `None` when only the
    /// erasure is known.
    pub(crate) kyc_status: Option<String>,
    /// When that status was decided (`verified_at`, or `onboarded_at` for the status the
    /// onboarding event carried).
    pub(crate) kyc_status_at: Option<DateTime<Utc>>,
    pub(crate) kyc_reason: Option<String>,
    pub(crate) onboarded_at: Option<DateTime<Utc>>,
    pub(crate) erased_at: Option<DateTime<Utc>>,
}

/// One identity event, decoded.
#[derive(Debug)]
pub(crate) enum IdentityEvent {
    Onboarded(InvestorOnboarded),
    Kyc(KycVerified),
    Erased(InvestorErased),
}

impl IdentityEvent {
    pub(crate) fn investor_id(&self) -> &str {
        match self {
            IdentityEvent::Onboarded(e) => &e.investor_id,
            IdentityEvent::Kyc(e) => &e.investor_id,
            IdentityEvent::Erased(e) => &e.investor_id,
        }
    }

    fn tenant(&self) -> &str {
        match self {
            IdentityEvent::Onboarded(e) => &e.tenant,
            IdentityEvent::Kyc(e) => &e.tenant,
            IdentityEvent::Erased(e) => &e.tenant,
        }
    }

    fn event_id(&self) -> String {
        match self {
            IdentityEvent::Onboarded(e) => e.meta().event_id.to_string(),
            IdentityEvent::Kyc(e) => e.meta().event_id.to_string(),
            IdentityEvent::Erased(e) => e.meta().event_id.to_string(),
        }
    }
}

/// Position of a KYC status in onboarding's state machine; `None` for a status it does not
/// have. VALIDATED and REJECTED share the last rank: both are final.
pub(crate) fn rank(status: &str) -> Option<u8> {
    match status {
        kyc_status::PENDING => Some(0),
        kyc_status::REGISTERED => Some(1),
        kyc_status::ON_HOLD => Some(2),
        kyc_status::VALIDATED | kyc_status::REJECTED => Some(3),
        _ => None,
    }
}

fn is_final(status: &str) -> bool {
    matches!(status, kyc_status::VALIDATED | kyc_status::REJECTED)
}

impl KnownInvestor {
    fn new(investor_id: &str, tenant: &str) -> Self {
        KnownInvestor {
            investor_id: investor_id.to_string(),
            tenant: tenant.to_string(),
            distributor_id: None,
            name: None,
            kyc_status: None,
            kyc_status_at: None,
            kyc_reason: None,
            onboarded_at: None,
            erased_at: None,
        }
    }

    /// Applies one event (see the module doc for the rules). An unknown KYC status is refused:
    /// it is outside the contract, and guessing its place in the state machine could unblock
    /// an investor.
    pub(crate) fn apply(&mut self, event: &IdentityEvent) -> Result<(), String> {
        match event {
            IdentityEvent::Onboarded(e) => {
                self.tenant = e.tenant.clone();
                if e.distributor_id.is_some() {
                    self.distributor_id = e.distributor_id.clone();
                }
                if self.erased_at.is_none() && !e.name.is_empty() {
                    self.name = Some(e.name.clone());
                }
                self.onboarded_at = Some(e.onboarded_at);
                self.merge_status(&e.kyc_status, e.onboarded_at, None)
            }
            IdentityEvent::Kyc(e) => self.merge_status(&e.status, e.verified_at, e.reason.clone()),
            IdentityEvent::Erased(e) => {
                if self.distributor_id.is_none() {
                    self.distributor_id = e.distributor_id.clone();
                }
                self.name = None;
                // The first erasure time is kept: a redelivery changes nothing.
                if self.erased_at.is_none_or(|at| e.erased_at < at) {
                    self.erased_at = Some(e.erased_at);
                }
                Ok(())
            }
        }
    }

    fn merge_status(
        &mut self,
        status: &str,
        at: DateTime<Utc>,
        reason: Option<String>,
    ) -> Result<(), String> {
        let new = rank(status).ok_or_else(|| format!("unknown KYC status {status:?}"))?;
        let replace = match (self.kyc_status.as_deref(), self.kyc_status_at) {
            (None, _) => true,
            (Some(cur), _) if is_final(cur) => {
                if is_final(status) && status != cur {
                    tracing::warn!(investor = %self.investor_id, kept = cur, ignored = status,
                        "two different final KYC verdicts: the first one seen is kept");
                }
                false
            }
            (Some(cur), cur_at) => {
                let cur_rank = rank(cur).unwrap_or(0);
                new > cur_rank || (new == cur_rank && cur_at.is_none_or(|c| at > c))
            }
        };
        if replace {
            self.kyc_status = Some(status.to_string());
            self.kyc_status_at = Some(at);
            self.kyc_reason = reason;
        }
        Ok(())
    }
}

/// Whether an investor may place orders now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Standing {
    /// KYC VALIDATED (file: VERIFIED).
    Verified,
    /// Any other KYC status, as stored (e.g. `REGISTERED`, `ON_HOLD`, file `PENDING`).
    NotVerified(String),
    /// Personal data erased: refused whatever the KYC status.
    Erased,
}

/// The merged view of an investor: the seeded file overridden by the stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvestorView {
    pub(crate) tenant: String,
    pub(crate) distributor_id: Option<String>,
    pub(crate) standing: Standing,
}

/// The view of `file` (the registry's entry) and `stored` (the events' entry), either or both.
pub(crate) fn merge(
    file: Option<&crate::registry::Investor>,
    stored: Option<&KnownInvestor>,
) -> Option<InvestorView> {
    match (file, stored) {
        (None, None) => None,
        (Some(f), None) => Some(InvestorView {
            tenant: f.tenant.clone(),
            distributor_id: f.distributor_id.clone(),
            standing: if f.kyc_verified() {
                Standing::Verified
            } else {
                Standing::NotVerified(f.kyc_status.clone())
            },
        }),
        (file, Some(s)) => {
            let standing = if s.erased_at.is_some() {
                Standing::Erased
            } else {
                match s.kyc_status.as_deref() {
                    Some(kyc_status::VALIDATED) => Standing::Verified,
                    Some(other) => Standing::NotVerified(other.to_string()),
                    // Unreachable without erasure (every other event sets a status), but the
                    // file's answer is the safe fallback.
                    None => match file {
                        Some(f) if f.kyc_verified() => Standing::Verified,
                        Some(f) => Standing::NotVerified(f.kyc_status.clone()),
                        None => Standing::NotVerified(kyc_status::PENDING.to_string()),
                    },
                }
            };
            Some(InvestorView {
                tenant: s.tenant.clone(),
                distributor_id: s
                    .distributor_id
                    .clone()
                    .or_else(|| file.and_then(|f| f.distributor_id.clone())),
                standing,
            })
        }
    }
}

fn retryable(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retryable(e.to_string())
}

impl OrderService {
    /// The investor as order sees them now (file, overridden by the stored entry), or `None`.
    pub(crate) async fn investor(&self, investor_id: &str) -> Result<Option<InvestorView>, Error> {
        let stored = self
            .load::<KnownInvestor>(ORDERS, investor_id, IDENTITY_DOC)
            .await?
            .map(|(k, _)| k);
        Ok(merge(self.registry.get(investor_id), stored.as_ref()))
    }

    /// Applies one identity event: the entry and the inbox marker in one batch.
    pub(crate) async fn on_identity(&self, event: IdentityEvent) -> Result<(), HandlerError> {
        let investor = event.investor_id().to_string();
        let event_id = event.event_id();
        for _ in 0..MAX_ATTEMPTS {
            let current = self
                .load::<KnownInvestor>(ORDERS, &investor, IDENTITY_DOC)
                .await
                .map_err(retryable)?;
            let (mut entry, etag) = match current {
                Some((k, etag)) => (k, Some(etag)),
                None => (KnownInvestor::new(&investor, event.tenant()), None),
            };
            let before = entry.clone();
            entry.apply(&event).map_err(|reason| {
                HandlerError::Permanent(format!("identity event for {investor}: {reason}"))
            })?;
            let mut batch = Batch::new(ORDERS, &investor).op(inbox_marker(GROUP, &event_id));
            if entry != before || etag.is_none() {
                batch = batch.op(match etag {
                    Some(if_match) => WriteOp::Replace {
                        id: IDENTITY_DOC.into(),
                        body: to_value(&entry),
                        if_match,
                        ttl: None,
                    },
                    None => WriteOp::Create {
                        id: IDENTITY_DOC.into(),
                        body: to_value(&entry),
                        ttl: None,
                    },
                });
            }
            match self.store.commit(batch).await {
                Ok(_) => {
                    metrics::counter!("nivesh_order_identity_events_total",
                        "result" => if entry != before { "applied" } else { "unchanged" })
                    .increment(1);
                    tracing::info!(investor = %investor, kyc_status = ?entry.kyc_status,
                        erased = entry.erased_at.is_some(), "investor identity updated");
                    return Ok(());
                }
                Err(err) if is_inbox_conflict(&err, GROUP, &event_id) => {
                    metrics::counter!("nivesh_inbox_duplicates_total", "group" => GROUP)
                        .increment(1);
                    return Ok(());
                }
                // Another event of this investor (another topic's worker) wrote first.
                Err(nivesh_store::Error::PreconditionFailed { .. })
                | Err(nivesh_store::Error::Conflict { .. }) => continue,
                Err(err) => return Err(retryable(err)),
            }
        }
        Err(HandlerError::Retryable(format!(
            "investor {investor}'s identity kept changing under the consumer"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use nivesh_events::EventMeta;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_740_000_000 + s, 0).unwrap()
    }

    fn onboarded(status: &str, at: i64) -> IdentityEvent {
        IdentityEvent::Onboarded(InvestorOnboarded {
            meta: EventMeta::new::<InvestorOnboarded>("onboarding", None),
            investor_id: "INVX1".into(),
            tenant: "nivesh".into(),
            distributor_id: Some("DST009".into()),
            pan_masked: "XXXXXX234F".into(),
            name: "Asha Verma".into(),
            kyc_status: status.into(),
            onboarded_at: t(at),
        })
    }

    fn kyc(status: &str, at: i64) -> IdentityEvent {
        IdentityEvent::Kyc(KycVerified {
            meta: EventMeta::new::<KycVerified>("onboarding", None),
            investor_id: "INVX1".into(),
            tenant: "nivesh".into(),
            status: status.into(),
            kra_reference: "KRA1".into(),
            verified_at: t(at),
            reason: (status == kyc_status::ON_HOLD).then(|| format!("hold at {at}")),
        })
    }

    fn erased(at: i64) -> IdentityEvent {
        IdentityEvent::Erased(InvestorErased {
            meta: EventMeta::new::<InvestorErased>("onboarding", None),
            investor_id: "INVX1".into(),
            tenant: "nivesh".into(),
            distributor_id: Some("DST009".into()),
            erased_by: "admin-1".into(),
            erased_at: t(at),
        })
    }

    fn fold(events: &[&IdentityEvent]) -> KnownInvestor {
        let mut k = KnownInvestor::new("INVX1", "nivesh");
        for e in events {
            k.apply(e).unwrap();
        }
        k
    }

    /// Every order of registered → on hold → validated gives the same entry: VALIDATED.
    #[test]
    fn any_order_of_the_state_machine_ends_validated() {
        let (a, b, c) = (
            onboarded("REGISTERED", 0),
            kyc("ON_HOLD", 10),
            kyc("VALIDATED", 20),
        );
        let orders: [[&IdentityEvent; 3]; 6] = [
            [&a, &b, &c],
            [&a, &c, &b],
            [&b, &a, &c],
            [&b, &c, &a],
            [&c, &a, &b],
            [&c, &b, &a],
        ];
        let first = fold(&orders[0]);
        assert_eq!(first.kyc_status.as_deref(), Some("VALIDATED"));
        assert_eq!(first.distributor_id.as_deref(), Some("DST009"));
        for o in &orders {
            assert_eq!(fold(o), first, "order {o:?}");
            // Redelivering everything again changes nothing.
            let mut twice = fold(o);
            for e in o {
                twice.apply(e).unwrap();
            }
            assert_eq!(twice, first);
        }
    }

    /// REJECTED is final too; a newer ON_HOLD replaces an older one (its reason), never the
    /// reverse.
    #[test]
    fn finals_stay_and_later_holds_win() {
        let k = fold(&[
            &kyc("REJECTED", 5),
            &kyc("ON_HOLD", 9),
            &onboarded("REGISTERED", 0),
        ]);
        assert_eq!(k.kyc_status.as_deref(), Some("REJECTED"));
        let k = fold(&[&kyc("ON_HOLD", 9), &kyc("ON_HOLD", 5)]);
        assert_eq!(k.kyc_reason.as_deref(), Some("hold at 9"));
        let mut k = KnownInvestor::new("INVX1", "nivesh");
        assert!(k.apply(&kyc("MAYBE", 1)).is_err());
    }

    /// Erasure drops the name for good and blocks the investor whatever the status.
    #[test]
    fn erasure_is_final() {
        let k = fold(&[
            &kyc("VALIDATED", 5),
            &erased(30),
            &onboarded("REGISTERED", 0),
        ]);
        assert_eq!(k.name, None);
        assert_eq!(k.erased_at, Some(t(30)));
        assert_eq!(k.distributor_id.as_deref(), Some("DST009"));
        let view = merge(None, Some(&k)).unwrap();
        assert_eq!(view.standing, Standing::Erased);
    }

    /// The file is the bootstrap; a stored entry overrides it, keeping the file's distributor
    /// until an event names one.
    #[test]
    fn stored_entries_override_the_file() {
        let reg = crate::registry::InvestorRegistry::from_json(
            r#"{"investors":[{"investorId":"INVX1","name":"a","pan":"x","kycStatus":"VERIFIED",
                "distributorId":"DST001"}]}"#,
        )
        .unwrap();
        let file = reg.get("INVX1");
        assert_eq!(merge(file, None).unwrap().standing, Standing::Verified);
        let held = fold(&[&kyc("ON_HOLD", 1)]);
        let view = merge(file, Some(&held)).unwrap();
        assert_eq!(view.standing, Standing::NotVerified("ON_HOLD".into()));
        assert_eq!(view.distributor_id.as_deref(), Some("DST001"));
        let onb = fold(&[&onboarded("VALIDATED", 1)]);
        let view = merge(file, Some(&onb)).unwrap();
        assert_eq!(
            (view.standing, view.distributor_id.as_deref()),
            (Standing::Verified, Some("DST009"))
        );
        assert_eq!(merge(None, None), None);
    }
}
