//! Login transactions: the persisted state of each login in progress.

use sqlx::FromRow;

use super::{Store, StoreResult, with_db};
use crate::clock::UnixTime;

#[derive(Debug, Clone, FromRow)]
pub struct StoredLogin {
    pub id: String,
    pub browser_hash: String,
    pub csrf_token: String,
    pub client_id: String,
    /// The validated authorization request, as JSON.
    pub request: String,
    /// The state machine's state, as JSON.
    pub state: String,
    pub user_id: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Store {
    pub async fn insert_login(&self, login: &StoredLogin) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO login_transactions
                   (id, browser_hash, csrf_token, client_id, request, state, user_id, version, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&login.id)
            .bind(&login.browser_hash)
            .bind(&login.csrf_token)
            .bind(&login.client_id)
            .bind(&login.request)
            .bind(&login.state)
            .bind(login.user_id.as_deref())
            .bind(login.version)
            .bind(login.created_at)
            .bind(login.expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn get_login(&self, id: &str) -> StoreResult<Option<StoredLogin>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, browser_hash, csrf_token, client_id, request, state, user_id, version, created_at, expires_at
                 FROM login_transactions WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Moves a login to a new state if nobody moved it since `expected_version` was read.
    /// Returns false when the login changed in between (a replayed or concurrent step).
    pub async fn advance_login(
        &self,
        id: &str,
        expected_version: i64,
        state: &str,
        user_id: Option<&str>,
    ) -> StoreResult<bool> {
        let updated = with_db!(self, |pool| {
            sqlx::query(
                "UPDATE login_transactions SET state = $1, user_id = $2, version = version + 1
                 WHERE id = $3 AND version = $4",
            )
            .bind(state)
            .bind(user_id)
            .bind(id)
            .bind(expected_version)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    pub async fn delete_expired_logins(&self, now: UnixTime) -> StoreResult<u64> {
        Ok(with_db!(self, |pool| {
            sqlx::query("DELETE FROM login_transactions WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
