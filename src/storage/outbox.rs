//! The outgoing email queue (a transactional outbox).

use sqlx::FromRow;

use super::{Store, StoreResult, with_db};
use crate::clock::UnixTime;

/// A rendered message waiting to be sent.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct OutgoingEmail {
    pub id: String,
    pub recipient: String,
    pub kind: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub sent_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub last_error: Option<String>,
}

/// Queues `$emails` (`&[OutgoingEmail]`) through `$executor`, inside the caller's transaction.
macro_rules! queue_emails {
    ($executor:expr, $emails:expr) => {{
        let emails: &[$crate::storage::OutgoingEmail] = $emails;
        for email in emails {
            sqlx::query(
                "INSERT INTO email_outbox (id, recipient, kind, subject, body_text, body_html, created_at,
                                           attempts, next_attempt_at, sent_at, failed_at, last_error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $7, NULL, NULL, NULL)",
            )
            .bind(&email.id)
            .bind(&email.recipient)
            .bind(&email.kind)
            .bind(&email.subject)
            .bind(&email.body_text)
            .bind(&email.body_html)
            .bind(email.created_at)
            .execute(&mut *$executor)
            .await?;
        }
    }};
}
pub(crate) use queue_emails;

impl Store {
    /// Queues messages on their own.
    pub async fn queue_emails(&self, emails: &[OutgoingEmail]) -> StoreResult<()> {
        use super::BeginWrite;
        with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            queue_emails!(tx, emails);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Messages due for a (first or next) attempt.
    pub async fn due_emails(&self, now: UnixTime, limit: i64) -> StoreResult<Vec<OutgoingEmail>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, recipient, kind, subject, body_text, body_html, created_at, attempts, next_attempt_at,
                        sent_at, failed_at, last_error
                 FROM email_outbox
                 WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1
                 ORDER BY next_attempt_at, id LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Claims a message for one attempt: counts the attempt and pushes the next one to
    /// `retry_at`, so that no other worker (or instance) sends it meanwhile. False when
    /// someone else claimed it first.
    pub async fn claim_email(&self, id: &str, attempts_seen: i64, retry_at: UnixTime) -> StoreResult<bool> {
        let claimed = with_db!(self, |pool| {
            sqlx::query(
                "UPDATE email_outbox SET attempts = attempts + 1, next_attempt_at = $1
                 WHERE id = $2 AND attempts = $3 AND sent_at IS NULL AND failed_at IS NULL",
            )
            .bind(retry_at)
            .bind(id)
            .bind(attempts_seen)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(claimed == 1)
    }

    pub async fn email_sent(&self, id: &str, now: UnixTime) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query("UPDATE email_outbox SET sent_at = $1, last_error = NULL WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records a failed attempt; `give_up` marks the message failed for good.
    pub async fn email_attempt_failed(
        &self,
        id: &str,
        error: &str,
        give_up: Option<UnixTime>,
    ) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query("UPDATE email_outbox SET last_error = $1, failed_at = $2 WHERE id = $3")
                .bind(error)
                .bind(give_up)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Every message to `recipient`, oldest first (for the CLI and tests).
    pub async fn emails_to(&self, recipient: Option<&str>) -> StoreResult<Vec<OutgoingEmail>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, recipient, kind, subject, body_text, body_html, created_at, attempts, next_attempt_at,
                        sent_at, failed_at, last_error
                 FROM email_outbox WHERE $1 IS NULL OR recipient = $1 ORDER BY created_at, id",
            )
            .bind(recipient)
            .fetch_all(pool)
            .await?
        }))
    }
}
