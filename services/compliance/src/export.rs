//! SEBI transaction exports: facts kept from the ledger's events, completeness validation, the
//! config-driven CSV layout, the manifest, delivery through a port with retries, and the job.
//!
//! Facts (container `facts`, written by the consumer before each ledger append, idempotent):
//! - `nav-<scheme>` / `<nav date>`: every NAV published (`nav.broadcast`);
//! - `order-<order id>` / `payment`: the payment that succeeded for the order;
//! - `txn-<tenant>-<IST allotment date>` / `<transaction id>`: every completed transaction.
//!
//! A job (`exports` container, partition = export id, document `job`) for a date: validate
//! (every completed purchase/SIP instalment has a payment; every transaction has a positive NAV
//! and units; every referenced NAV (scheme, NAV date) was published with that value) ->
//! `Rejected` with one reason per missing item, or `Validated` -> write the CSV in the layout's
//! columns and the manifest -> deliver (up to `delivery_attempts`, exponential backoff) ->
//! `Delivered`, or `NeedsRetry` + an `AlertRaised` on `ops.alerts` (in the same batch as the
//! status). `POST .../retry` re-runs everything from validation: a rejected export never falls
//! back to older data.
//!
//! Restarts: a job in a non-terminal status (`Pending`, `Validated`) carries a lease
//! (`leaseUntil`, renewed at every status change). The `export-resumer` task scans the jobs at
//! start-up and every `export_resume_interval_secs`, claims each one whose lease has run out with
//! an ETag-conditional write (one replica wins) and runs it again from validation. Delivery is
//! idempotent, so a job that died after (part of) its delivery is safe to rerun: the file name is
//! the same, and [`ObjectStoreDelivery`] skips the write when the manifest already there names
//! the same SHA-256, else overwrites file then manifest.
//!
//! Delivery goes through `object_store`: a local directory by default (`export_dir`), any
//! object-store URL with `export_url` (`az://container/prefix` = Azure Blob in production,
//! `file:///…`); the same code path either way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use nivesh_domain::time::ist_date;
use nivesh_events::{AlertRaised, EventMeta, alert_severity};
use nivesh_runtime::outbox::outbox_message;
use nivesh_store::{Batch, IdRange, WriteOp};
use nivesh_store::{Continuation, ETag};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::canonical::sha256_hex;
use crate::service::{ComplianceService, str_field};

pub const FACTS: &str = "facts";
pub const EXPORTS: &str = "exports";
const JOB: &str = "job";
pub const KIND_SEBI_TRANSACTIONS: &str = "SEBI_TRANSACTIONS";
pub const ALERT_TOPIC: &str = "ops.alerts";
pub const ALERT_EXPORT_DELIVERY_FAILED: &str = "EXPORT_DELIVERY_FAILED";
/// Jobs read per change-feed page while looking for interrupted ones.
const RESUME_PAGE: usize = 500;

/// Fields a layout column may name (a transaction fact's fields plus the payment's).
pub const LAYOUT_FIELDS: &[&str] = &[
    "transaction_id",
    "order_id",
    "investor_id",
    "folio",
    "leg",
    "order_kind",
    "scheme_code",
    "nav",
    "nav_date",
    "gross_amount",
    "stamp_duty",
    "exit_load",
    "net_amount",
    "units",
    "allotted_at",
    "trade_date",
    "sip_id",
    "instalment_no",
    "payment_id",
    "payment_amount",
    "gateway_ref",
    "realised_at",
];

/// One CSV column: header name and the fact field it is filled from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Column {
    pub name: String,
    pub field: String,
}

/// A versioned CSV layout, read from a TOML file (`[service] export_layout`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Layout {
    /// Layout version id; goes into every manifest.
    pub version: String,
    pub columns: Vec<Column>,
}

impl Layout {
    /// Load and check a layout file: at least one column, unique names, known fields.
    pub fn load(path: &Path) -> Result<Layout, String> {
        let layout: Layout = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| format!("export layout {}: {e}", path.display()))?;
        if layout.version.trim().is_empty() || layout.columns.is_empty() {
            return Err(format!(
                "export layout {}: needs a version and at least one column",
                path.display()
            ));
        }
        for (i, c) in layout.columns.iter().enumerate() {
            if !LAYOUT_FIELDS.contains(&c.field.as_str()) {
                return Err(format!(
                    "export layout {}: column {} maps unknown field `{}` (known: {})",
                    path.display(),
                    c.name,
                    c.field,
                    LAYOUT_FIELDS.join(", ")
                ));
            }
            if layout.columns[..i].iter().any(|o| o.name == c.name) {
                return Err(format!(
                    "export layout {}: column {} appears twice",
                    path.display(),
                    c.name
                ));
            }
        }
        Ok(layout)
    }
}

