//! Browser sessions (single sign-on).

use sqlx::FromRow;

use super::{BeginWrite, Store, StoreResult, with_db};
use crate::clock::UnixTime;

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Session {
    /// Public identifier: the `sid` claim.
    pub id: String,
    pub secret_hash: String,
    pub user_id: String,
    pub auth_time: i64,
    /// JSON array of RFC 8176 method references.
    pub amr: String,
    pub acr: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    /// When a second factor was last verified in this session.
    pub mfa_verified_at: Option<i64>,
}

/// The columns a new [`Session`] is written to, in the order of [`bind_session!`]
/// (`ended_at` starts NULL).
macro_rules! session_insert_columns {
    () => {
        "id, secret_hash, user_id, auth_time, amr, acr, created_at, expires_at, mfa_verified_at"
    };
}
pub(super) use session_insert_columns;

/// Binds a new [`Session`] to `$query`: nine parameters, as [`session_insert_columns!`].
macro_rules! bind_session {
    ($query:expr, $session:expr) => {{
        let session: &Session = $session;
        $query
            .bind(&session.id)
            .bind(&session.secret_hash)
            .bind(&session.user_id)
            .bind(session.auth_time)
            .bind(&session.amr)
            .bind(&session.acr)
            .bind(session.created_at)
            .bind(session.expires_at)
            .bind(session.mfa_verified_at)
    }};
}
pub(super) use bind_session;

/// Inserts a [`Session`] through `$executor` (a pool or a transaction of either backend).
macro_rules! insert_session {
    ($executor:expr, $session:expr) => {
        bind_session!(
            sqlx::query(concat!(
                "INSERT INTO sessions (",
                session_insert_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            )),
            $session
        )
        .execute($executor)
        .await
    };
}
pub(super) use insert_session;

/// Ends session `$id` and revokes the grants issued under it, through `$conn` (a
/// connection or transaction: two statements).
macro_rules! end_session {
    ($conn:expr, $id:expr, $now:expr) => {
        async {
            sqlx::query("UPDATE sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
                .bind($now)
                .bind($id)
                .execute(&mut *$conn)
                .await?;
            sqlx::query("UPDATE grants SET revoked_at = $1 WHERE session_id = $2 AND revoked_at IS NULL")
                .bind($now)
                .bind($id)
                .execute(&mut *$conn)
                .await
        }
        .await
    };
}
pub(super) use end_session;

/// Records a fresh authentication of session `$id`'s own user (single sign-on, step-up,
/// `prompt=login`, `max_age`) through `$executor`, keeping its `sid` so that grants issued
/// under it stay tied to it. `mfa_verified_at` is kept unless a new verification is given.
macro_rules! reauthenticate_session {
    ($executor:expr, $id:expr, $auth_time:expr, $amr:expr, $acr:expr, $expires_at:expr, $mfa_verified_at:expr) => {
        sqlx::query(
            "UPDATE sessions SET auth_time = $1, amr = $2, acr = $3, expires_at = $4,
                    mfa_verified_at = COALESCE($5, mfa_verified_at)
             WHERE id = $6",
        )
        .bind($auth_time)
        .bind($amr)
        .bind($acr)
        .bind($expires_at)
        .bind($mfa_verified_at)
        .bind($id)
        .execute($executor)
        .await
    };
}
pub(super) use reauthenticate_session;

impl Store {
    pub async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        with_db!(self, |pool| {
            insert_session!(pool, session)?;
        });
        Ok(())
    }

    /// The live session whose cookie hashes to `secret_hash`.
    pub async fn find_live_session(&self, secret_hash: &str, now: UnixTime) -> StoreResult<Option<Session>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, secret_hash, user_id, auth_time, amr, acr, created_at, expires_at, ended_at, mfa_verified_at
                 FROM sessions WHERE secret_hash = $1 AND ended_at IS NULL AND expires_at > $2",
            )
            .bind(secret_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn get_session(&self, id: &str) -> StoreResult<Option<Session>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, secret_hash, user_id, auth_time, amr, acr, created_at, expires_at, ended_at, mfa_verified_at
                 FROM sessions WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Ends a session and revokes every grant issued under it, in one transaction.
    pub async fn end_session(&self, id: &str, now: UnixTime) -> StoreResult<()> {
        with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            end_session!(tx, id, now)?;
            tx.commit().await?;
        });
        Ok(())
    }
}

impl Store {
    /// Records a second factor verified in this session (an enrolment, or a code typed on
    /// the account pages): the session's `amr` and `acr` now say MFA.
    pub async fn session_mfa_verified(
        &self,
        id: &str,
        amr: &str,
        acr: &str,
        now: UnixTime,
    ) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query("UPDATE sessions SET amr = $1, acr = $2, mfa_verified_at = $3 WHERE id = $4")
                .bind(amr)
                .bind(acr)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
