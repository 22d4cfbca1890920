//! Delivery channels behind one trait: email ([`EmailChannel`], lettre: SMTP, or `.eml` files
//! for local runs) and HTTP message providers ([`HttpChannel`], SMS and push).
//!
//! Every send carries an idempotency key derived from (event id, channel): the email's
//! `Message-ID` and the provider's `Idempotency-Key` header. The service records a send only
//! after it succeeded, so a crash between the two resends with the SAME key and the mail
//! system or provider drops the duplicate.
//!
//! Failures are classified where the protocol is understood: [`SendError::Transient`] (try
//! again later: connection refused, timeouts, SMTP 4xx, HTTP 5xx/429) and
//! [`SendError::Permanent`] (will never work: a malformed address, SMTP 5xx such as "no such
//! mailbox", HTTP 4xx such as an invalid number), which is recorded as failed, not retried.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, SinglePart};
use lettre::{
    Address, AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::registry::Investor;
use crate::template::Rendered;

/// Which rendering of a template a channel sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Subject plus the full plain-text body.
    Email,
    /// The one-line text (SMS, push; the subject is the push title).
    Short,
}

/// One message on its way out.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// `{event id}:{channel}`: the same on every attempt for the same event.
    pub idempotency_key: &'a str,
    /// Channel address (email address, E.164 mobile, investor id for push).
    pub to: &'a str,
    pub to_name: &'a str,
    pub template: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// The business clock's "now" (the email's `Date`).
    pub at: chrono::DateTime<chrono::Utc>,
}

/// What the channel said on success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// The provider's id for the message (file name, provider message id), when it gives one.
    pub provider_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Might work on a later attempt.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never work for this message.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A way to reach an investor.
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// `email`, `sms`, `push`: stored with every notification and part of its dedupe key.
    fn name(&self) -> &'static str;
    fn form(&self) -> Form;
    /// The investor's address on this channel, or why there is none.
    fn address(&self, investor: &Investor) -> Result<String, String>;
    async fn send(&self, msg: &Outgoing<'_>) -> Result<Receipt, SendError>;
}

/// The subject and body a channel sends for a rendered template.
pub fn content(form: Form, rendered: &Rendered) -> (Option<String>, String) {
    match form {
        Form::Email => (Some(rendered.subject.clone()), rendered.email.clone()),
        Form::Short => (Some(rendered.subject.clone()), rendered.short.clone()),
    }
}

enum MailTransport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

/// Email through lettre: SMTP when a URL is configured, else one readable `.eml` file per
/// message in a directory (local runs and tests).
pub struct EmailChannel {
    transport: MailTransport,
    from: Mailbox,
    /// Right-hand side of the Message-ID.
    id_domain: String,
    description: String,
}

impl std::fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannel")
            .field("transport", &self.description)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl EmailChannel {
    /// SMTP from a URL (`smtp://host:25`, `smtp://user:pass@host:587?tls=required`,
    /// `smtps://host:465`), as lettre's `from_url` reads it.
    pub fn smtp(url: &SecretString, from: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
            .map_err(|e| format!("invalid smtp_url: {e}"))?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        Self::with(MailTransport::Smtp(transport), from, "smtp".into())
    }

    /// `.eml` files in `dir` (created if missing).
    pub fn files(dir: PathBuf, from: &str) -> Result<Self, String> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create mail_dir {}: {e}", dir.display()))?;
        let description = format!("files in {}", dir.display());
        Self::with(
            MailTransport::Files(AsyncFileTransport::<Tokio1Executor>::new(dir)),
            from,
            description,
        )
    }

    fn with(transport: MailTransport, from: &str, description: String) -> Result<Self, String> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("invalid mail_from {from:?}: {e}"))?;
        let id_domain = from.email.domain().to_string();
        Ok(EmailChannel {
            transport,
            from,
            id_domain,
            description,
        })
    }

    /// `<{key with ':' as '.'}@{sender domain}>`: a valid Message-ID, the same for every attempt.
    pub fn message_id(&self, idempotency_key: &str) -> String {
        let left: String = idempotency_key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '.'
                }
            })
            .collect();
        format!("<{left}@{}>", self.id_domain)
    }
}

