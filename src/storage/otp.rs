//! One-time codes sent by email or SMS, one outstanding per factor.

use sqlx::FromRow;

use super::{Store, StoreResult, with_db};
use crate::clock::UnixTime;

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct OtpCode {
    pub factor_id: String,
    pub code_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub attempts: i64,
    pub used_at: Option<i64>,
}

impl Store {
    /// Stores a factor's new code, replacing (invalidating) the previous one.
    pub async fn store_otp(
        &self,
        factor_id: &str,
        code_hash: &str,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO otp_codes (factor_id, code_hash, created_at, expires_at, attempts, used_at)
                 VALUES ($1, $2, $3, $4, 0, NULL)
                 ON CONFLICT (factor_id) DO UPDATE SET code_hash = excluded.code_hash, created_at = excluded.created_at,
                   expires_at = excluded.expires_at, attempts = 0, used_at = NULL",
            )
            .bind(factor_id)
            .bind(code_hash)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn get_otp(&self, factor_id: &str) -> StoreResult<Option<OtpCode>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT factor_id, code_hash, created_at, expires_at, attempts, used_at FROM otp_codes WHERE factor_id = $1",
            )
            .bind(factor_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Counts one guess at a factor's code, if the code can still be guessed (unused,
    /// unexpired, fewer than `max_attempts` guesses). Returns the code to compare with.
    pub async fn guess_otp(
        &self,
        factor_id: &str,
        now: UnixTime,
        max_attempts: i64,
    ) -> StoreResult<Option<OtpCode>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "UPDATE otp_codes SET attempts = attempts + 1
                 WHERE factor_id = $1 AND used_at IS NULL AND expires_at > $2 AND attempts < $3
                 RETURNING factor_id, code_hash, created_at, expires_at, attempts, used_at",
            )
            .bind(factor_id)
            .bind(now)
            .bind(max_attempts)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Marks a factor's code used. False when it was used already (a concurrent guess won).
    pub async fn use_otp(&self, factor_id: &str, now: UnixTime) -> StoreResult<bool> {
        let used = with_db!(self, |pool| {
            sqlx::query("UPDATE otp_codes SET used_at = $1 WHERE factor_id = $2 AND used_at IS NULL")
                .bind(now)
                .bind(factor_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(used == 1)
    }

    /// Removes a factor that was never confirmed (its code could not be sent).
    pub async fn delete_pending_factor(&self, factor_id: &str) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query("DELETE FROM mfa_factors WHERE id = $1 AND confirmed_at IS NULL")
                .bind(factor_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// A pending factor's code was confirmed: it waits for the user's "Finish".
    pub async fn set_factor_verified(&self, factor_id: &str, now: UnixTime) -> StoreResult<bool> {
        let updated = with_db!(self, |pool| {
            sqlx::query("UPDATE mfa_factors SET verified_at = $1 WHERE id = $2 AND confirmed_at IS NULL")
                .bind(now)
                .bind(factor_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(updated == 1)
    }
}
