//! Signing keys (sealed private keys and their public JWKs).

use sqlx::FromRow;

use super::{BeginWrite, Store, StoreResult, with_db, write_error};
use crate::clock::UnixTime;

#[derive(Debug, Clone, FromRow)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub private_key: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl Store {
    /// Adds a key and retires the keys of the same algorithm that were in use, in one
    /// transaction: from now on `key` signs, the retired ones only verify.
    pub async fn insert_key_and_retire_others(&self, key: &StoredKey, now: UnixTime) -> StoreResult<()> {
        with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE alg = $2 AND retired_at IS NULL")
                .bind(now)
                .bind(&key.alg)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at, retired_at)
                 VALUES ($1, $2, $3, $4, $5, NULL)",
            )
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.private_key)
            .bind(&key.public_jwk)
            .bind(key.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| write_error(e, "signing key", "signing key"))?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Keys still worth publishing: in use, or retired after `retired_after` (their tokens
    /// may still be live). Newest first.
    pub async fn published_keys(&self, retired_after: UnixTime) -> StoreResult<Vec<StoredKey>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT kid, alg, private_key, public_jwk, created_at, retired_at FROM signing_keys
                 WHERE retired_at IS NULL OR retired_at > $1
                 ORDER BY created_at DESC, kid DESC",
            )
            .bind(retired_after)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Every key, newest first (for `keys list`).
    pub async fn all_keys(&self) -> StoreResult<Vec<StoredKey>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT kid, alg, private_key, public_jwk, created_at, retired_at FROM signing_keys
                 ORDER BY created_at DESC, kid DESC",
            )
            .fetch_all(pool)
            .await?
        }))
    }
}
