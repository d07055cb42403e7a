//! Bulk inserts for the benchmark's seeding command: many rows per statement, many
//! statements per transaction, so a million users take seconds, not hours.

use sqlx::QueryBuilder;

use super::{BeginWrite, Store, StoreResult, with_db};
use crate::clock::UnixTime;

/// A user row for bulk seeding (every user gets the same password hash).
#[derive(Debug, Clone)]
pub struct SeedUser {
    pub id: String,
    pub company_id: String,
    pub username: String,
    pub email: String,
}

/// A confirmed TOTP factor for bulk seeding (the secret already sealed).
#[derive(Debug, Clone)]
pub struct SeedFactor {
    pub id: String,
    pub user_id: String,
    pub sealed_secret: Vec<u8>,
}

/// Rows per statement: under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
const ROWS_PER_STATEMENT: usize = 2000;

impl Store {
    /// Inserts users in one transaction.
    pub async fn seed_users(
        &self,
        users: &[SeedUser],
        password_hash: &str,
        now: UnixTime,
    ) -> StoreResult<()> {
        with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for chunk in users.chunks(ROWS_PER_STATEMENT) {
                let mut query = QueryBuilder::new(
                    "INSERT INTO users (id, company_id, username, email, email_verified, phone, name, role,
                                        password_hash, active, created_at, updated_at) ",
                );
                query.push_values(chunk, |mut row, user| {
                    row.push_bind(&user.id)
                        .push_bind(&user.company_id)
                        .push_bind(&user.username)
                        .push_bind(&user.email)
                        .push_bind(false)
                        .push_bind(None::<String>)
                        .push_bind(None::<String>)
                        .push_bind("user")
                        .push_bind(password_hash)
                        .push_bind(true)
                        .push_bind(now)
                        .push_bind(now);
                });
                query.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Inserts confirmed TOTP factors in one transaction.
    pub async fn seed_totp_factors(&self, factors: &[SeedFactor], now: UnixTime) -> StoreResult<()> {
        with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for chunk in factors.chunks(ROWS_PER_STATEMENT) {
                let mut query = QueryBuilder::new(
                    "INSERT INTO mfa_factors (id, user_id, kind, secret, destination, last_step, created_at, confirmed_at) ",
                );
                query.push_values(chunk, |mut row, factor| {
                    row.push_bind(&factor.id)
                        .push_bind(&factor.user_id)
                        .push_bind("totp")
                        .push_bind(&factor.sealed_secret)
                        .push_bind(None::<String>)
                        .push_bind(None::<i64>)
                        .push_bind(now)
                        .push_bind(now);
                });
                query.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}
