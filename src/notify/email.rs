//! Email: messages are rendered from templates, queued in the database in the same
//! transaction as the change they report, and sent by a background worker through SMTP
//! (STARTTLS, implicit TLS or plain), an outbox directory (one `.eml` file per message), or
//! the log. A failed attempt is logged and retried with a growing delay; after
//! `email.max_attempts` the message is marked failed and logged as an error. Nothing the
//! user does waits for, or fails because of, the mail server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use tokio::sync::Notify;

use crate::clock::UnixTime;
use crate::config::{Config, EmailTransport, SmtpTls};
use crate::state::AppState;
use crate::storage::OutgoingEmail;
use crate::templates::{TemplateError, Templates};

/// The kinds of message, each a folder under `templates/email/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MfaEnrolled,
    MfaDisabled,
    MfaReset,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    ResetRequested,
    ResetDeclined,
    OtpCode,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MfaEnrolled => "mfa_enrolled",
            Kind::MfaDisabled => "mfa_disabled",
            Kind::MfaReset => "mfa_reset",
            Kind::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Kind::RecoveryCodeUsed => "recovery_code_used",
            Kind::ResetRequested => "reset_requested",
            Kind::ResetDeclined => "reset_declined",
            Kind::OtpCode => "otp_code",
        }
    }
}

/// Renders a message for the outbox. `context` must carry `company` (used by the layout).
pub fn compose<C: Serialize>(
    templates: &Templates,
    kind: Kind,
    recipient: &str,
    context: &C,
    now: UnixTime,
) -> Result<OutgoingEmail, TemplateError> {
    let folder = format!("email/{}", kind.as_str());
    let subject = templates
        .render(&format!("{folder}/subject.txt"), context)?
        .trim()
        .to_owned();
    let body_text = templates.render(&format!("{folder}/body.txt"), context)?;
    let mut html_context = serde_json::to_value(context).map_err(|e| TemplateError::new(e.to_string()))?;
    if let serde_json::Value::Object(map) = &mut html_context {
        let paragraphs: Vec<String> = body_text
            .split("\n\n")
            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|p| !p.is_empty())
            .collect();
        map.insert("paragraphs".into(), serde_json::json!(paragraphs));
        map.insert("subject".into(), serde_json::json!(subject));
    }
    let body_html = templates.render("email/body.html", &html_context)?;
    Ok(OutgoingEmail {
        id: crate::model::new_id(),
        recipient: recipient.to_owned(),
        kind: kind.as_str().into(),
        subject,
        body_text,
        body_html,
        created_at: now,
        attempts: 0,
        next_attempt_at: now,
        sent_at: None,
        failed_at: None,
        last_error: None,
    })
}

/// "22 Nov 2026 21:05 UTC".
pub fn format_time(at: UnixTime) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[day padding:none] [month repr:short] [year] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| at.to_string())
}

/// Where messages go.
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
    Log,
}

pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    /// Wakes the worker when a message is queued.
    pub wakeup: Arc<Notify>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("email.from: {0}")]
    From(String),
    #[error("email.smtp: {0}")]
    Smtp(String),
}

impl Mailer {
    pub fn from_config(config: &Config) -> Result<Self, MailerError> {
        let from: Mailbox = config
            .email
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| MailerError::From(e.to_string()))?;
        let transport = match (&config.email_outbox, config.email.transport) {
            (Some(dir), _) => Transport::Outbox(dir.clone()),
            (None, EmailTransport::Smtp) => {
                let smtp = &config.email.smtp;
                let builder = match smtp.tls {
                    SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                        .map_err(|e| MailerError::Smtp(e.to_string()))?,
                    SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                        .map_err(|e| MailerError::Smtp(e.to_string()))?,
                    SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
                };
                let mut builder = builder.port(smtp.port).timeout(Some(smtp.timeout));
                if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
                    builder =
                        builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
                }
                Transport::Smtp(builder.build())
            }
            (None, EmailTransport::Outbox | EmailTransport::Log) => Transport::Log,
        };
        Ok(Self {
            transport,
            from,
            wakeup: Arc::new(Notify::new()),
        })
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Sends one queued message.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<(), String> {
        let to: Mailbox = email
            .recipient
            .parse()
            .map_err(|e: lettre::address::AddressError| format!("recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(format!("<{}@portcullis>", email.id)))
            .multipart(MultiPart::alternative_plain_html(
                email.body_text.clone(),
                email.body_html.clone(),
            ))
            .map_err(|e| e.to_string())?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message).await.map(|_| ()).map_err(|e| e.to_string()),
            Transport::Outbox(dir) => {
                tokio::fs::create_dir_all(dir).await.map_err(|e| e.to_string())?;
                let name = format!("{}-{}.eml", email.created_at, email.id);
                let temporary = dir.join(format!(".{name}.tmp"));
                // Written under a temporary name and renamed, so a reader never sees half a file.
                tokio::fs::write(&temporary, message.formatted())
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::fs::rename(&temporary, dir.join(name))
                    .await
                    .map_err(|e| e.to_string())
            }
            Transport::Log => {
                tracing::info!(to = %email.recipient, subject = %email.subject, kind = %email.kind, "email (log transport)");
                Ok(())
            }
        }
    }
}

