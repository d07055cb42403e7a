//! Grants (what a code exchange issued), refresh token families, revoked access tokens.

use sqlx::FromRow;

use super::{BeginWrite, Store, StoreResult, with_db};
use crate::clock::UnixTime;

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    pub scope: String,
    pub auth_time: i64,
    pub amr: String,
    pub acr: String,
    pub created_at: i64,
    /// The refresh token family ends here, however often it is rotated.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// The login behind the grant skipped enrolment.
    pub skipped: bool,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was current: it is now used and the new one is stored.
    Rotated(Box<Grant>),
    /// The token had been used before: the whole family is now revoked.
    Reused,
    /// Unknown, expired, revoked, or issued to another client. Nothing changed.
    Invalid,
}

macro_rules! grant_columns {
    () => {
        "id, client_id, user_id, session_id, scope, auth_time, amr, acr, created_at, expires_at, revoked_at, skipped"
    };
}
pub(super) use grant_columns;

/// Inserts a [`Grant`] through `$executor` (a pool or a transaction of either backend).
macro_rules! insert_grant {
    ($executor:expr, $grant:expr) => {{
        let grant: &Grant = $grant;
        sqlx::query(concat!(
            "INSERT INTO grants (",
            grant_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&grant.id)
        .bind(&grant.client_id)
        .bind(&grant.user_id)
        .bind(&grant.session_id)
        .bind(&grant.scope)
        .bind(grant.auth_time)
        .bind(&grant.amr)
        .bind(&grant.acr)
        .bind(grant.created_at)
        .bind(grant.expires_at)
        .bind(grant.revoked_at)
        .bind(grant.skipped)
        .execute($executor)
        .await
    }};
}
pub(super) use insert_grant;

/// Inserts a refresh token `($hash, $grant_id, $now, $expires_at)` through `$executor`.
macro_rules! insert_refresh_token {
    ($executor:expr, $hash:expr, $grant_id:expr, $now:expr, $expires_at:expr) => {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, used_at)
             VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind($hash)
        .bind($grant_id)
        .bind($now)
        .bind($expires_at)
        .execute($executor)
        .await
    };
}
pub(super) use insert_refresh_token;

impl Store {
    pub async fn get_grant(&self, id: &str) -> StoreResult<Option<Grant>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Revokes a grant: its access tokens and every refresh token of its family.
    pub async fn revoke_grant(&self, id: &str, now: UnixTime) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The live grant a refresh token belongs to (for introspection and revocation).
    pub async fn grant_of_refresh_token(
        &self,
        token_hash: &str,
        now: UnixTime,
    ) -> StoreResult<Option<(Grant, i64)>> {
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            grant: Grant,
            token_expires_at: i64,
        }
        let row: Option<Row> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT g.id, g.client_id, g.user_id, g.session_id, g.scope, g.auth_time, g.amr, g.acr,
                        g.created_at, g.expires_at, g.revoked_at, g.skipped, r.expires_at AS token_expires_at
                 FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id
                 WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > $2
                   AND g.revoked_at IS NULL AND g.expires_at > $2",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|r| (r.grant, r.token_expires_at)))
    }

    /// Presents refresh token `old_hash` for `client_id`. A current token is marked used
    /// and replaced by `new_hash`; a token used before revokes its whole family (RFC 6819
    /// section 5.2.2.3; concurrent use of one token counts as reuse).
    pub async fn rotate_refresh_token(
        &self,
        client_id: &str,
        old_hash: &str,
        new_hash: &str,
        new_expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreResult<RefreshOutcome> {
        Ok(with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let grant_id: Option<String> = sqlx::query_scalar(
                // EXISTS, not `grant_id IN (SELECT id FROM grants WHERE client_id = ..)`:
                // SQLite evaluates that list by scanning every grant of the client.
                "UPDATE refresh_tokens SET used_at = $1
                 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
                   AND EXISTS (SELECT 1 FROM grants g
                               WHERE g.id = refresh_tokens.grant_id AND g.client_id = $3
                                 AND g.revoked_at IS NULL AND g.expires_at > $1)
                 RETURNING grant_id",
            )
            .bind(now)
            .bind(old_hash)
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await?;
            match grant_id {
                Some(grant_id) => {
                    let grant: Grant =
                        sqlx::query_as(concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = $1"))
                            .bind(&grant_id)
                            .fetch_one(&mut *tx)
                            .await?;
                    let expires_at = new_expires_at.min(grant.expires_at);
                    insert_refresh_token!(&mut *tx, new_hash, &grant_id, now, expires_at)?;
                    tx.commit().await?;
                    RefreshOutcome::Rotated(Box::new(grant))
                }
                None => {
                    let reused: Option<String> = sqlx::query_scalar(
                        "SELECT r.grant_id FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id
                         WHERE r.token_hash = $1 AND r.used_at IS NOT NULL AND g.client_id = $2",
                    )
                    .bind(old_hash)
                    .bind(client_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match reused {
                        Some(grant_id) => {
                            sqlx::query(
                                "UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                            )
                            .bind(now)
                            .bind(&grant_id)
                            .execute(&mut *tx)
                            .await?;
                            tx.commit().await?;
                            RefreshOutcome::Reused
                        }
                        None => {
                            tx.rollback().await?;
                            RefreshOutcome::Invalid
                        }
                    }
                }
            }
        }))
    }

    /// Revokes one access token by its `jti` until it would have expired.
    pub async fn revoke_jti(&self, jti: &str, expires_at: UnixTime) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn is_jti_revoked(&self, jti: &str) -> StoreResult<bool> {
        let found: Option<i64> = with_db!(self, |pool| {
            sqlx::query_scalar("SELECT expires_at FROM revoked_tokens WHERE jti = $1")
                .bind(jti)
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }
}
