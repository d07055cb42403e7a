//! Authorization codes.

use sqlx::FromRow;

use super::grants::{Grant, grant_columns, insert_grant, insert_refresh_token};
use super::{BeginWrite, Store, StoreResult, with_db};
use crate::clock::UnixTime;

#[derive(Debug, Clone)]
pub struct NewCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    pub login_id: Option<String>,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: UnixTime,
    pub amr: String,
    pub acr: String,
    /// The request's `acr_values` (JSON), to re-check the MFA decision at the exchange.
    pub acr_values: String,
    /// The user skipped enrolment during this login.
    pub skipped: bool,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

#[derive(Debug, Clone, FromRow)]
pub struct StoredCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    pub login_id: Option<String>,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub amr: String,
    pub acr: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub grant_id: Option<String>,
    pub acr_values: String,
    pub skipped: bool,
}

/// What happened to an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeExchange {
    /// The code was fresh: it is now used, and the grant (and refresh token) exist.
    Exchanged,
    /// Somebody used the code first. The grant that first use created has been revoked.
    Replayed,
}

/// Inserts a [`NewCode`] through `$executor` (a pool or a transaction of either backend).
macro_rules! insert_code {
    ($executor:expr, $code:expr) => {{
        let code: &NewCode = $code;
        sqlx::query(
            "INSERT INTO authorization_codes
               (code_hash, client_id, user_id, session_id, login_id, redirect_uri, scope, nonce,
                code_challenge, auth_time, amr, acr, created_at, expires_at, used_at, grant_id, acr_values, skipped)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, NULL, $15, $16)",
        )
        .bind(&code.code_hash)
        .bind(&code.client_id)
        .bind(&code.user_id)
        .bind(&code.session_id)
        .bind(code.login_id.as_deref())
        .bind(&code.redirect_uri)
        .bind(&code.scope)
        .bind(code.nonce.as_deref())
        .bind(code.code_challenge.as_deref())
        .bind(code.auth_time)
        .bind(&code.amr)
        .bind(&code.acr)
        .bind(code.created_at)
        .bind(code.expires_at)
        .bind(&code.acr_values)
        .bind(code.skipped)
        .execute($executor)
        .await
    }};
}
pub(super) use insert_code;

impl Store {
    pub async fn insert_code(&self, code: &NewCode) -> StoreResult<()> {
        with_db!(self, |pool| {
            insert_code!(pool, code)?;
        });
        Ok(())
    }

    pub async fn get_code(&self, code_hash: &str) -> StoreResult<Option<StoredCode>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT code_hash, client_id, user_id, session_id, login_id, redirect_uri, scope, nonce,
                        code_challenge, auth_time, amr, acr, created_at, expires_at, used_at, grant_id,
                        acr_values, skipped
                 FROM authorization_codes WHERE code_hash = $1",
            )
            .bind(code_hash)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Uses the code and creates `grant` (with its first refresh token, if any), atomically.
    /// When the code was already used, revokes the grant its first use created instead.
    pub async fn exchange_code(
        &self,
        code_hash: &str,
        grant: &Grant,
        refresh: Option<(&str, UnixTime)>,
        now: UnixTime,
    ) -> StoreResult<CodeExchange> {
        Ok(with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let used = sqlx::query(
                "UPDATE authorization_codes SET used_at = $1, grant_id = $2
                 WHERE code_hash = $3 AND used_at IS NULL",
            )
            .bind(now)
            .bind(&grant.id)
            .bind(code_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if used == 1 {
                insert_grant!(&mut *tx, grant)?;
                if let Some((token_hash, expires_at)) = refresh {
                    insert_refresh_token!(&mut *tx, token_hash, &grant.id, now, expires_at)?;
                }
                tx.commit().await?;
                CodeExchange::Exchanged
            } else {
                sqlx::query(
                    "UPDATE grants SET revoked_at = $1
                     WHERE revoked_at IS NULL
                       AND id = (SELECT grant_id FROM authorization_codes WHERE code_hash = $2)",
                )
                .bind(now)
                .bind(code_hash)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                CodeExchange::Replayed
            }
        }))
    }

    /// Revokes the grant a used code created (a replayed code).
    pub async fn revoke_grant_of_code(&self, code_hash: &str, now: UnixTime) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query(
                "UPDATE grants SET revoked_at = $1
                 WHERE revoked_at IS NULL
                   AND id = (SELECT grant_id FROM authorization_codes WHERE code_hash = $2)",
            )
            .bind(now)
            .bind(code_hash)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
