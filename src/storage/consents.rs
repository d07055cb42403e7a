//! Scopes users granted to third-party clients.

use super::{Store, StoreResult, with_db};
use crate::clock::UnixTime;

impl Store {
    /// The scope string the user granted the client, if any.
    pub async fn get_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<String>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_scalar("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: UnixTime,
    ) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(scope)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