/// Export job states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ExportStatus {
    /// Accepted; validation has not finished.
    Pending,
    /// Complete data; the file is being written and delivered.
    Validated,
    /// Incomplete data: `reasons` lists every missing item. Retry after the data arrives.
    Rejected,
    /// Delivery failed `delivery_attempts` times; an alert was raised. Retry re-runs it all.
    NeedsRetry,
    Delivered,
}

impl ExportStatus {
    /// Will the job still change on its own (a runner owns it, or the resumer will)?
    pub fn is_running(self) -> bool {
        matches!(self, ExportStatus::Pending | ExportStatus::Validated)
    }
}

/// What a delivered (or written) export file is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub export_id: String,
    pub kind: String,
    pub date: NaiveDate,
    pub file_name: String,
    pub row_count: usize,
    /// SHA-256 (hex) of the file's bytes.
    pub sha256: String,
    pub layout_version: String,
    pub generated_at: String,
}

/// One status change of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub status: ExportStatus,
    pub at: String,
    pub detail: Option<String>,
}

/// An export job as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportJob {
    pub export_id: String,
    pub kind: String,
    pub date: NaiveDate,
    pub tenant: String,
    pub status: ExportStatus,
    /// Why it was rejected: one entry per missing item.
    pub reasons: Vec<String>,
    /// Delivery attempts of the last run.
    pub delivery_attempts: u32,
    pub last_error: Option<String>,
    pub file_path: Option<String>,
    pub manifest: Option<Manifest>,
    pub requested_by: String,
    pub history: Vec<StatusChange>,
    /// While `Pending` or `Validated`: the runner's lease. Past it, the job counts as
    /// interrupted (its replica stopped) and the resumer runs it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<DateTime<Utc>>,
}

/// Where export files go. [`ObjectStoreDelivery`] covers local directories and object stores
/// (Azure Blob); an SFTP adapter would implement the same trait.
#[async_trait]
pub trait DeliveryPort: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    /// Deliver the file and its manifest; returns where the file now is. Must be idempotent:
    /// the same job may deliver the same file name again after a restart.
    async fn deliver(&self, file: &DeliveryFile<'_>) -> Result<String, String>;
}

/// One export file and its manifest, as handed to a [`DeliveryPort`].
#[derive(Debug, Clone, Copy)]
pub struct DeliveryFile<'a> {
    pub file_name: &'a str,
    pub bytes: &'a [u8],
    /// SHA-256 (hex) of `bytes`, as the manifest states it.
    pub sha256: &'a str,
    pub manifest_name: &'a str,
    pub manifest: &'a [u8],
}

/// Delivery through `object_store`: one code path for a local directory and for Azure Blob.
///
/// Writes the file, then the manifest next to it (a reader that finds the manifest finds the
/// whole file; each put is atomic: temp file + rename locally, a single blob PUT in Azure).
/// Before writing, it reads the manifest already at the destination: when it names the same
/// SHA-256 the earlier delivery is complete and nothing is written again (a rerun after a
/// restart); otherwise both are overwritten.
pub struct ObjectStoreDelivery {
    target: Target,
}

enum Target {
    /// A local directory, created (and opened) at each delivery so a directory that appears
    /// or is fixed later works without a restart.
    Dir(PathBuf),
    /// An object-store URL, opened once.
    Url {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        base: String,
    },
}

impl ObjectStoreDelivery {
    /// Files into a local directory (created when missing).
    pub fn local_dir(dir: impl Into<PathBuf>) -> Self {
        ObjectStoreDelivery {
            target: Target::Dir(dir.into()),
        }
    }

