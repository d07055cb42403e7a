//! Failed-attempt counters with lockouts, keyed by account or client address.

use sqlx::FromRow;

use super::{BeginWrite, Store, StoreResult, with_db};
use crate::clock::UnixTime;

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Throttle {
    pub key: String,
    pub failures: i64,
    pub window_start: i64,
    pub locked_until: i64,
}

impl Store {
    /// The counters of `first` and `second` (when given) that exist, in one statement.
    pub async fn get_throttles(&self, first: &str, second: Option<&str>) -> StoreResult<Vec<Throttle>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT key, failures, window_start, locked_until FROM throttles WHERE key IN ($1, $2)",
            )
            .bind(first)
            .bind(second.unwrap_or(first))
            .fetch_all(&mut *pool.read_conn().await?)
            .await?
        }))
    }

    pub async fn get_throttle(&self, key: &str) -> StoreResult<Option<Throttle>> {
        Ok(self.get_throttles(key, None).await?.pop())
    }

    /// Counts one failure for `key` (starting a new window when the last one is older than
    /// `window`), then sets `locked_until` to what `lock_for(failures)` says, atomically.
    /// Returns the counter after the failure.
    pub async fn record_failure(
        &self,
        key: &str,
        now: UnixTime,
        window: i64,
        lock_for: impl Fn(i64) -> Option<i64> + Send,
    ) -> StoreResult<Throttle> {
        Ok(with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut throttle: Throttle = sqlx::query_as(
                "INSERT INTO throttles (key, failures, window_start, locked_until) VALUES ($1, 1, $2, 0)
                 ON CONFLICT (key) DO UPDATE SET
                   failures = CASE WHEN throttles.window_start + $3 <= $2 THEN 1 ELSE throttles.failures + 1 END,
                   window_start = CASE WHEN throttles.window_start + $3 <= $2 THEN $2 ELSE throttles.window_start END
                 RETURNING key, failures, window_start, locked_until",
            )
            .bind(key)
            .bind(now)
            .bind(window)
            .fetch_one(&mut *tx)
            .await?;
            if let Some(seconds) = lock_for(throttle.failures) {
                throttle.locked_until = now + seconds;
                sqlx::query("UPDATE throttles SET locked_until = $1 WHERE key = $2")
                    .bind(throttle.locked_until)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            throttle
        }))
    }

    pub async fn clear_throttle(&self, key: &str) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query("DELETE FROM throttles WHERE key = $1")
                .bind(key)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
