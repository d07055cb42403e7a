//! Grants (what a code exchange issued), refresh token families, revoked access tokens.

use sqlx::FromRow;

use super::mfa::{
    UserContext, UserContextRow, context_columns, context_joins, user_context_columns, user_context_joins,
};
use super::tenancy::UserWithTenancy;
use super::{BeginWrite, PolicyContext, Store, StoreError, StoreResult, with_db};
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

/// A current refresh token's grant, with everything a refresh is judged on.
#[derive(Debug, Clone)]
pub struct RefreshContext {
    pub grant: Grant,
    pub user: UserWithTenancy,
    pub policy: PolicyContext,
    /// The methods (`totp`, `email`, ...) of the user's confirmed factors.
    pub confirmed: Vec<String>,
}

/// What [`Store::refresh_grant`] did.
#[derive(Debug, Clone)]
pub enum Refreshed {
    /// The token was current and is now replaced; what the refresh is judged on, as read
    /// with (or just before) the rotation.
    Rotated(Box<RefreshContext>),
    /// Not rotated: [`RefreshOutcome::Reused`] or [`RefreshOutcome::Invalid`].
    Refused(RefreshOutcome),
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was current: it is now used and the new one is stored. The grant's id.
    Rotated(String),
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

/// Binds a [`Grant`]'s fields to `$query` as its next twelve parameters, in the order of
/// [`grant_columns!`].
macro_rules! bind_grant {
    ($query:expr, $grant:expr) => {{
        let grant: &Grant = $grant;
        $query
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
    }};
}
pub(super) use bind_grant;

/// One refresh-token rotation: store `new_hash` as the successor of `old_hash`.
#[derive(Clone)]
struct Rotation {
    client_id: String,
    old_hash: String,
    new_hash: String,
    new_expires_at: UnixTime,
    now: UnixTime,
}

impl Rotation {
    fn new(client_id: &str, old_hash: &str, new_hash: &str, new_expires_at: UnixTime, now: UnixTime) -> Self {
        Rotation {
            client_id: client_id.to_owned(),
            old_hash: old_hash.to_owned(),
            new_hash: new_hash.to_owned(),
            new_expires_at,
            now,
        }
    }
}

/// The start of a rotation statement: the rotations as a table `req`, whose rows follow
/// (`VALUES (...), ...`) and are closed by `rotation_insert!` (below).
macro_rules! rotation_req {
    () => {
        "WITH req (new_hash, old_hash, client_id, expires_at, now) AS ("
    };
}

/// The `INSERT` of a rotation statement: each successor in `req` whose old token is current
/// for its client is stored; returns `(parent_hash, grant_id)` for each stored.
macro_rules! rotation_store {
    () => {
        "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, parent_hash)
           SELECT req.new_hash, r.grant_id, req.now,
                  CASE WHEN req.expires_at < g.expires_at THEN req.expires_at ELSE g.expires_at END, r.token_hash
           FROM req JOIN refresh_tokens r ON r.token_hash = req.old_hash JOIN grants g ON g.id = r.grant_id
           WHERE r.used_at IS NULL AND r.expires_at > req.now
             AND g.client_id = req.client_id AND g.revoked_at IS NULL AND g.expires_at > req.now
           RETURNING parent_hash, grant_id"
    };
}

/// [`rotation_store!`] for PostgreSQL, with the order of its lookups fixed: each rotation's
/// token by its primary key, then that token's grant by its own. Left to itself, the planner
/// of the one prepared statement every batch shares (`batch::send_rotations`) may plan for ten
/// rotations and a handful of grants (as it does when `grants` has not been analysed since it
/// was small): it then reads every live grant of the client for each batch and probes each
/// one's tokens, which took refresh at 1,000,000 users (and as many grants as logins before
/// it) from 3,600 to 800 per second. A subquery with `OFFSET 0` is not merged into the outer
/// query, so each runs as an index lookup per row of `req` (the read of the stored rotations'
/// grants in [`PG_REFRESH_BATCH`] likewise).
macro_rules! rotation_store_pg {
    () => {
        "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, parent_hash)
           SELECT req.new_hash, r.grant_id, req.now,
                  CASE WHEN req.expires_at < g.expires_at THEN req.expires_at ELSE g.expires_at END, r.token_hash
           FROM req
           CROSS JOIN LATERAL (SELECT r.grant_id, r.token_hash FROM refresh_tokens r
                               WHERE r.token_hash = req.old_hash AND r.used_at IS NULL AND r.expires_at > req.now
                               OFFSET 0) r
           CROSS JOIN LATERAL (SELECT g.expires_at FROM grants g
                               WHERE g.id = r.grant_id AND g.client_id = req.client_id AND g.revoked_at IS NULL
                                 AND g.expires_at > req.now
                               OFFSET 0) g
           RETURNING parent_hash, grant_id"
    };
}

/// The rest of a rotation statement: closes `req` and stores ([`rotation_store!`]).
macro_rules! rotation_insert {
    () => {
        concat!(") ", rotation_store!())
    };
}

/// Stores one rotation's successor through `$executor`: the grant id, or None when the old
/// token is not current for the client.
macro_rules! rotate_one {
    ($executor:expr, $rotation:expr) => {{
        let rotation: &Rotation = $rotation;
        sqlx::query_as::<_, (String, String)>(concat!(
            rotation_req!(),
            "VALUES ($1, $2, $3, $4, $5)",
            rotation_insert!()
        ))
        .bind(&rotation.new_hash)
        .bind(&rotation.old_hash)
        .bind(&rotation.client_id)
        .bind(rotation.new_expires_at)
        .bind(rotation.now)
        .fetch_optional($executor)
        .await
        .map(|stored| stored.map(|(_, grant_id)| grant_id))
    }};
}

/// What a rotation statement stored: None when the old token was not current, or when another
/// rotation of it stored its successor first (the unique index on `parent_hash`).
fn stored<T>(rotated: Result<Option<T>, sqlx::Error>) -> Result<Option<T>, sqlx::Error> {
    match rotated {
        Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => Ok(None),
        rotated => rotated,
    }
}

/// The columns of a [`RefreshContext`]: the grant `g` (its columns prefixed `grant_`) and
/// [`user_context_columns!`]. `$aggregate` as for that macro.
macro_rules! refresh_context_columns {
    ($aggregate:literal) => {
        concat!("SELECT ", refresh_context_fields!($aggregate))
    };
}

/// [`refresh_context_columns!`] without its `SELECT`.
macro_rules! refresh_context_fields {
    ($aggregate:literal) => {
        concat!(
            "g.id AS grant_id, g.client_id AS grant_client_id, g.user_id AS grant_user_id,
                    g.session_id AS grant_session_id, g.scope AS grant_scope, g.auth_time AS grant_auth_time,
                    g.amr AS grant_amr, g.acr AS grant_acr, g.created_at AS grant_created_at,
                    g.expires_at AS grant_expires_at, g.revoked_at AS grant_revoked_at, g.skipped AS grant_skipped, ",
            user_context_columns!($aggregate)
        )
    };
}

/// The tables [`refresh_context_columns!`] reads beside the grant `g`.
macro_rules! refresh_context_joins {
    () => {
        concat!("JOIN users u ON u.id = g.user_id ", user_context_joins!())
    };
}

/// One row of [`refresh_context_columns!`].
#[derive(FromRow)]
struct RefreshContextRow {
    grant_id: String,
    grant_client_id: String,
    grant_user_id: String,
    grant_session_id: String,
    grant_scope: String,
    grant_auth_time: i64,
    grant_amr: String,
    grant_acr: String,
    grant_created_at: i64,
    grant_expires_at: i64,
    grant_revoked_at: Option<i64>,
    grant_skipped: bool,
    #[sqlx(flatten)]
    user: UserContextRow,
}

impl RefreshContextRow {
    fn into_context(self) -> StoreResult<RefreshContext> {
        let UserContext {
            user,
            policy,
            confirmed,
        } = self.user.into_user_context()?;
        Ok(RefreshContext {
            grant: Grant {
                id: self.grant_id,
                client_id: self.grant_client_id,
                user_id: self.grant_user_id,
                session_id: self.grant_session_id,
                scope: self.grant_scope,
                auth_time: self.grant_auth_time,
                amr: self.grant_amr,
                acr: self.grant_acr,
                created_at: self.grant_created_at,
                expires_at: self.grant_expires_at,
                revoked_at: self.grant_revoked_at,
                skipped: self.grant_skipped,
            },
            user,
            policy,
            confirmed,
        })
    }
}

mod batch;

pub use batch::PG_REFRESH_BATCH;
pub(super) use batch::{Waiting, close_pg_rotations};
use batch::{contexts_of_grants, rotate_in_batch, rotate_in_turn};

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