    /// Files under an object-store URL: `az://container/prefix` (Azure Blob: the account and
    /// credentials come from the `AZURE_*` environment, e.g. AKS workload identity's
    /// `AZURE_CLIENT_ID`/`AZURE_TENANT_ID`/`AZURE_FEDERATED_TOKEN_FILE` plus
    /// `AZURE_STORAGE_ACCOUNT_NAME`; needs the `azure` feature), or `file:///abs/dir`.
    pub fn url(url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("export_url {url}: {e}"))?;
        let azure_env = std::env::vars().filter(|(k, _)| k.starts_with("AZURE_"));
        let (store, prefix) = object_store::parse_url_opts(&parsed, azure_env)
            .map_err(|e| format!("export_url {url}: {e}"))?;
        Ok(ObjectStoreDelivery {
            target: Target::Url {
                store: Arc::from(store),
                prefix,
                base: url.trim_end_matches('/').to_string(),
            },
        })
    }

    /// The store, the prefix inside it, and how a delivered file's location is shown.
    async fn open(&self) -> Result<(Arc<dyn ObjectStore>, ObjectPath, Location), String> {
        match &self.target {
            Target::Url {
                store,
                prefix,
                base,
            } => Ok((store.clone(), prefix.clone(), Location::Url(base.clone()))),
            Target::Dir(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                let abs = tokio::fs::canonicalize(dir)
                    .await
                    .map_err(|e| format!("opening {}: {e}", dir.display()))?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(&abs)
                    .map_err(|e| format!("opening {}: {e}", abs.display()))?;
                Ok((Arc::new(store), ObjectPath::default(), Location::Dir(abs)))
            }
        }
    }
}

enum Location {
    Dir(PathBuf),
    Url(String),
}

impl Location {
    fn of(&self, name: &str) -> String {
        match self {
            Location::Dir(dir) => dir.join(name).display().to_string(),
            Location::Url(base) => format!("{base}/{name}"),
        }
    }
}

#[async_trait]
impl DeliveryPort for ObjectStoreDelivery {
    fn kind(&self) -> &'static str {
        match self.target {
            Target::Dir(_) => "local-dir",
            Target::Url { .. } => "object-store",
        }
    }

    async fn deliver(&self, f: &DeliveryFile<'_>) -> Result<String, String> {
        let (store, prefix, location) = self.open().await?;
        let file_path = prefix.clone().join(f.file_name);
        let manifest_path = prefix.join(f.manifest_name);
        let shown = location.of(f.file_name);
        if delivered_before(store.as_ref(), &manifest_path, &file_path, f.sha256).await {
            tracing::info!(file = %shown, "export already delivered with the same SHA-256; not rewritten");
            return Ok(shown);
        }
        // The file first, the manifest last: a manifest present means the file is complete.
        for (path, bytes, name) in [
            (file_path, f.bytes, f.file_name),
            (manifest_path, f.manifest, f.manifest_name),
        ] {
            store
                .put(&path, PutPayload::from(bytes.to_vec()))
                .await
                .map_err(|e| format!("writing {}: {e}", location.of(name)))?;
        }
        Ok(shown)
    }
}

/// Is a complete delivery of this content already there (its manifest names `sha256` and the
/// file exists)? Any read failure counts as "no": the caller then writes.
async fn delivered_before(
    store: &dyn ObjectStore,
    manifest: &ObjectPath,
    file: &ObjectPath,
    sha256: &str,
) -> bool {
    let Ok(existing) = store.get(manifest).await else {
        return false;
    };
    let Ok(bytes) = existing.bytes().await else {
        return false;
    };
    let same = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .is_some_and(|m| m["sha256"] == sha256);
    same && store.head(file).await.is_ok()
}

fn txn_partition(tenant: &str, date: NaiveDate) -> String {
    format!("txn-{tenant}-{date}")
}

/// An upsert kept for the retention period (facts and jobs are records too).
fn upsert(id: &str, body: Value, ttl: std::time::Duration) -> WriteOp {
    WriteOp::Upsert {
        id: id.to_string(),
        body,
        ttl: Some(ttl),
    }
}

/// A CSV field, quoted when it holds a delimiter, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn dec(v: &Value, key: &str) -> Option<Decimal> {
    str_field(v, key).and_then(|s| s.parse().ok())
}

