//! Deleting state nobody can use any more.

use super::{BeginWrite, Store, StoreResult, with_db};
use crate::clock::UnixTime;

/// The statements of [`Store::purge_expired`], in order, each given the horizon as `$1`. Each
/// reaches its rows through an index on the expiry (migration 0006).
pub const PURGE_STATEMENTS: [&str; 7] = [
    "DELETE FROM login_transactions WHERE expires_at <= $1",
    "DELETE FROM authorization_codes WHERE expires_at <= $1",
    "DELETE FROM refresh_tokens WHERE expires_at <= $1",
    "DELETE FROM grants WHERE expires_at <= $1 OR revoked_at <= $1",
    "DELETE FROM sessions WHERE expires_at <= $1 OR ended_at <= $1",
    "DELETE FROM revoked_tokens WHERE expires_at <= $1",
    "DELETE FROM throttles WHERE locked_until <= $1 AND window_start <= $1",
];

impl Store {
    /// Deletes expired logins, codes, sessions, grants (with their refresh tokens), revoked
    /// token entries and idle throttles. `keep` seconds of history are kept past expiry so
    /// that a late replay is still recognised as one. Returns the number of rows deleted.
    pub async fn purge_expired(&self, now: UnixTime, keep: i64) -> StoreResult<u64> {
        let horizon = now - keep;
        let mut deleted = 0;
        for sql in PURGE_STATEMENTS {
            deleted += with_db!(self, |pool| {
                // On SQLite in this process's write turn, as every other writer.
                let (_turn, writer) = pool.write_turn().await;
                sqlx::query(sql)
                    .bind(horizon)
                    .execute(&writer)
                    .await?
                    .rows_affected()
            });
        }
        Ok(deleted)
    }
}