#[async_trait]
impl Channel for EmailChannel {
    fn name(&self) -> &'static str {
        "email"
    }

    fn form(&self) -> Form {
        Form::Email
    }

    fn address(&self, investor: &Investor) -> Result<String, String> {
        investor
            .email
            .clone()
            .ok_or_else(|| "no email address on file".to_string())
    }

    async fn send(&self, msg: &Outgoing<'_>) -> Result<Receipt, SendError> {
        let address: Address = msg.to.trim().parse().map_err(|e| {
            SendError::Permanent(format!("invalid email address {:?}: {e}", msg.to))
        })?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(Some(msg.to_name.to_string()), address))
            .subject(msg.subject)
            .message_id(Some(self.message_id(msg.idempotency_key)))
            .date(SystemTime::from(msg.at))
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(readable_body(msg.body)),
            )
            .map_err(|e| SendError::Permanent(format!("cannot build the email: {e}")))?;
        match &self.transport {
            MailTransport::Files(t) => t
                .send(email)
                .await
                .map(|id| Receipt {
                    provider_ref: Some(format!("{id}.eml")),
                })
                .map_err(|e| SendError::Transient(format!("writing the email file: {e}"))),
            MailTransport::Smtp(t) => match t.send(email).await {
                Ok(response) => Ok(Receipt {
                    provider_ref: Some(response.code().to_string()),
                }),
                Err(e) if e.is_permanent() => Err(SendError::Permanent(format!(
                    "SMTP rejected the message: {e}"
                ))),
                Err(e) => Err(SendError::Transient(format!("SMTP: {e}"))),
            },
        }
    }
}

/// The body as 8bit UTF-8, readable as it is in an `.eml` file (templates wrap lines to fit),
/// or lettre's own choice (quoted-printable / base64) if some line is still too long for 8bit.
fn readable_body(text: &str) -> Body {
    Body::new_with_encoding(text.to_string(), ContentTransferEncoding::EightBit)
        .unwrap_or_else(|_| Body::new(text.to_string()))
}

/// What an HTTP message provider is sent (JSON).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProviderRequest<'a> {
    to: &'a str,
    channel: &'static str,
    title: &'a str,
    message: &'a str,
    template: &'a str,
    /// Same as the `Idempotency-Key` header, for providers that take it in the body.
    reference: &'a str,
}

/// Which contact an [`HttpChannel`] addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpKind {
    /// The investor's mobile number.
    Sms,
    /// The investor id (the push provider maps investors to their devices).
    Push,
}

/// An HTTP message provider (SMS or push): `POST {url}` with a JSON body, an
/// `Idempotency-Key` header and an optional bearer token.
pub struct HttpChannel {
    kind: HttpKind,
    url: String,
    api_key: Option<SecretString>,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpChannel")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The header providers dedupe on.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

impl HttpChannel {
    pub fn new(
        kind: HttpKind,
        url: String,
        api_key: Option<SecretString>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(HttpChannel {
            kind,
            url,
            api_key,
            client,
        })
    }
}

/// Statuses worth another attempt although they are 4xx: auth (credentials get fixed),
/// timeout, conflict (a concurrent request with the same key), too early, rate limited.
fn retryable_client_status(status: u16) -> bool {
    matches!(status, 401 | 403 | 408 | 409 | 425 | 429)
}

#[async_trait]
impl Channel for HttpChannel {
    fn name(&self) -> &'static str {
        match self.kind {
            HttpKind::Sms => "sms",
            HttpKind::Push => "push",
        }
    }

    fn form(&self) -> Form {
        Form::Short
    }

    fn address(&self, investor: &Investor) -> Result<String, String> {
        match self.kind {
            HttpKind::Sms => investor
                .mobile
                .clone()
                .ok_or_else(|| "no mobile number on file".to_string()),
            HttpKind::Push => Ok(investor.investor_id.clone()),
        }
    }

