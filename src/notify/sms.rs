//! SMS delivery through a provider: Twilio's Messages REST API, a generic HTTPS webhook
//! (for gateways Portcullis does not ship), an outbox file (one JSON line per message, for
//! development and scripts), or the log. Sending is synchronous: a one-time code that
//! arrives late is useless, so a failure is reported to the user at once.

use std::path::PathBuf;

use aws_lc_rs::hmac;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::clock::UnixTime;
use crate::config::{Config, SmsProvider};

/// Header carrying the webhook signature: `t=<unix time>,v1=<hex HMAC-SHA256>`, where the
/// HMAC covers `<unix time>.<body>` under `sms.webhook.secret`.
pub const SIGNATURE_HEADER: &str = "x-portcullis-signature";

pub enum SmsSender {
    Twilio {
        http: reqwest::Client,
        messages_url: String,
        account_sid: String,
        auth_token: String,
        from: Option<String>,
        messaging_service_sid: Option<String>,
    },
    Webhook {
        http: reqwest::Client,
        url: String,
        secret: String,
    },
    Outbox(PathBuf),
    Log,
}

impl std::fmt::Debug for SmsSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SmsSender::Twilio { .. } => "SmsSender::Twilio",
            SmsSender::Webhook { .. } => "SmsSender::Webhook",
            SmsSender::Outbox(_) => "SmsSender::Outbox",
            SmsSender::Log => "SmsSender::Log",
        })
    }
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    /// The provider refused this message (Twilio's error code, if it gave one).
    #[error("the SMS provider refused the message: {message}")]
    Rejected { code: Option<i64>, message: String },
    /// The provider could not be reached, timed out, or failed.
    #[error("the SMS provider is unavailable: {0}")]
    Unavailable(String),
}

impl SmsError {
    /// The provider says the number cannot receive messages (Twilio 21211 invalid number,
    /// 21614 not a mobile number, 21612/21408 unreachable or not permitted).
    pub fn bad_number(&self) -> bool {
        matches!(
            self,
            SmsError::Rejected {
                code: Some(21211 | 21214 | 21408 | 21612 | 21614),
                ..
            }
        )
    }
}

/// Twilio's error body.
#[derive(Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

impl SmsSender {
    pub fn from_config(config: &Config) -> Result<Self, reqwest::Error> {
        let sms = &config.sms;
        let http = || {
            reqwest::Client::builder()
                .timeout(sms.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
        };
        Ok(match (&config.sms_outbox, sms.provider) {
            (Some(path), _) => SmsSender::Outbox(path.clone()),
            (None, SmsProvider::Twilio) => SmsSender::Twilio {
                http: http()?,
                messages_url: format!(
                    "{}/2010-04-01/Accounts/{}/Messages.json",
                    sms.twilio.base_url.trim_end_matches('/'),
                    sms.twilio.account_sid
                ),
                account_sid: sms.twilio.account_sid.clone(),
                auth_token: sms
                    .twilio
                    .auth_token
                    .as_ref()
                    .map(|s| s.expose().to_owned())
                    .unwrap_or_default(),
                from: sms.twilio.from.clone(),
                messaging_service_sid: sms.twilio.messaging_service_sid.clone(),
            },
            (None, SmsProvider::Webhook) => SmsSender::Webhook {
                http: http()?,
                url: sms.webhook.url.clone(),
                secret: sms
                    .webhook
                    .secret
                    .as_ref()
                    .map(|s| s.expose().to_owned())
                    .unwrap_or_default(),
            },
            (None, SmsProvider::Outbox | SmsProvider::Log) => SmsSender::Log,
        })
    }

    /// Sends `body` to `to` (E.164). `id` identifies the message to the provider.
    pub async fn send(&self, id: &str, to: &str, body: &str, now: UnixTime) -> Result<(), SmsError> {
        match self {
            SmsSender::Twilio {
                http,
                messages_url,
                account_sid,
                auth_token,
                from,
                messaging_service_sid,
            } => {
                let mut form = vec![("To", to), ("Body", body)];
                match (messaging_service_sid, from) {
                    (Some(sid), _) => form.push(("MessagingServiceSid", sid)),
                    (None, Some(from)) => form.push(("From", from)),
                    (None, None) => {}
                }
                let response = http
                    .post(messages_url)
                    .basic_auth(account_sid, Some(auth_token))
                    .form(&form)
                    .send()
                    .await
                    .map_err(|e| SmsError::Unavailable(describe(&e)))?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let error: Option<TwilioError> = response.json().await.ok();
                let message = error
                    .as_ref()
                    .and_then(|e| e.message.clone())
                    .unwrap_or_else(|| format!("HTTP {status}"));
                if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    return Err(SmsError::Unavailable(message));
                }
                Err(SmsError::Rejected {
                    code: error.and_then(|e| e.code),
                    message,
                })
            }
            SmsSender::Webhook { http, url, secret } => {
                let payload = json!({ "id": id, "to": to, "body": body, "created_at": now }).to_string();
                let response = http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(SIGNATURE_HEADER, signature(secret, now, &payload))
                    .body(payload)
                    .send()
                    .await
                    .map_err(|e| SmsError::Unavailable(describe(&e)))?;
                let status = response.status();
                match status {
                    s if s.is_success() => Ok(()),
                    s if s.is_client_error() && s != reqwest::StatusCode::TOO_MANY_REQUESTS => {
                        Err(SmsError::Rejected {
                            code: None,
                            message: format!("HTTP {s}"),
                        })
                    }
                    s => Err(SmsError::Unavailable(format!("HTTP {s}"))),
                }
            }
            SmsSender::Outbox(path) => {
                let line = format!(
                    "{}\n",
                    json!({ "id": id, "to": to, "body": body, "created_at": now })
                );
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .map_err(|e| SmsError::Unavailable(e.to_string()))?;
                }
                let mut file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(|e| SmsError::Unavailable(e.to_string()))?;
                // One write per line, so lines from concurrent senders never interleave.
                file.write_all(line.as_bytes())
                    .await
                    .map_err(|e| SmsError::Unavailable(e.to_string()))?;
                file.flush()
                    .await
                    .map_err(|e| SmsError::Unavailable(e.to_string()))
            }
            SmsSender::Log => {
                tracing::info!(%to, %body, "SMS (log provider, development only)");
                Ok(())
            }
        }
    }
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "could not connect".into()
    } else {
        error.to_string()
    }
}

/// `t=<time>,v1=<hex HMAC-SHA256 of "<time>.<body>">`.
pub fn signature(secret: &str, time: UnixTime, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("{time}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={time},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_signatures_cover_time_and_body() {
        let a = signature("0123456789abcdef", 1_700_000_000, "{\"to\":\"+1\"}");
        assert!(a.starts_with("t=1700000000,v1="));
        assert_eq!(a.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature("0123456789abcdef", 1_700_000_001, "{\"to\":\"+1\"}"));
        assert_ne!(a, signature("0123456789abcdef", 1_700_000_000, "{\"to\":\"+2\"}"));
        assert_ne!(a, signature("another secret!!", 1_700_000_000, "{\"to\":\"+1\"}"));
    }

    #[test]
    fn invalid_number_errors_are_recognised() {
        assert!(
            SmsError::Rejected {
                code: Some(21211),
                message: "x".into()
            }
            .bad_number()
        );
        assert!(
            !SmsError::Rejected {
                code: Some(20003),
                message: "x".into()
            }
            .bad_number()
        );
        assert!(!SmsError::Unavailable("x".into()).bad_number());
    }
}
