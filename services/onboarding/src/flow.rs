//! The onboarding engine the API shares: onboard, submit to the KRA, apply the KRA's verdict,
//! erase; plus reads (masked views through the cache) and leads.
//!
//! Every change of an investor record is an ETag-guarded Replace plus the event it causes in
//! ONE batch in the investor's partition (transactional outbox). A lost ETag race re-reads and
//! re-decides, so each event is emitted once:
//! - `investor.onboarded`: when the KRA accepts the registration (`onboarded_at` marks it);
//! - `kyc.verified`: per verdict change (PENDING/REGISTERED/ON_HOLD → VALIDATED/ON_HOLD/REJECTED);
//!   VALIDATED and REJECTED are final, later callbacks are acknowledged and ignored;
//! - `investor.erased`: once, when the record is erased.
//!
//! Onboarding first claims the PAN ([`crate::claims`]): one investor per PAN per tenant, which
//! makes a retried or duplicated `POST /v1/investors` answer the same investor.
//!
//! Nothing here logs or emits a PAN (only masked) or any Aadhaar digit.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use nivesh_domain::time::Clock;
use nivesh_events::{AvroCodec, Event, EventMeta, InvestorErased, InvestorOnboarded, KycVerified};
use nivesh_runtime::outbox::outbox_message;
use nivesh_store::{Batch, Cache, DocumentStore, ETag, IdRange, OutboxMessage, WriteOp};
use tokio::sync::Notify;

use crate::claims::{CLAIM_ID, PAN_CLAIMS, PanClaim, PanIndex};
use crate::kra::{KraCallback, KraClient, KraError};
use crate::model::{
    InvestorRecord, InvestorView, KycState, KycStatus, LeadRecord, RecordStatus, ValidInvestor,
    ValidLead, mask_account,
};
use crate::provisioner::{CredentialProvisioner, CredentialRequest};
use crate::vault::{SensitiveData, Vault, VaultError};

/// Investor records (and provisioning requests): partition = investor id.
pub const INVESTORS: &str = "investors";
/// Which investors a distributor onboarded: partition = distributor id, id = investor id.
pub const DISTRIBUTOR_INDEX: &str = "distributor_investors";
/// Leads: partition = distributor id.
pub const LEADS: &str = "leads";
pub const RECORD_ID: &str = "investor";
pub const PRODUCER: &str = "onboarding";

pub const ONBOARDED_TOPIC: &str = "investor.onboarded";
pub const KYC_TOPIC: &str = "kyc.verified";
pub const ERASED_TOPIC: &str = "investor.erased";

/// Counter: KYC verdicts applied, by `status`.
pub const VERDICTS: &str = "nivesh_onboarding_kyc_verdicts_total";

