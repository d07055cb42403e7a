//! Second factors, recovery codes and MFA reset requests. Every change that alters a
//! user's MFA set-up takes the notification emails to queue in the same transaction.

use sqlx::FromRow;

use super::inline;
use super::kept::on_kept;
use super::outbox::queue_emails;
use super::{BeginWrite, OutgoingEmail, Store, StoreResult, with_db, write_error};
use crate::clock::UnixTime;

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Factor {
    pub id: String,
    pub user_id: String,
    /// `totp`, `email`, `sms` or `webauthn`.
    pub kind: String,
    /// Sealed under the master key (TOTP).
    pub secret: Option<Vec<u8>>,
    /// The address or number (email, SMS).
    pub destination: Option<String>,
    pub last_step: Option<i64>,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    /// Email and SMS: the code sent to the destination was confirmed (waiting for Finish).
    pub verified_at: Option<i64>,
}

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ResetRequest {
    pub id: String,
    pub user_id: String,
    pub company_id: String,
    pub status: String,
    pub source: String,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
}

/// What filing a reset request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetFiled {
    Created,
    /// A request was already pending: nothing new was filed (and no email queued).
    AlreadyPending(ResetRequest),
}

macro_rules! factor_columns {
    () => {
        "id, user_id, kind, secret, destination, last_step, created_at, confirmed_at, verified_at"
    };
}

