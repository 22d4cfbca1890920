//! The KRA (KYC Registration Agency) adapter over HTTP.
//!
//! `POST {base}/v1/kyc/registrations` with `Idempotency-Key: <investor id>` and
//! `{reference, pan, name, date_of_birth}` → `{reference, kra_reference, status}`. The reference
//! is our investor id, so a repeated submission (a retry after a timeout, a resubmission)
//! returns the same registration instead of a second one. The verdict arrives later as a
//! signed callback (`POST /v1/kyc/callback`, see `api`).
//!
//! The PAN is sent because the KRA needs it; it is never logged (errors carry only status
//! codes and the KRA's error code).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::KraConfig;

#[derive(Debug, thiserror::Error)]
pub enum KraError {
    /// Timeouts, connection failures, 5xx, 429: worth retrying later.
    #[error("KRA unavailable: {0}")]
    Unavailable(String),
    /// The KRA refused the registration (4xx).
    #[error("KRA refused the registration ({status}): {code}")]
    Refused { status: u16, code: String },
}

#[derive(Debug, Serialize)]
struct RegisterBody<'a> {
    reference: &'a str,
    pan: &'a str,
    name: &'a str,
    date_of_birth: String,
}

/// What the KRA answers to a registration.
#[derive(Debug, Clone, Deserialize)]
pub struct KraRegistration {
    pub reference: String,
    pub kra_reference: String,
    pub status: String,
}

#[derive(Debug, Deserialize)]
struct KraErrorBody {
    error: KraErrorDetail,
}

#[derive(Debug, Deserialize)]
struct KraErrorDetail {
    code: String,
}

/// The callback the KRA POSTs (authenticated by [`crate::signature`]).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct KraCallback {
    /// `kyc.status`.
    pub event: String,
    /// Our investor id.
    pub reference: String,
    pub kra_reference: String,
    /// VALIDATED, ON_HOLD or REJECTED.
    pub status: String,
    pub reason: Option<String>,
    /// Unix seconds.
    pub decided_at: i64,
}

#[derive(Clone)]
pub struct KraClient {
    http: reqwest::Client,
    base_url: String,
}

impl KraClient {
    pub fn new(config: &KraConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms.max(1)))
            .connect_timeout(Duration::from_millis(
                config.request_timeout_ms.clamp(1, 1_000),
            ))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(KraClient {
            http,
            base_url: config.base_url.trim_end_matches('/').to_string(),
        })
    }

    /// Register (or re-register, idempotently) an investor for KYC.
    pub async fn register(
        &self,
        reference: &str,
        pan: &str,
        name: &str,
        date_of_birth: chrono::NaiveDate,
    ) -> Result<KraRegistration, KraError> {
        let body = RegisterBody {
            reference,
            pan,
            name,
            date_of_birth: date_of_birth.format("%Y-%m-%d").to_string(),
        };
        let resp = self
            .http
            .post(format!("{}/v1/kyc/registrations", self.base_url))
            .header("idempotency-key", reference)
            .json(&body)
            .send()
            .await
            .map_err(|e| KraError::Unavailable(e.without_url().to_string()))?;
        let status = resp.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(KraError::Unavailable(format!("KRA answered {status}")));
        }
        if !status.is_success() {
            let code = resp
                .json::<KraErrorBody>()
                .await
                .map(|b| b.error.code)
                .unwrap_or_else(|_| "UNKNOWN".into());
            return Err(KraError::Refused {
                status: status.as_u16(),
                code,
            });
        }
        resp.json()
            .await
            .map_err(|e| KraError::Unavailable(format!("KRA answer unreadable: {e}")))
    }
}