const MAX_RACES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("store: {0}")]
    Store(#[from] nivesh_store::Error),
    #[error("no investor {0}")]
    NotFound(String),
    #[error("stored investor {0} is unreadable: {1}")]
    Corrupt(String, String),
    #[error("investor {0} kept changing under concurrent updates")]
    Contention(String),
    #[error("encoding event: {0}")]
    Encode(String),
    #[error("vault: {0}")]
    Vault(#[from] VaultError),
    #[error("investor {0} was erased")]
    Erased(String),
    #[error(transparent)]
    Kra(#[from] KraError),
    #[error("callback status {0:?} is not a KRA verdict (VALIDATED, ON_HOLD, REJECTED)")]
    BadStatus(String),
    #[error("credential provisioning failed: {0}")]
    Provisioning(String),
    /// The PAN is claimed by another distributor (or caller) of the tenant.
    #[error("an investor with this PAN is already registered")]
    PanTaken,
}

/// What [`Onboarding::onboard`] did.
#[derive(Debug, Clone)]
pub struct Onboarded {
    pub record: InvestorRecord,
    /// `true`: the PAN's investor existed already (a retry or duplicate); nothing new created.
    pub replay: bool,
}

/// What a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    Applied(KycStatus),
    /// Same verdict again, or a verdict after a final one, or an erased investor.
    Duplicate,
}

/// Everything onboarding needs. Cheap to clone.
#[derive(Clone)]
pub struct Onboarding {
    pub store: Arc<dyn DocumentStore>,
    pub cache: Arc<dyn Cache>,
    pub codec: AvroCodec,
    pub outbox_notify: Arc<Notify>,
    pub vault: Vault,
    /// Keyed hashing of PANs for the uniqueness claims.
    pub pan_index: PanIndex,
    pub kra: KraClient,
    pub provisioner: Arc<dyn CredentialProvisioner>,
    /// The business clock.
    pub clock: Arc<dyn Clock>,
    pub adult_age_years: u32,
    /// `None`: the masked view is not cached.
    pub view_ttl: Option<Duration>,
}

/// The cache key of an investor's masked view (the cache adds the service's key prefix).
pub fn view_key(investor_id: &str) -> String {
    format!("onboarding:investor-view:{investor_id}")
}

/// The wire carries microseconds; truncate so the event round-trips unchanged.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

impl Onboarding {
    pub async fn load(
        &self,
        investor_id: &str,
    ) -> Result<Option<(InvestorRecord, ETag)>, FlowError> {
        let Some(doc) = self.store.get(INVESTORS, investor_id, RECORD_ID).await? else {
            return Ok(None);
        };
        let record = serde_json::from_value(doc.body)
            .map_err(|e| FlowError::Corrupt(investor_id.to_string(), e.to_string()))?;
        Ok(Some((record, doc.etag)))
    }

    /// The masked view, from the cache when present (a cache failure only costs a store read).
    pub async fn view(&self, investor_id: &str) -> Result<Option<InvestorView>, FlowError> {
        let key = view_key(investor_id);
        if self.view_ttl.is_some() {
            match self.cache.get(&key).await {
                Ok(Some(bytes)) => {
                    if let Ok(v) = serde_json::from_slice::<InvestorView>(&bytes) {
                        return Ok(Some(v));
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "investor view cache unavailable"),
            }
        }
        let Some((record, _)) = self.load(investor_id).await? else {
            return Ok(None);
        };
        let view = record.view();
        if let Some(ttl) = self.view_ttl {
            let bytes = serde_json::to_vec(&view).expect("a view serializes");
            if let Err(e) = self.cache.set(&key, &bytes, Some(ttl)).await {
                tracing::warn!(error = %e, "investor view not cached");
            }
        }
        Ok(Some(view))
    }

    async fn invalidate(&self, investor_id: &str) {
        if self.view_ttl.is_some()
            && let Err(e) = self.cache.delete(&view_key(investor_id)).await
        {
            tracing::warn!(error = %e, investor_id, "investor view not invalidated; it expires with its TTL");
        }
    }

    /// Onboard an investor: claim the PAN (one investor per PAN per tenant), store the investor
    /// (sensitive data sealed in the vault) and submit it to the KRA. A KRA outage leaves the
    /// investor PENDING (resubmit with [`Onboarding::submit_kyc`]).
    ///
    /// The PAN claim makes the call idempotent: a retry or duplicate by the claim's owner (same
    /// distributor, or same caller when there is no distributor) answers the claimed investor
    /// ([`Onboarded::replay`]), finishing whatever the first attempt left undone (the record, the
    /// KRA submission); anyone else gets [`FlowError::PanTaken`]. A claim whose investor was
    /// erased is released and the PAN claimed afresh.
    pub async fn onboard(
        &self,
        tenant: &str,
        created_by: &str,
        distributor_id: Option<String>,
        v: ValidInvestor,
    ) -> Result<Onboarded, FlowError> {
        let claim_key = self.pan_index.claim_key(tenant, v.pan.expose());
        for _ in 0..MAX_RACES {
            let now = self.clock.now();
            let claim = PanClaim {
                kind: "pan-claim".into(),
                investor_id: format!("inv-{}", uuid::Uuid::now_v7().simple()),
                tenant: tenant.to_string(),
                distributor_id: distributor_id.clone(),
                created_by: created_by.to_string(),
                created_at: now,
            };
            let batch = Batch::new(PAN_CLAIMS, &claim_key).op(WriteOp::Create {
                id: CLAIM_ID.into(),
                body: serde_json::to_value(&claim).expect("a claim serializes"),
                ttl: None,
            });
            match self.store.commit(batch).await {
                Ok(_) => {
                    return self
                        .create(
                            &claim.investor_id,
                            &claim_key,
                            tenant,
                            created_by,
                            distributor_id,
                            v,
                        )
                        .await;
                }
                Err(nivesh_store::Error::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            // The PAN is claimed already.
            let Some(doc) = self.store.get(PAN_CLAIMS, &claim_key, CLAIM_ID).await? else {
                continue; // released meanwhile (erasure): claim again
            };
            let existing: PanClaim = serde_json::from_value(doc.body)
                .map_err(|e| FlowError::Corrupt(format!("pan claim {claim_key}"), e.to_string()))?;
            let record = self.load(&existing.investor_id).await?.map(|(r, _)| r);
            if let Some(r) = &record
                && r.status == RecordStatus::Erased
            {
                // A stale claim (erasure stopped before releasing it): release and claim again.
                let released = Batch::new(PAN_CLAIMS, &claim_key).op(WriteOp::Delete {
                    id: CLAIM_ID.into(),
                    if_match: Some(doc.etag),
                });
                match self.store.commit(released).await {
                    Ok(_)
                    | Err(
                        nivesh_store::Error::NotFound { .. }
                        | nivesh_store::Error::PreconditionFailed { .. },
                    ) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            // The owner: the same distributor; without one (an admin onboarding for nobody),
            // the same caller.
            let owner = existing.tenant == tenant
                && existing.distributor_id == distributor_id
                && (distributor_id.is_some() || existing.created_by == created_by);
            if !owner {
                tracing::info!(
                    pan = %v.pan,
                    distributor_id = distributor_id.as_deref().unwrap_or("-"),
                    "onboarding refused: the PAN is registered by someone else"
                );
                return Err(FlowError::PanTaken);
            }
            return match record {
                Some(r) => {
                    tracing::info!(investor_id = %r.investor_id, "onboarding replayed (same PAN, same owner)");
                    Ok(Onboarded {
                        record: self.finish(r).await?,
                        replay: true,
                    })
                }
                // Claimed but the record was never written (a crash, or a concurrent attempt
                // still sealing): carry on under the claimed investor id.
                None => {
                    self.create(
                        &existing.investor_id,
                        &claim_key,
                        tenant,
                        created_by,
                        existing.distributor_id.clone(),
                        v,
                    )
                    .await
                }
            };
        }
        Err(FlowError::Contention(format!("pan claim {claim_key}")))
    }

    /// Store the investor under its claimed id. Every step tolerates a previous or concurrent
    /// attempt for the same claim: an existing vault entry is reused (it holds the same PAN),
    /// an existing index entry kept, and an existing record answered as a replay.
    async fn create(
        &self,
        investor_id: &str,
        claim_key: &str,
        tenant: &str,
        created_by: &str,
        distributor_id: Option<String>,
        v: ValidInvestor,
    ) -> Result<Onboarded, FlowError> {
        let now = self.clock.now();
        let sensitive = SensitiveData {
            pan: v.pan.expose().to_string(),
            aadhaar: v.aadhaar.as_ref().map(|a| a.expose().to_string()),
            date_of_birth: v.date_of_birth,
            bank_account_number: v.account_number.clone(),
        };
        let token = match self.vault.seal(investor_id, &sensitive, now).await {
            Ok(token) => token,
            Err(VaultError::Store(nivesh_store::Error::Conflict { .. })) => {
                self.vault
                    .entry(investor_id)
                    .await?
                    .ok_or(VaultError::NotFound)?
                    .token
            }
            Err(e) => return Err(e.into()),
        };
        drop(sensitive);
        if let Some(d) = &distributor_id {
            let batch = Batch::new(DISTRIBUTOR_INDEX, d).op(WriteOp::Create {
                id: investor_id.to_string(),
                body: serde_json::json!({
                    "kind": "distributor-investor",
                    "investor_id": investor_id,
                    "tenant": tenant,
                    "created_at": now,
                }),
                ttl: None,
            });
            match self.store.commit(batch).await {
                Ok(_) | Err(nivesh_store::Error::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let record = InvestorRecord {
            kind: "investor".into(),
            investor_id: investor_id.to_string(),
            tenant: tenant.to_string(),
            distributor_id,
            created_by: created_by.to_string(),
            status: RecordStatus::Active,
            name: Some(v.name),
            pan_masked: Some(v.pan.masked()),
            minor: v.minor,
            guardian: v.guardian,
            contact: Some(v.contact),
            ifsc: Some(v.ifsc),
            account_type: Some(v.account_type),
            account_masked: Some(mask_account(&v.account_number)),
            nominees: v.nominees,
            aadhaar_masked: v.aadhaar.as_ref().map(|a| a.masked()),
            vault_token: Some(token),
            pan_claim: Some(claim_key.to_string()),
            kyc: KycState {
                status: KycStatus::Pending,
                kra_reference: None,
                reason: None,
                updated_at: now,
            },
            credential_requested_at: None,
            onboarded_at: None,
            created_at: now,
            updated_at: now,
            erased_at: None,
            erased_by: None,
        };
        let batch = Batch::new(INVESTORS, investor_id).op(WriteOp::Create {
            id: RECORD_ID.into(),
            body: serde_json::to_value(&record).expect("a record serializes"),
            ttl: None,
        });
        let replay = match self.store.commit(batch).await {
            Ok(_) => false,
            // A concurrent attempt for the same claim wrote it first.
            Err(nivesh_store::Error::Conflict { .. }) => true,
            Err(e) => return Err(e.into()),
        };
        let record = if replay {
            self.load(investor_id)
                .await?
                .map(|(r, _)| r)
                .ok_or_else(|| FlowError::NotFound(investor_id.to_string()))?
        } else {
            tracing::info!(
                investor_id,
                pan = %v.pan,
                distributor_id = record.distributor_id.as_deref().unwrap_or("-"),
                aadhaar_supplied = v.aadhaar.is_some(),
                "investor stored; submitting to the KRA"
            );
            record
        };
        Ok(Onboarded {
            record: self.finish(record).await?,
            replay,
        })
    }

    /// Submit a PENDING investor to the KRA; a KRA failure leaves it PENDING (answered as is).
    async fn finish(&self, record: InvestorRecord) -> Result<InvestorRecord, FlowError> {
        if record.status != RecordStatus::Active || record.kyc.status != KycStatus::Pending {
            return Ok(record);
        }
        let investor_id = record.investor_id.clone();
        match self.submit_kyc(&investor_id).await {
            Ok(r) => Ok(r),
            Err(FlowError::Kra(e)) => {
                tracing::warn!(investor_id, error = %e, "KYC submission failed; the investor stays PENDING");
                Ok(self
                    .load(&investor_id)
                    .await?
                    .map(|(r, _)| r)
                    .unwrap_or(record))
            }
            Err(e) => Err(e),
        }
    }

    /// Submit (or resubmit) a PENDING investor to the KRA; on acceptance the record becomes
    /// REGISTERED and `investor.onboarded` is emitted. Other statuses: returned unchanged.
    pub async fn submit_kyc(&self, investor_id: &str) -> Result<InvestorRecord, FlowError> {
        let (record, _) = self
            .load(investor_id)
            .await?
            .ok_or_else(|| FlowError::NotFound(investor_id.to_string()))?;
        if record.status == RecordStatus::Erased {
            return Err(FlowError::Erased(investor_id.to_string()));
        }
        if record.kyc.status != KycStatus::Pending {
            return Ok(record);
        }
        let data = self.vault.open(investor_id).await?;
        let name = record.name.clone().unwrap_or_default();
        let reg = self
            .kra
            .register(investor_id, &data.pan, &name, data.date_of_birth)
            .await?;
        drop(data);
        let kra_ref = reg.kra_reference.clone();
        let updated = self
            .update(investor_id, |r, now| {
                let mut changed = false;
                if r.kyc.kra_reference.is_none() {
                    r.kyc.kra_reference = Some(kra_ref.clone());
                    changed = true;
                }
                if r.kyc.status == KycStatus::Pending {
                    r.kyc.status = KycStatus::Registered;
                    r.kyc.reason = None;
                    r.kyc.updated_at = now;
                    changed = true;
                }
                let mut events = Vec::new();
                if r.onboarded_at.is_none() {
                    r.onboarded_at = Some(now);
                    events.push(Emit::Onboarded);
                    changed = true;
                }
                (changed, events)
            })
            .await?;
        tracing::info!(
            investor_id,
            kra_reference = %reg.kra_reference,
            status = updated.kyc.status.as_str(),
            "KYC registered with the KRA"
        );
        Ok(updated)
    }

    /// Apply a KRA verdict (an authenticated callback).
    pub async fn kyc_callback(&self, cb: &KraCallback) -> Result<CallbackOutcome, FlowError> {
        let status = KycStatus::parse(&cb.status)
            .filter(|s| s.is_verdict())
            .ok_or_else(|| FlowError::BadStatus(cb.status.clone()))?;
        let decided_at = DateTime::from_timestamp(cb.decided_at, 0)
            .filter(|_| cb.decided_at > 0)
            .unwrap_or_else(|| self.clock.now());
        let (current, _) = self
            .load(&cb.reference)
            .await?
            .ok_or_else(|| FlowError::NotFound(cb.reference.clone()))?;
        if current.status == RecordStatus::Erased {
            return Ok(CallbackOutcome::Duplicate);
        }
        let applied = std::sync::atomic::AtomicBool::new(false);
        let kra_ref = cb.kra_reference.clone();
        let reason = cb.reason.clone();
        let record = self
            .update(&cb.reference, |r, now| {
                let final_already =
                    matches!(r.kyc.status, KycStatus::Validated | KycStatus::Rejected);
                applied.store(false, std::sync::atomic::Ordering::Relaxed);
                if final_already || r.kyc.status == status {
                    return (false, Vec::new());
                }
                applied.store(true, std::sync::atomic::Ordering::Relaxed);
                let mut events = Vec::new();
                r.kyc.status = status;
                r.kyc.kra_reference = Some(kra_ref.clone());
                r.kyc.reason = reason.clone();
                r.kyc.updated_at = decided_at;
                if r.onboarded_at.is_none() {
                    // The verdict outran the registration answer: announce the investor first.
                    r.onboarded_at = Some(now);
                    events.push(Emit::Onboarded);
                }
                events.push(Emit::Kyc);
                (true, events)
            })
            .await;
        let record = match record {
            Ok(r) => r,
            Err(FlowError::Erased(_)) => return Ok(CallbackOutcome::Duplicate),
            Err(e) => return Err(e),
        };
        if record.kyc.status == KycStatus::Validated && record.credential_requested_at.is_none() {
            self.provision(&record).await?;
        }
        if applied.load(std::sync::atomic::Ordering::Relaxed) {
            metrics::counter!(VERDICTS, "status" => status.as_str()).increment(1);
            tracing::info!(
                investor_id = %record.investor_id,
                status = status.as_str(),
                kra_reference = %cb.kra_reference,
                "KYC verdict applied"
            );
            Ok(CallbackOutcome::Applied(status))
        } else {
            Ok(CallbackOutcome::Duplicate)
        }
    }

    async fn provision(&self, record: &InvestorRecord) -> Result<(), FlowError> {
        let request = CredentialRequest {
            investor_id: record.investor_id.clone(),
            tenant: record.tenant.clone(),
            distributor_id: record.distributor_id.clone(),
            requested_at: self.clock.now(),
        };
        self.provisioner
            .provision(&request)
            .await
            .map_err(FlowError::Provisioning)?;
        let at = request.requested_at;
        self.update(&record.investor_id, |r, _| {
            if r.credential_requested_at.is_some() {
                return (false, Vec::new());
            }
            r.credential_requested_at = Some(at);
            (true, Vec::new())
        })
        .await?;
        Ok(())
    }

    /// Erase an investor's personal data: crypto-shred the vault key, blank the record, emit
    /// `investor.erased`. Idempotent (a second call changes nothing and emits nothing).
    pub async fn erase(&self, investor_id: &str, by: &str) -> Result<InvestorRecord, FlowError> {
        let (record, _) = self
            .load(investor_id)
            .await?
            .ok_or_else(|| FlowError::NotFound(investor_id.to_string()))?;
        if record.status == RecordStatus::Erased {
            return Ok(record);
        }
        // Key first: if we stop after this, the record still says active but nothing can be
        // decrypted; the retry finishes the record.
        self.vault.shred(investor_id, self.clock.now()).await?;
        // Then release the PAN claim, so the person may be onboarded again (a claim left behind
        // by a crash here is released by the next onboarding of the PAN: its record is erased).
        if let Some(claim_key) = &record.pan_claim {
            self.release_claim(claim_key, investor_id).await?;
        }
        let by = by.to_string();
        let erased = self
            .update(investor_id, |r, now| {
                if r.status == RecordStatus::Erased {
                    return (false, Vec::new());
                }
                r.status = RecordStatus::Erased;
                r.name = None;
                r.pan_masked = None;
                r.guardian = None;
                r.contact = None;
                r.ifsc = None;
                r.account_type = None;
                r.account_masked = None;
                r.nominees = Vec::new();
                r.aadhaar_masked = None;
                r.pan_claim = None;
                r.kyc.reason = None;
                r.erased_at = Some(now);
                r.erased_by = Some(by.clone());
                (true, vec![Emit::Erased])
            })
            .await;
        match erased {
            Ok(r) => {
                tracing::info!(investor_id, erased_by = %by, "investor erased (vault key shredded)");
                Ok(r)
            }
            Err(FlowError::Erased(_)) => Ok(self
                .load(investor_id)
                .await?
                .map(|(r, _)| r)
                .ok_or_else(|| FlowError::NotFound(investor_id.to_string()))?),
            Err(e) => Err(e),
        }
    }

    /// Delete the PAN claim at `claim_key` if it still names `investor_id`.
    async fn release_claim(&self, claim_key: &str, investor_id: &str) -> Result<(), FlowError> {
        for _ in 0..MAX_RACES {
            let Some(doc) = self.store.get(PAN_CLAIMS, claim_key, CLAIM_ID).await? else {
                return Ok(());
            };
            let claim: PanClaim = serde_json::from_value(doc.body)
                .map_err(|e| FlowError::Corrupt(format!("pan claim {claim_key}"), e.to_string()))?;
            if claim.investor_id != investor_id {
                return Ok(());
            }
            let batch = Batch::new(PAN_CLAIMS, claim_key).op(WriteOp::Delete {
                id: CLAIM_ID.into(),
                if_match: Some(doc.etag),
            });
            match self.store.commit(batch).await {
                Ok(_) | Err(nivesh_store::Error::NotFound { .. }) => return Ok(()),
                Err(nivesh_store::Error::PreconditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(FlowError::Contention(format!("pan claim {claim_key}")))
    }

    /// Read-modify-write of a record with the events the change causes, retried on ETag races.
    /// `change` returns (changed?, events); an unchanged record commits nothing.
    async fn update<F>(&self, investor_id: &str, change: F) -> Result<InvestorRecord, FlowError>
    where
        F: Fn(&mut InvestorRecord, DateTime<Utc>) -> (bool, Vec<Emit>),
    {
        for _ in 0..MAX_RACES {
            let (mut record, etag) = self
                .load(investor_id)
                .await?
                .ok_or_else(|| FlowError::NotFound(investor_id.to_string()))?;
            let was_erased = record.status == RecordStatus::Erased;
            let now = self.clock.now();
            let (changed, events) = change(&mut record, now);
            if !changed {
                return Ok(record);
            }
            if was_erased {
                return Err(FlowError::Erased(investor_id.to_string()));
            }
            record.updated_at = now;
            let mut batch = Batch::new(INVESTORS, investor_id).op(WriteOp::Replace {
                id: RECORD_ID.into(),
                body: serde_json::to_value(&record).expect("a record serializes"),
                if_match: etag,
                ttl: None,
            });
            for e in &events {
                batch = batch.emit(self.event(*e, &record).await?);
            }
            match self.store.commit(batch).await {
                Ok(_) => {
                    if !events.is_empty() {
                        self.outbox_notify.notify_one();
                    }
                    self.invalidate(investor_id).await;
                    return Ok(record);
                }
                Err(nivesh_store::Error::PreconditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(FlowError::Contention(investor_id.to_string()))
    }

    async fn event(&self, e: Emit, r: &InvestorRecord) -> Result<OutboxMessage, FlowError> {
        let causation = Some(format!("{}:{}", r.investor_id, e.name()));
        match e {
            Emit::Onboarded => {
                let ev = InvestorOnboarded {
                    meta: EventMeta::new::<InvestorOnboarded>(PRODUCER, causation),
                    investor_id: r.investor_id.clone(),
                    tenant: r.tenant.clone(),
                    distributor_id: r.distributor_id.clone(),
                    pan_masked: r.pan_masked.clone().unwrap_or_default(),
                    name: r.name.clone().unwrap_or_default(),
                    kyc_status: r.kyc.status.as_str().into(),
                    onboarded_at: micros(r.onboarded_at.unwrap_or(r.updated_at)),
                };
                self.encode(ONBOARDED_TOPIC, r, &ev).await
            }
            Emit::Kyc => {
                let ev = KycVerified {
                    meta: EventMeta::new::<KycVerified>(PRODUCER, causation),
                    investor_id: r.investor_id.clone(),
                    tenant: r.tenant.clone(),
                    status: r.kyc.status.as_str().into(),
                    kra_reference: r.kyc.kra_reference.clone().unwrap_or_default(),
                    verified_at: micros(r.kyc.updated_at),
                    reason: r.kyc.reason.clone(),
                };
                self.encode(KYC_TOPIC, r, &ev).await
            }
            Emit::Erased => {
                let ev = InvestorErased {
                    meta: EventMeta::new::<InvestorErased>(PRODUCER, causation),
                    investor_id: r.investor_id.clone(),
                    tenant: r.tenant.clone(),
                    distributor_id: r.distributor_id.clone(),
                    erased_by: r.erased_by.clone().unwrap_or_default(),
                    erased_at: micros(r.erased_at.unwrap_or(r.updated_at)),
                };
                self.encode(ERASED_TOPIC, r, &ev).await
            }
        }
    }

    async fn encode<E: Event>(
        &self,
        topic: &str,
        r: &InvestorRecord,
        event: &E,
    ) -> Result<OutboxMessage, FlowError> {
        outbox_message(&self.codec, topic, &r.investor_id, event)
            .await
            .map_err(|e| FlowError::Encode(e.to_string()))
    }

    /// The investors a distributor onboarded (masked views), oldest first, at most `limit`.
    pub async fn distributor_investors(
        &self,
        distributor_id: &str,
        limit: usize,
    ) -> Result<Vec<InvestorView>, FlowError> {
        let docs = self
            .store
            .query_partition(
                DISTRIBUTOR_INDEX,
                distributor_id,
                IdRange {
                    limit: Some(limit),
                    ..IdRange::default()
                },
            )
            .await?;
        let mut out = Vec::with_capacity(docs.len());
        for d in docs {
            // An index entry without a record: the onboarding stopped between the two writes.
            if let Some(v) = self.view(&d.id).await? {
                out.push(v);
            }
        }
        Ok(out)
    }

    pub async fn create_lead(
        &self,
        tenant: &str,
        distributor_id: &str,
        lead: ValidLead,
    ) -> Result<LeadRecord, FlowError> {
        let record = LeadRecord {
            lead_id: format!("lead-{}", uuid::Uuid::now_v7().simple()),
            tenant: tenant.to_string(),
            distributor_id: distributor_id.to_string(),
            name: lead.name,
            email: lead.email,
            mobile: lead.mobile,
            notes: lead.notes,
            created_at: self.clock.now(),
        };
        let batch = Batch::new(LEADS, distributor_id).op(WriteOp::Create {
            id: record.lead_id.clone(),
            body: serde_json::to_value(&record).expect("a lead serializes"),
            ttl: None,
        });
        self.store.commit(batch).await?;
        tracing::info!(lead_id = %record.lead_id, distributor_id, "lead recorded");
        Ok(record)
    }

    pub async fn leads(
        &self,
        distributor_id: &str,
        limit: usize,
    ) -> Result<Vec<LeadRecord>, FlowError> {
        let docs = self
            .store
            .query_partition(
                LEADS,
                distributor_id,
                IdRange {
                    limit: Some(limit),
                    ..IdRange::default()
                },
            )
            .await?;
        docs.into_iter()
            .map(|d| {
                serde_json::from_value(d.body)
                    .map_err(|e| FlowError::Corrupt(d.id.clone(), e.to_string()))
            })
            .collect()
    }
}

/// Which event a change emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Emit {
    Onboarded,
    Kyc,
    Erased,
}

impl Emit {
    fn name(self) -> &'static str {
        match self {
            Emit::Onboarded => "onboarded",
            Emit::Kyc => "kyc",
            Emit::Erased => "erased",
        }
    }
}