/// Replaces the user's recovery codes with `$hashes` through `$tx`.
macro_rules! replace_recovery_codes {
    ($tx:expr, $user_id:expr, $hashes:expr, $now:expr) => {{
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind($user_id)
            .execute(&mut *$tx)
            .await?;
        for hash in $hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash, created_at, used_at) VALUES ($1, $2, $3, NULL)")
                .bind($user_id)
                .bind(hash)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

impl Store {
    /// Confirmed and pending factors of a user, oldest first.
    pub async fn factors_of(&self, user_id: &str) -> StoreResult<Vec<Factor>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                factor_columns!(),
                " FROM mfa_factors WHERE user_id = $1 ORDER BY created_at, id"
            ))
            .bind(user_id)
            .fetch_all(&mut *pool.read_conn().await?)
            .await?
        }))
    }

    pub async fn get_factor(&self, id: &str) -> StoreResult<Option<Factor>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                factor_columns!(),
                " FROM mfa_factors WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Stores a factor awaiting confirmation, replacing the user's other pending factors
    /// of the same kind.
    pub async fn insert_pending_factor(&self, factor: &Factor) -> StoreResult<()> {
        with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM mfa_factors WHERE user_id = $1 AND kind = $2 AND confirmed_at IS NULL")
                .bind(&factor.user_id)
                .bind(&factor.kind)
                .execute(&mut *tx)
                .await?;
            sqlx::query(concat!(
                "INSERT INTO mfa_factors (",
                factor_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL)"
            ))
            .bind(&factor.id)
            .bind(&factor.user_id)
            .bind(&factor.kind)
            .bind(factor.secret.as_deref())
            .bind(factor.destination.as_deref())
            .bind(factor.last_step)
            .bind(factor.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| write_error(e, "factor", "user"))?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Activates a pending factor: it replaces any confirmed factor of the same kind, ends
    /// the remembered skip, and (for a first enrolment) stores the recovery codes. The
    /// notification is queued in the same transaction. False when the factor was no longer
    /// pending.
    pub async fn confirm_factor(
        &self,
        factor: &Factor,
        last_step: Option<i64>,
        recovery_code_hashes: Option<&[String]>,
        emails: &[OutgoingEmail],
        now: UnixTime,
    ) -> StoreResult<bool> {
        Ok(with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let confirmed = sqlx::query(
                "UPDATE mfa_factors SET confirmed_at = $1, last_step = $2 WHERE id = $3 AND confirmed_at IS NULL",
            )
            .bind(now)
            .bind(last_step)
            .bind(&factor.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if confirmed != 1 {
                tx.rollback().await?;
                false
            } else {
                sqlx::query("DELETE FROM mfa_factors WHERE user_id = $1 AND kind = $2 AND id <> $3")
                    .bind(&factor.user_id)
                    .bind(&factor.kind)
                    .bind(&factor.id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE user_mfa SET skipped_at = NULL, skip_count = 0, updated_at = $1 WHERE user_id = $2")
                    .bind(now)
                    .bind(&factor.user_id)
                    .execute(&mut *tx)
                    .await?;
                if let Some(hashes) = recovery_code_hashes {
                    replace_recovery_codes!(tx, &factor.user_id, hashes, now);
                }
                queue_emails!(tx, emails);
                tx.commit().await?;
                true
            }
        }))
    }

    /// Accepts TOTP time step `step` for a factor if no later or equal step was accepted
    /// before (RFC 6238 section 5.2: a code is accepted once). Atomic across instances.
    pub async fn accept_totp_step(&self, factor_id: &str, step: i64) -> StoreResult<bool> {
        const ACCEPT: &str = "UPDATE mfa_factors SET last_step = $1
             WHERE id = $2 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $1)";
        Ok(match self {
            Store::Sqlite(pool) => {
                let args = inline::Args::default().bind(step).bind(factor_id);
                let updated =
                    inline::write(pool, |conn| inline::prepare(conn, ACCEPT, &args)?.raw_execute()).await?;
                match updated {
                    Ok(updated) => updated == 1,
                    Err(inline::Busy) => {
                        let (_turn, writer) = pool.write_turn().await;
                        sqlx::query(ACCEPT)
                            .bind(step)
                            .bind(factor_id)
                            .execute(&writer)
                            .await?
                            .rows_affected()
                            == 1
                    }
                }
            }
            Store::Postgres(pool) => {
                on_kept!(pool, |conn| sqlx::query(ACCEPT)
                    .bind(step)
                    .bind(factor_id)
                    .execute(conn)
                    .await)
                .rows_affected()
                    == 1
            }
        })
    }

    /// Removes one factor; when it was the user's last confirmed one, their recovery codes
    /// go too. Returns false when there was no such factor.
    pub async fn remove_factor(
        &self,
        factor_id: &str,
        user_id: &str,
        emails: &[OutgoingEmail],
    ) -> StoreResult<bool> {
        Ok(with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let removed = sqlx::query("DELETE FROM mfa_factors WHERE id = $1 AND user_id = $2")
                .bind(factor_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if removed != 1 {
                tx.rollback().await?;
                false
            } else {
                sqlx::query(
                    "DELETE FROM recovery_codes WHERE user_id = $1
                     AND NOT EXISTS (SELECT 1 FROM mfa_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL)",
                )
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM mfa_reset_requests WHERE user_id = $1 AND status = 'pending'")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                queue_emails!(tx, emails);
                tx.commit().await?;
                true
            }
        }))
    }

    /// Resets a user's MFA: every factor, recovery code and the remembered skip are
    /// cleared; a pending reset request is marked approved by `decided_by`.
    pub async fn reset_user_mfa(
        &self,
        user_id: &str,
        decided_by: Option<&str>,
        emails: &[OutgoingEmail],
        now: UnixTime,
    ) -> StoreResult<()> {
        with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for sql in [
                "DELETE FROM mfa_factors WHERE user_id = $1",
                "DELETE FROM recovery_codes WHERE user_id = $1",
            ] {
                sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
            }
            sqlx::query(
                "UPDATE user_mfa SET skipped_at = NULL, skip_count = 0, updated_at = $1 WHERE user_id = $2",
            )
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE mfa_reset_requests SET status = 'approved', decided_at = $1, decided_by = $2
                 WHERE user_id = $3 AND status = 'pending'",
            )
            .bind(now)
            .bind(decided_by)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            queue_emails!(tx, emails);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Uses one recovery code (by its hash). False when it is unknown or already used.
    pub async fn use_recovery_code(
        &self,
        user_id: &str,
        code_hash: &str,
        now: UnixTime,
    ) -> StoreResult<bool> {
        let used = with_db!(self, |pool| {
            sqlx::query(
                "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
            )
            .bind(now)
            .bind(user_id)
            .bind(code_hash)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(used == 1)
    }

    /// How many unused recovery codes the user has left.
    pub async fn recovery_codes_left(&self, user_id: &str) -> StoreResult<i64> {
        Ok(with_db!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
                .bind(user_id)
                .fetch_one(pool)
                .await?
        }))
    }

    /// Replaces the user's recovery codes and queues the notification.
    pub async fn regenerate_recovery_codes(
        &self,
        user_id: &str,
        hashes: &[String],
        emails: &[OutgoingEmail],
        now: UnixTime,
    ) -> StoreResult<()> {
        with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            replace_recovery_codes!(tx, user_id, hashes, now);
            queue_emails!(tx, emails);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Files a reset request unless one is already pending (then nothing is written).
    pub async fn file_reset_request(
        &self,
        request: &ResetRequest,
        emails: &[OutgoingEmail],
    ) -> StoreResult<ResetFiled> {
        if let Some(pending) = self.pending_reset_request(&request.user_id).await? {
            return Ok(ResetFiled::AlreadyPending(pending));
        }
        let inserted: Result<(), sqlx::Error> = with_db!(self, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                sqlx::query(
                    "INSERT INTO mfa_reset_requests (id, user_id, company_id, status, source, created_at, decided_at, decided_by)
                     VALUES ($1, $2, $3, 'pending', $4, $5, NULL, NULL)",
                )
                .bind(&request.id)
                .bind(&request.user_id)
                .bind(&request.company_id)
                .bind(&request.source)
                .bind(request.created_at)
                .execute(&mut *tx)
                .await?;
                queue_emails!(tx, emails);
                tx.commit().await
            }
            .await
        });
        match inserted {
            Ok(()) => Ok(ResetFiled::Created),
            // Another request won the race for the one pending slot.
            Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
                match self.pending_reset_request(&request.user_id).await? {
                    Some(pending) => Ok(ResetFiled::AlreadyPending(pending)),
                    None => Err(e.into()),
                }
            }
            Err(e) => Err(write_error(e, "reset request", "user or company")),
        }
    }

    pub async fn pending_reset_request(&self, user_id: &str) -> StoreResult<Option<ResetRequest>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, user_id, company_id, status, source, created_at, decided_at, decided_by
                 FROM mfa_reset_requests WHERE user_id = $1 AND status = 'pending'",
            )
            .bind(user_id)
            .fetch_optional(pool)
            .await?
        }))
    }
}

impl Store {
    /// Users of a company who have at least one confirmed factor.
    pub async fn users_with_factors(&self, company_id: &str) -> StoreResult<Vec<String>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_scalar(
                "SELECT DISTINCT u.id FROM users u JOIN mfa_factors f ON f.user_id = u.id
                 WHERE u.company_id = $1 AND f.confirmed_at IS NOT NULL ORDER BY u.id",
            )
            .bind(company_id)
            .fetch_all(pool)
            .await?
        }))
    }
}