    async fn send(&self, msg: &Outgoing<'_>) -> Result<Receipt, SendError> {
        let body = ProviderRequest {
            to: msg.to,
            channel: self.name(),
            title: msg.subject,
            message: msg.body,
            template: msg.template,
            reference: msg.idempotency_key,
        };
        let mut request = self
            .client
            .post(&self.url)
            .header(IDEMPOTENCY_HEADER, msg.idempotency_key)
            .json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request.send().await.map_err(|e| {
            SendError::Transient(format!("{} provider unreachable: {e}", self.name()))
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let snippet: String = text.chars().take(200).collect();
        if status.is_success() {
            let provider_ref = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| {
                    ["id", "messageId", "message_id"]
                        .iter()
                        .find_map(|k| v.get(*k).and_then(|x| x.as_str()).map(str::to_string))
                });
            return Ok(Receipt { provider_ref });
        }
        let what = format!("{} provider answered {status}: {snippet}", self.name());
        if status.is_server_error() || retryable_client_status(status.as_u16()) {
            Err(SendError::Transient(what))
        } else {
            Err(SendError::Permanent(what))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Message-ID is derived from the idempotency key only: the same on every attempt.
    #[test]
    fn message_id_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let ch =
            EmailChannel::files(dir.path().join("m"), "Nivesh <alerts@nivesh.example>").unwrap();
        let key = "0195a1b2-0000-7000-8000-000000000001:email";
        assert_eq!(
            ch.message_id(key),
            "<0195a1b2-0000-7000-8000-000000000001.email@nivesh.example>"
        );
        assert_eq!(ch.message_id(key), ch.message_id(key));
        assert!(EmailChannel::files(dir.path().join("m"), "not an address").is_err());
    }

    /// HTTP statuses are classified: 5xx and throttling retry, other 4xx are final.
    #[test]
    fn status_classes() {
        assert!(retryable_client_status(429));
        assert!(retryable_client_status(401));
        assert!(!retryable_client_status(400));
        assert!(!retryable_client_status(422));
    }

    /// A malformed address is a permanent failure, and nothing is written.
    #[tokio::test]
    async fn bad_email_address_is_permanent() {
        let dir = tempfile::tempdir().unwrap();
        let ch =
            EmailChannel::files(dir.path().to_path_buf(), "Nivesh <a@nivesh.example>").unwrap();
        let out = Outgoing {
            idempotency_key: "e1:email",
            to: "not-an-address",
            to_name: "X",
            template: "t",
            subject: "s",
            body: "b",
            at: chrono::Utc::now(),
        };
        assert!(matches!(ch.send(&out).await, Err(SendError::Permanent(_))));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    fn outgoing(to: &str) -> Outgoing<'_> {
        Outgoing {
            idempotency_key: "e1:email",
            to,
            to_name: "Aarav Sharma",
            template: "t",
            subject: "s",
            body: "b",
            at: chrono::Utc::now(),
        }
    }

    /// An SMTP server that cannot be reached is transient (the event is retried).
    #[tokio::test]
    async fn smtp_unreachable_is_transient() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = SecretString::from(format!("smtp://127.0.0.1:{port}"));
        let ch = EmailChannel::smtp(&url, "Nivesh <a@nivesh.example>").unwrap();
        let got = ch.send(&outgoing("aarav.sharma@example.in")).await;
        assert!(matches!(got, Err(SendError::Transient(_))), "{got:?}");
    }

    /// An SMTP server refusing the recipient with 550 is permanent (recorded as failed); the
    /// same server accepting it is a success. The stub speaks just enough SMTP.
    #[tokio::test]
    async fn smtp_reply_codes_are_classified() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut lines = BufReader::new(r).lines();
                    w.write_all(b"220 stub ESMTP\r\n").await.unwrap();
                    let mut in_data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let reply: &[u8] = if in_data {
                            if line != "." {
                                continue;
                            }
                            in_data = false;
                            b"250 queued\r\n"
                        } else {
                            let cmd = line.to_ascii_uppercase();
                            if cmd.starts_with("RCPT") && cmd.contains("NOBODY@") {
                                b"550 5.1.1 no such mailbox\r\n"
                            } else if cmd.starts_with("DATA") {
                                in_data = true;
                                b"354 go ahead\r\n"
                            } else if cmd.starts_with("QUIT") {
                                let _ = w.write_all(b"221 bye\r\n").await;
                                return;
                            } else {
                                b"250 ok\r\n"
                            }
                        };
                        if w.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let url = SecretString::from(format!("smtp://127.0.0.1:{port}"));
        let ch = EmailChannel::smtp(&url, "Nivesh <a@nivesh.example>").unwrap();
        let refused = ch.send(&outgoing("nobody@example.in")).await;
        assert!(
            matches!(refused, Err(SendError::Permanent(_))),
            "{refused:?}"
        );
        let accepted = ch.send(&outgoing("aarav.sharma@example.in")).await;
        assert_eq!(
            accepted,
            Ok(Receipt {
                provider_ref: Some("250".into())
            })
        );
    }

    /// The file transport writes a readable message: UTF-8 body as is, the Message-ID set.
    #[tokio::test]
    async fn eml_file_is_readable() {
        let dir = tempfile::tempdir().unwrap();
        let ch =
            EmailChannel::files(dir.path().to_path_buf(), "Nivesh <a@nivesh.example>").unwrap();
        let out = Outgoing {
            idempotency_key: "e1:email",
            to: "aarav.sharma@example.in",
            to_name: "Aarav Sharma",
            template: "t",
            subject: "Units allotted: ₹5,000.00",
            body: "Amount: ₹5,000.00\nUnits allotted: 49.387\n",
            at: chrono::Utc::now(),
        };
        let receipt = ch.send(&out).await.unwrap();
        let file = dir.path().join(receipt.provider_ref.unwrap());
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.contains("Amount: ₹5,000.00\r\nUnits allotted: 49.387"),
            "{text}"
        );
        assert!(
            text.contains("Message-ID: <e1.email@nivesh.example>"),
            "{text}"
        );
        assert!(
            text.contains("To: \"Aarav Sharma\" <aarav.sharma@example.in>")
                || text.contains("To: Aarav Sharma <aarav.sharma@example.in>"),
            "{text}"
        );
    }
}