impl ComplianceService {
    /// Keep what exports are validated from (see the module docs).
    pub(crate) async fn record_facts(
        &self,
        topic: &str,
        payload: &Value,
        partition: &str,
    ) -> Result<(), nivesh_store::Error> {
        let ttl = self.config.retention();
        let batch = match topic {
            "nav.broadcast" => {
                let (Some(scheme), Some(date)) = (
                    str_field(payload, "scheme_code"),
                    str_field(payload, "nav_date"),
                ) else {
                    return Ok(());
                };
                Batch::new(FACTS, format!("nav-{scheme}")).op(upsert(
                    date,
                    json!({"scheme_code": scheme, "nav_date": date, "nav": payload["nav"],
                           "event_id": payload["meta"]["event_id"]}),
                    ttl,
                ))
            }
            "payment.success" => {
                let Some(order) = str_field(payload, "order_id") else {
                    return Ok(());
                };
                Batch::new(FACTS, format!("order-{order}")).op(upsert(
                    "payment",
                    json!({"payment_id": payload["payment_id"], "payment_amount": payload["amount"],
                           "gateway_ref": payload["gateway_ref"], "realised_at": payload["realised_at"]}),
                    ttl,
                ))
            }
            "transaction.completed" => {
                let (Some(txn), Some(at)) = (
                    str_field(payload, "transaction_id"),
                    str_field(payload, "allotted_at")
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok()),
                ) else {
                    return Ok(());
                };
                let date = ist_date(at.with_timezone(&Utc));
                let tenant = self
                    .ledger
                    .head(partition)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|h| h.tenant)
                    .unwrap_or_else(|| self.config.default_tenant.clone());
                let mut fact = serde_json::Map::new();
                for f in LAYOUT_FIELDS {
                    if let Some(v) = payload.get(*f) {
                        fact.insert((*f).to_string(), v.clone());
                    }
                }
                fact.insert("trade_date".into(), Value::String(date.to_string()));
                Batch::new(FACTS, txn_partition(&tenant, date)).op(upsert(
                    txn,
                    Value::Object(fact),
                    ttl,
                ))
            }
            _ => return Ok(()),
        };
        self.store.commit(batch).await.map(|_| ())
    }

    /// Completeness check of `date` for `tenant`: the rows to export, or every missing item.
    pub async fn validate_transactions(
        &self,
        tenant: &str,
        date: NaiveDate,
    ) -> Result<Result<Vec<Value>, Vec<String>>, nivesh_store::Error> {
        let txns = self
            .store
            .query_partition(FACTS, &txn_partition(tenant, date), IdRange::default())
            .await?;
        let mut rows = Vec::with_capacity(txns.len());
        let mut reasons = Vec::new();
        for doc in txns {
            let mut row = doc.body;
            let txn = doc.id;
            let order = str_field(&row, "order_id").unwrap_or_default().to_string();
            let kind = str_field(&row, "order_kind")
                .unwrap_or_default()
                .to_string();
            let scheme = str_field(&row, "scheme_code")
                .unwrap_or_default()
                .to_string();
            let nav_date = str_field(&row, "nav_date").unwrap_or_default().to_string();
            if matches!(kind.as_str(), "PURCHASE" | "SIP_INSTALMENT") {
                match self
                    .store
                    .get(FACTS, &format!("order-{order}"), "payment")
                    .await?
                {
                    Some(p) => {
                        if let (Some(obj), Value::Object(pay)) = (row.as_object_mut(), p.body) {
                            obj.extend(pay);
                        }
                    }
                    None => reasons.push(format!(
                        "transaction {txn} (order {order}, {kind}): no successful payment recorded for the order"
                    )),
                }
            }
            let nav = dec(&row, "nav");
            if nav.is_none_or(|n| n <= Decimal::ZERO) {
                reasons.push(format!(
                    "transaction {txn} (order {order}): no positive NAV"
                ));
            }
            if dec(&row, "units").is_none_or(|u| u <= Decimal::ZERO) {
                reasons.push(format!(
                    "transaction {txn} (order {order}): no units allotted"
                ));
            }
            match self
                .store
                .get(FACTS, &format!("nav-{scheme}"), &nav_date)
                .await?
            {
                None => reasons.push(format!(
                    "transaction {txn} (order {order}): NAV of scheme {scheme} for {nav_date} was never published"
                )),
                Some(published) => {
                    let published_nav = dec(&published.body, "nav");
                    if nav.is_some() && published_nav != nav {
                        reasons.push(format!(
                            "transaction {txn} (order {order}): NAV {} differs from the published NAV {} of scheme {scheme} for {nav_date}",
                            nav.map(|n| n.to_string()).unwrap_or_default(),
                            published_nav.map(|n| n.to_string()).unwrap_or_default(),
                        ));
                    }
                }
            }
            rows.push(row);
        }
        Ok(if reasons.is_empty() {
            Ok(rows)
        } else {
            Err(reasons)
        })
    }

    /// The CSV of `rows` in the layout (header line, then one line per row; CRLF-free).
    pub fn render_csv(&self, rows: &[Value]) -> Vec<u8> {
        let mut out = String::new();
        let header: Vec<String> = self
            .layout
            .columns
            .iter()
            .map(|c| csv_field(&c.name))
            .collect();
        out.push_str(&header.join(","));
        out.push('\n');
        for row in rows {
            let cells: Vec<String> = self
                .layout
                .columns
                .iter()
                .map(|c| match row.get(&c.field) {
                    Some(Value::String(s)) => csv_field(s),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => csv_field(&other.to_string()),
                })
                .collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out.into_bytes()
    }

    pub async fn export_job(
        &self,
        export_id: &str,
    ) -> Result<Option<ExportJob>, nivesh_store::Error> {
        let Some(doc) = self.store.get(EXPORTS, export_id, JOB).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_value(doc.body).ok())
    }

    pub(crate) async fn save_job(
        &self,
        job: &ExportJob,
        alert: Option<AlertRaised>,
    ) -> Result<(), String> {
        let mut batch = Batch::new(EXPORTS, &job.export_id).op(upsert(
            JOB,
            serde_json::to_value(job).expect("a job serializes"),
            self.config.retention(),
        ));
        if let Some(alert) = &alert {
            let msg = outbox_message(&self.codec, ALERT_TOPIC, crate::GROUP, alert)
                .await
                .map_err(|e| e.to_string())?;
            batch = batch.emit(msg);
        }
        self.store.commit(batch).await.map_err(|e| e.to_string())?;
        if alert.is_some() {
            self.outbox_notify.notify_one();
        }
        Ok(())
    }

    /// Record a status change; a running status renews the runner's lease, a final one drops it.
    pub(crate) fn set_status(
        &self,
        job: &mut ExportJob,
        status: ExportStatus,
        detail: Option<String>,
    ) {
        let now = self.now();
        job.status = status;
        job.lease_until = status
            .is_running()
            .then(|| now + self.config.export_lease());
        job.history.push(StatusChange {
            status,
            at: nivesh_domain::time::to_ist(now).to_rfc3339(),
            detail,
        });
    }

    /// A new job for `date`, stored as Pending (run it with [`ComplianceService::run_export`]).
    pub async fn create_export(
        &self,
        tenant: &str,
        date: NaiveDate,
        requested_by: &str,
    ) -> Result<ExportJob, String> {
        let mut job = ExportJob {
            export_id: uuid::Uuid::now_v7().to_string(),
            kind: KIND_SEBI_TRANSACTIONS.into(),
            date,
            tenant: tenant.to_string(),
            status: ExportStatus::Pending,
            reasons: Vec::new(),
            delivery_attempts: 0,
            last_error: None,
            file_path: None,
            manifest: None,
            requested_by: requested_by.to_string(),
            history: Vec::new(),
            lease_until: None,
        };
        self.set_status(&mut job, ExportStatus::Pending, None);
        self.save_job(&job, None).await?;
        Ok(job)
    }

    /// Validate, write, deliver: the whole job, from Pending to a final status.
    pub async fn run_export(&self, mut job: ExportJob) -> Result<ExportJob, String> {
        job.reasons.clear();
        job.delivery_attempts = 0;
        job.last_error = None;
        job.file_path = None;
        job.manifest = None;
        let rows = match self
            .validate_transactions(&job.tenant, job.date)
            .await
            .map_err(|e| e.to_string())?
        {
            Ok(rows) => rows,
            Err(reasons) => {
                let detail = format!("{} missing item(s)", reasons.len());
                job.reasons = reasons;
                self.set_status(&mut job, ExportStatus::Rejected, Some(detail));
                self.save_job(&job, None).await?;
                return Ok(job);
            }
        };
        self.set_status(
            &mut job,
            ExportStatus::Validated,
            Some(format!("{} transaction(s)", rows.len())),
        );
        self.save_job(&job, None).await?;

        let file = self.render_csv(&rows);
        let file_name = format!("{}_{}_{}.csv", job.kind, job.date, job.export_id);
        let manifest = Manifest {
            export_id: job.export_id.clone(),
            kind: job.kind.clone(),
            date: job.date,
            file_name: file_name.clone(),
            row_count: rows.len(),
            sha256: sha256_hex(&file),
            layout_version: self.layout.version.clone(),
            generated_at: nivesh_domain::time::to_ist(self.now()).to_rfc3339(),
        };
        let manifest_name = format!("{file_name}.manifest.json");
        let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
        let delivery = DeliveryFile {
            file_name: &file_name,
            bytes: &file,
            sha256: &manifest.sha256,
            manifest_name: &manifest_name,
            manifest: &manifest_bytes,
        };
        let attempts = self.config.delivery_attempts.max(1);
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            job.delivery_attempts = attempt;
            match self.delivery.deliver(&delivery).await {
                Ok(path) => {
                    job.file_path = Some(path);
                    job.manifest = Some(manifest);
                    self.set_status(&mut job, ExportStatus::Delivered, None);
                    self.save_job(&job, None).await?;
                    return Ok(job);
                }
                Err(e) => {
                    tracing::warn!(export = %job.export_id, attempt, error = %e, "export delivery failed");
                    last_error = e;
                    if attempt < attempts {
                        let backoff = self.config.delivery_backoff() * 2u32.pow(attempt - 1);
                        tokio::time::sleep(backoff).await;
                    }
                }
            }
        }
        job.last_error = Some(last_error.clone());
        job.manifest = Some(manifest);
        let alert = AlertRaised {
            meta: EventMeta::new::<AlertRaised>(crate::GROUP, Some(job.export_id.clone())),
            source_service: crate::GROUP.into(),
            alert_code: ALERT_EXPORT_DELIVERY_FAILED.into(),
            severity: alert_severity::CRITICAL.into(),
            message: format!(
                "{} export {} for {} could not be delivered via {} after {attempts} attempts: {last_error}",
                job.kind,
                job.export_id,
                job.date,
                self.delivery.kind()
            ),
            subject_id: Some(job.export_id.clone()),
            raised_at: self.now(),
        };
        self.set_status(
            &mut job,
            ExportStatus::NeedsRetry,
            Some(format!("delivery failed {attempts} times: {last_error}")),
        );
        self.save_job(&job, Some(alert)).await?;
        Ok(job)
    }

    /// Jobs left `Pending`/`Validated` by a runner that stopped (lease run out): claim each
    /// (ETag-conditional, so of several replicas exactly one resumes it) and run it again from
    /// validation. Returns the ids resumed.
    pub async fn resume_interrupted(&self) -> Result<Vec<String>, String> {
        let mut resumed = Vec::new();
        let mut from = Continuation::default();
        loop {
            let (docs, next) = self
                .store
                .change_feed(EXPORTS, &from, RESUME_PAGE)
                .await
                .map_err(|e| e.to_string())?;
            if docs.is_empty() {
                break;
            }
            from = next;
            for doc in docs {
                if doc.id != JOB {
                    continue;
                }
                let Ok(job) = serde_json::from_value::<ExportJob>(doc.body) else {
                    continue;
                };
                let now = self.now();
                if !job.status.is_running() || job.lease_until.is_some_and(|l| l > now) {
                    continue;
                }
                if let Some(job) = self.claim(job, doc.etag).await? {
                    let id = job.export_id.clone();
                    tracing::warn!(export = %id, "resuming an export interrupted by a restart");
                    if let Err(e) = self.run_export(job).await {
                        tracing::error!(export = %id, error = %e, "resumed export failed; it stays in its last status");
                    }
                    resumed.push(id);
                }
            }
        }
        Ok(resumed)
    }

    /// Take over an interrupted job: back to `Pending` with a fresh lease, only if nobody
    /// changed it since it was read. `None` when another replica was first.
    async fn claim(&self, mut job: ExportJob, etag: ETag) -> Result<Option<ExportJob>, String> {
        let was = job.status;
        self.set_status(
            &mut job,
            ExportStatus::Pending,
            Some(format!("resumed after an interruption (was {was:?})")),
        );
        let batch = Batch::new(EXPORTS, &job.export_id).op(WriteOp::Replace {
            id: JOB.into(),
            body: serde_json::to_value(&job).expect("a job serializes"),
            if_match: etag,
            ttl: Some(self.config.retention()),
        });
        match self.store.commit(batch).await {
            Ok(_) => Ok(Some(job)),
            Err(nivesh_store::Error::PreconditionFailed { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The `export-resumer` task: [`ComplianceService::resume_interrupted`] at start-up and
    /// then every `export_resume_interval_secs`, until shutdown. A failed scan (store briefly
    /// away) is logged and retried next round.
    pub async fn run_resumer(
        self: Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), String> {
        loop {
            if let Err(e) = self.resume_interrupted().await {
                tracing::warn!(error = %e, "scanning for interrupted exports failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.config.export_resume_interval()) => {}
            }
        }
    }

    /// Run `job` in the background (the API answers 202 at once).
    pub fn spawn_export(self: &Arc<Self>, job: ExportJob) {
        let svc = self.clone();
        tokio::spawn(async move {
            let id = job.export_id.clone();
            if let Err(e) = svc.run_export(job).await {
                tracing::error!(export = %id, error = %e, "export job failed; it stays in its last status");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fields with delimiters or quotes are quoted; plain ones are not.
    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("abc"), "abc");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    /// The repository's layout file loads and maps only known fields.
    #[test]
    fn repository_layout_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/compliance/sebi-transactions.toml");
        let layout = Layout::load(&path).unwrap();
        assert!(!layout.version.is_empty());
        assert!(layout.columns.iter().any(|c| c.field == "units"));
    }

    fn file<'a>(bytes: &'a [u8], sha: &'a str, manifest: &'a [u8]) -> DeliveryFile<'a> {
        DeliveryFile {
            file_name: "E_2025-02-25_x.csv",
            bytes,
            sha256: sha,
            manifest_name: "E_2025-02-25_x.csv.manifest.json",
            manifest,
        }
    }

    /// Local directory (created when missing) and `file://` URL take the same path: the file and
    /// the manifest land next to each other; an identical redelivery (same SHA-256) leaves both
    /// untouched; different content overwrites both.
    #[tokio::test]
    async fn object_store_delivery_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let url_dir = tmp.path().join("url");
        std::fs::create_dir_all(&url_dir).unwrap();
        let url = format!("file://{}", url_dir.display());
        for (delivery, root) in [
            (ObjectStoreDelivery::local_dir(&dir), dir.clone()),
            (ObjectStoreDelivery::url(&url).unwrap(), url_dir.clone()),
        ] {
            let manifest = |sha: &str, n: u32| format!("{{\"sha256\":\"{sha}\",\"n\":{n}}}");
            let v1 = sha256_hex(b"v1");
            let at = delivery
                .deliver(&file(b"v1", &v1, manifest(&v1, 1).as_bytes()))
                .await
                .unwrap();
            assert!(at.ends_with("E_2025-02-25_x.csv"), "{at}");
            let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap();
            assert_eq!(read("E_2025-02-25_x.csv"), "v1");
            assert_eq!(read("E_2025-02-25_x.csv.manifest.json"), manifest(&v1, 1));

            delivery
                .deliver(&file(b"v1", &v1, manifest(&v1, 2).as_bytes()))
                .await
                .unwrap();
            assert_eq!(read("E_2025-02-25_x.csv.manifest.json"), manifest(&v1, 1));

            let v2 = sha256_hex(b"v2");
            delivery
                .deliver(&file(b"v2", &v2, manifest(&v2, 3).as_bytes()))
                .await
                .unwrap();
            assert_eq!(read("E_2025-02-25_x.csv"), "v2");
            assert_eq!(read("E_2025-02-25_x.csv.manifest.json"), manifest(&v2, 3));
        }
    }

    /// A local target that cannot be a directory fails with its path in the error.
    #[tokio::test]
    async fn unwritable_directory_names_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let blocker = tmp.path().join("not-a-dir");
        std::fs::write(&blocker, b"x").unwrap();
        let delivery = ObjectStoreDelivery::local_dir(blocker.join("exports"));
        let sha = sha256_hex(b"v");
        let err = delivery
            .deliver(&file(b"v", &sha, b"{}"))
            .await
            .unwrap_err();
        assert!(err.contains("not-a-dir"), "{err}");
    }

    /// A layout naming a field that does not exist is refused with the field's name.
    #[test]
    fn unknown_field_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("l.toml");
        std::fs::write(
            &p,
            "version = \"X\"\n[[columns]]\nname = \"A\"\nfield = \"nope\"\n",
        )
        .unwrap();
        assert!(Layout::load(&p).unwrap_err().contains("nope"));
    }
}