    /// A refresh: presents refresh token `old_hash` for `client_id` as
    /// [`Store::rotate_refresh_token`] does and, when it was current and is now replaced by
    /// `new_hash`, returns what the refresh is judged on ([`RefreshContext`], as it stood
    /// before the rotation). The caller judges afterwards, and revokes the grant when the
    /// user or the policy no longer allows it.
    ///
    /// On PostgreSQL the rotation goes to the database in a batch with the others waiting at
    /// that moment, as one statement that also reads their contexts (see [`rotate_in_batch`]).
    /// On SQLite the rotation waits for the write turn with the others, and the batch reads
    /// the contexts of all its grants at once (see [`rotate_in_turn`]).
    pub async fn refresh_grant(
        &self,
        client_id: &str,
        old_hash: &str,
        new_hash: &str,
        new_expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreResult<Refreshed> {
        let pool = match self {
            Store::Postgres(pool) => pool,
            Store::Sqlite(pool) => {
                let rotation = Rotation::new(client_id, old_hash, new_hash, new_expires_at, now);
                return Ok(match stored(rotate_in_turn(pool, rotation).await)? {
                    Some((_, Some(context))) => Refreshed::Rotated(context),
                    // Its batch could not read the grant: read alone.
                    Some((grant_id, None)) => {
                        let mut connection = pool.acquire().await?;
                        let context = contexts_of_grants(&mut connection, [&grant_id])
                            .await?
                            .remove(&grant_id)
                            .ok_or(StoreError::Missing("grant"))?;
                        Refreshed::Rotated(Box::new(context))
                    }
                    None => Refreshed::Refused(self.refuse_refresh_token(client_id, old_hash, now).await?),
                });
            }
        };
        let rotation = Rotation::new(client_id, old_hash, new_hash, new_expires_at, now);
        Ok(match stored(rotate_in_batch(pool, rotation).await)? {
            Some((_, Some(context))) => Refreshed::Rotated(context),
            // Stored, but its context could not be read back.
            Some((grant_id, None)) => {
                let row: RefreshContextRow = sqlx::query_as(concat!(
                    refresh_context_columns!("string_agg"),
                    " FROM grants g ",
                    refresh_context_joins!(),
                    " WHERE g.id = $1"
                ))
                .bind(&grant_id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::Missing("grant"))?;
                Refreshed::Rotated(Box::new(row.into_context()?))
            }
            None => Refreshed::Refused(self.refuse_refresh_token(client_id, old_hash, now).await?),
        })
    }

    /// Presents refresh token `old_hash` for `client_id`. A current token is marked used
    /// and replaced by `new_hash`; a token used before revokes its whole family (RFC 6819
    /// section 5.2.2.3; concurrent use of one token counts as reuse).
    ///
    /// The rotation is one INSERT of the successor, which names the token it replaces: the
    /// trigger of migration 0005 marks that one used in the same statement, and a unique
    /// index lets only one successor in when two rotations of one token race. On SQLite the
    /// rotations waiting for the write turn are stored together (see [`rotate_in_turn`]).
    pub async fn rotate_refresh_token(
        &self,
        client_id: &str,
        old_hash: &str,
        new_hash: &str,
        new_expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreResult<RefreshOutcome> {
        let rotation = Rotation::new(client_id, old_hash, new_hash, new_expires_at, now);
        let rotated = match self {
            Store::Sqlite(pool) => rotate_in_turn(pool, rotation)
                .await
                .map(|stored| stored.map(|(grant_id, _)| grant_id)),
            Store::Postgres(pool) => rotate_one!(pool, &rotation),
        };
        match stored(rotated)? {
            Some(grant_id) => Ok(RefreshOutcome::Rotated(grant_id)),
            None => self.refuse_refresh_token(client_id, old_hash, now).await,
        }
    }

    /// A refresh token that is not current: [`RefreshOutcome::Reused`] (and its family
    /// revoked) when `client_id` had used it, else [`RefreshOutcome::Invalid`].
    pub async fn refuse_refresh_token(
        &self,
        client_id: &str,
        token_hash: &str,
        now: UnixTime,
    ) -> StoreResult<RefreshOutcome> {
        let family: Option<String> = with_db!(self, |pool| {
            let (_turn, writer) = pool.write_turn().await;
            sqlx::query_scalar(
                "UPDATE grants SET revoked_at = COALESCE(revoked_at, $1)
                 WHERE client_id = $2
                   AND id = (SELECT grant_id FROM refresh_tokens WHERE token_hash = $3 AND used_at IS NOT NULL)
                 RETURNING id",
            )
            .bind(now)
            .bind(client_id)
            .bind(token_hash)
            .fetch_optional(&writer)
            .await?
        });
        Ok(match family {
            Some(_) => RefreshOutcome::Reused,
            None => RefreshOutcome::Invalid,
        })
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