/// The delay before attempt `attempt + 1`.
pub fn retry_delay(config: &Config, attempt: i64) -> i64 {
    let base = i64::try_from(config.email.retry_base.as_secs())
        .unwrap_or(30)
        .max(1);
    let max = i64::try_from(config.email.retry_max.as_secs())
        .unwrap_or(3600)
        .max(base);
    let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    base.saturating_mul(1_i64 << exponent).min(max)
}

/// Sends what is due, then sleeps until woken or `poll_interval` passes.
pub async fn run_worker(state: AppState) {
    let interval = state.config.email.poll_interval;
    loop {
        if let Err(error) = send_due(&state).await {
            tracing::warn!(%error, "reading the email queue failed");
        }
        let _ = tokio::time::timeout(interval, state.mailer.wakeup.notified()).await;
    }
}

/// One pass over the due messages.
pub async fn send_due(state: &AppState) -> Result<(), crate::storage::StoreError> {
    let now = state.now();
    for email in state.store.due_emails(now, 50).await? {
        let retry_at = now + retry_delay(&state.config, email.attempts + 1);
        if !state
            .store
            .claim_email(&email.id, email.attempts, retry_at)
            .await?
        {
            continue;
        }
        let attempt = email.attempts + 1;
        let outcome = tokio::time::timeout(Duration::from_secs(60), state.mailer.send(&email))
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
        match outcome {
            Ok(()) => state.store.email_sent(&email.id, state.now()).await?,
            Err(error) => {
                let give_up = attempt >= i64::from(state.config.email.max_attempts);
                if give_up {
                    tracing::error!(id = %email.id, to = %email.recipient, kind = %email.kind, attempt, %error,
                        "email could not be sent; giving up");
                } else {
                    tracing::warn!(id = %email.id, to = %email.recipient, kind = %email.kind, attempt, %error,
                        "email could not be sent; will retry");
                }
                state
                    .store
                    .email_attempt_failed(&email.id, &error, give_up.then(|| state.now()))
                    .await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_the_maximum() {
        let config = Config::default();
        assert_eq!(retry_delay(&config, 1), 30);
        assert_eq!(retry_delay(&config, 2), 60);
        assert_eq!(retry_delay(&config, 3), 120);
        assert_eq!(retry_delay(&config, 20), 3600);
    }

    #[test]
    fn messages_render_text_and_escaped_html() {
        let templates = Templates::load().unwrap();
        let email = compose(
            &templates,
            Kind::MfaEnrolled,
            "alice@example.com",
            &serde_json::json!({
                "name": "Alice <script>", "username": "alice", "company": "Globex", "method": "TOTP",
                "when": "1 Jan 2027 10:00 UTC", "account_url": "https://id.example.com/account/security",
            }),
            0,
        )
        .unwrap();
        assert_eq!(
            email.subject,
            "Multi-factor authentication was set up on your Globex account"
        );
        assert!(email.body_text.contains("Hello Alice <script>,"));
        assert!(
            email.body_html.contains("Alice &lt;script&gt;"),
            "{}",
            email.body_html
        );
        assert!(!email.body_html.contains("<script>"));
    }
}
