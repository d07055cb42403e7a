//! Authorization codes.

use sqlx::FromRow;

use super::grants::{Grant, bind_grant, grant_columns};
use super::inline;
use super::kept::on_kept;
use super::mfa::{
    UserContext, UserContextRow, context_columns, context_joins, user_context_columns, user_context_joins,
};
use super::{BeginWrite, Store, StoreResult, with_db};
use crate::clock::UnixTime;

/// [`Store::exchange_code`] on PostgreSQL: the code's use, the grant and its first refresh
/// token in one statement, so one round trip and one commit instead of five round trips.
/// `$1` to `$12` are the grant ([`bind_grant!`]), then the time, the code's hash, and the
/// refresh token's hash and expiry (none when NULL). Data-modifying `WITH` parts all run once,
/// on one snapshot, and foreign keys are checked at the end of the statement, when the grant
/// exists. Returns how many codes were used: 1, or 0 when the code was used before (nothing
/// is written then).
const PG_EXCHANGE_CODE: &str = concat!(
    "WITH used AS (UPDATE authorization_codes SET used_at = $13, grant_id = $1
                   WHERE code_hash = $14 AND used_at IS NULL RETURNING code_hash),
     new_grant AS (INSERT INTO grants (",
    grant_columns!(),
    ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM used RETURNING id),
     first_token AS (INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, used_at)
                     SELECT $15, id, $13, $16, NULL FROM new_grant WHERE $15::text IS NOT NULL)
     SELECT count(*) FROM used"
);

/// [`Store::exchange_code`] on SQLite, as a script ([`BeginWrite::write_script`]) with the
/// parameters of [`PG_EXCHANGE_CODE`]: one round trip where `BEGIN`, three statements and
/// `COMMIT` were five. SQLite has no writing `WITH`: the grant is inserted only when the code's
/// update changed a row (`changes()` counts the last statement that finished, not the one
/// running), and its refresh token only when the grant was. A replayed code revokes the grant
/// of its first use instead (never this grant, which the code names only when it was used
/// now). The row says whether this grant exists now, that is whether the code was used now.
pub(super) const SQLITE_EXCHANGE_CODE: &str = concat!(
    "BEGIN IMMEDIATE;
     UPDATE authorization_codes SET used_at = $13, grant_id = $1
     WHERE code_hash = $14 AND used_at IS NULL;
     INSERT INTO grants (",
    grant_columns!(),
    ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 WHERE changes() = 1;
     INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, used_at)
     SELECT $15, $1, $13, $16, NULL WHERE changes() = 1 AND $15 IS NOT NULL;
     UPDATE grants SET revoked_at = $13
     WHERE revoked_at IS NULL AND id <> $1
       AND id = (SELECT grant_id FROM authorization_codes WHERE code_hash = $14);
     SELECT count(*) FROM grants WHERE id = $1;
     COMMIT"
);

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

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
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
    /// Read as `code_created_at` (see `code_columns!` below), apart from a user's `created_at`.
    #[sqlx(rename = "code_created_at")]
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub grant_id: Option<String>,
    pub acr_values: String,
    pub skipped: bool,
}

impl StoredCode {
    /// A row of `code_columns!` read inline (`storage::inline`).
    fn from_inline(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(StoredCode {
            code_hash: row.get("code_hash")?,
            client_id: row.get("client_id")?,
            user_id: row.get("user_id")?,
            session_id: row.get("session_id")?,
            login_id: row.get("login_id")?,
            redirect_uri: row.get("redirect_uri")?,
            scope: row.get("scope")?,
            nonce: row.get("nonce")?,
            code_challenge: row.get("code_challenge")?,
            auth_time: row.get("auth_time")?,
            amr: row.get("amr")?,
            acr: row.get("acr")?,
            created_at: row.get("code_created_at")?,
            expires_at: row.get("expires_at")?,
            used_at: row.get("used_at")?,
            grant_id: row.get("grant_id")?,
            acr_values: row.get("acr_values")?,
            skipped: row.get("skipped")?,
        })
    }
}

/// The columns of [`StoredCode`], of the table named by prefix `$t` (`""` or `"ac."`).
macro_rules! code_columns {
    ($t:literal) => {
        concat!(
            $t,
            "code_hash, ",
            $t,
            "client_id, ",
            $t,
            "user_id, ",
            $t,
            "session_id, ",
            $t,
            "login_id, ",
            $t,
            "redirect_uri, ",
            $t,
            "scope, ",
            $t,
            "nonce, ",
            $t,
            "code_challenge, ",
            $t,
            "auth_time, ",
            $t,
            "amr, ",
            $t,
            "acr, ",
            $t,
            "created_at AS code_created_at, ",
            $t,
            "expires_at, ",
            $t,
            "used_at, ",
            $t,
            "grant_id, ",
            $t,
            "acr_values, ",
            $t,
            "skipped"
        )
    };
}

/// An authorization code with everything its exchange is judged on.
#[derive(Debug, Clone)]
pub struct CodeContext {
    pub code: StoredCode,
    /// The state (JSON) of the login transaction the code came from, while it is kept.
    pub login_state: Option<String>,
    pub user: UserContext,
}

/// What happened to an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeExchange {
    /// The code was fresh: it is now used, and the grant (and refresh token) exist.
    Exchanged,
    /// Somebody used the code first. The grant that first use created has been revoked.
    Replayed,
}

/// The columns a [`NewCode`] is written to, in the order of [`bind_new_code!`] (`used_at` and
/// `grant_id` start NULL).
macro_rules! code_insert_columns {
    () => {
        "code_hash, client_id, user_id, session_id, login_id, redirect_uri, scope, nonce,
         code_challenge, auth_time, amr, acr, created_at, expires_at, acr_values, skipped"
    };
}
pub(super) use code_insert_columns;

/// Binds a [`NewCode`] to `$query`: sixteen parameters, as [`code_insert_columns!`].
macro_rules! bind_new_code {
    ($query:expr, $code:expr) => {{
        let code: &NewCode = $code;
        $query
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
    }};
}
pub(super) use bind_new_code;

/// Inserts a [`NewCode`] through `$executor` (a pool or a transaction of either backend).
macro_rules! insert_code {
    ($executor:expr, $code:expr) => {
        bind_new_code!(
            sqlx::query(concat!(
                "INSERT INTO authorization_codes (",
                code_insert_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            )),
            $code
        )
        .execute($executor)
        .await
    };
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
            sqlx::query_as(concat!(
                "SELECT ",
                code_columns!(""),
                " FROM authorization_codes WHERE code_hash = $1"
            ))
            .bind(code_hash)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// A code's [`CodeContext`], in one statement: the code, the state of the login it came
    /// from, its user with tenancy, the policy context and the confirmed methods.
    pub async fn code_context(&self, code_hash: &str) -> StoreResult<Option<CodeContext>> {
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            code: StoredCode,
            login_state: Option<String>,
            #[sqlx(flatten)]
            user: UserContextRow,
        }
        macro_rules! code_context_sql {
            ($aggregate:literal) => {
                concat!(
                    "SELECT ",
                    code_columns!("ac."),
                    ", l.state AS login_state, ",
                    user_context_columns!($aggregate),
                    " FROM authorization_codes ac
                     LEFT JOIN login_transactions l ON l.id = ac.login_id
                     JOIN users u ON u.id = ac.user_id ",
                    user_context_joins!(),
                    " WHERE ac.code_hash = $1"
                )
            };
        }
        let row: Option<Row> = match self {
            Store::Sqlite(pool) => {
                let args = inline::Args::default().bind(code_hash);
                let read = inline::read(pool, |conn| {
                    let mut statement = inline::prepare(conn, code_context_sql!("group_concat"), &args)?;
                    let mut rows = statement.raw_query();
                    rows.next()?
                        .map(|row| {
                            Ok(Row {
                                code: StoredCode::from_inline(row)?,
                                login_state: row.get("login_state")?,
                                user: UserContextRow::from_inline(row)?,
                            })
                        })
                        .transpose()
                })?;
                match read {
                    Ok(row) => row,
                    Err(inline::Busy) => {
                        sqlx::query_as(code_context_sql!("group_concat"))
                            .bind(code_hash)
                            .fetch_optional(&mut *pool.read_conn().await?)
                            .await?
                    }
                }
            }
            Store::Postgres(pool) => on_kept!(pool, |conn| sqlx::query_as(code_context_sql!("string_agg"))
                .bind(code_hash)
                .fetch_optional(conn)
                .await),
        };
        let Some(r) = row else { return Ok(None) };
        Ok(Some(CodeContext {
            code: r.code,
            login_state: r.login_state,
            user: r.user.into_user_context()?,
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
        // `$1` to `$12` the grant, then the time, the code and the refresh token, as both
        // backends' statements take them (sqlx's query or `inline::Args`).
        macro_rules! bind_exchange {
            ($query:expr) => {
                bind_grant!($query, grant)
                    .bind(now)
                    .bind(code_hash)
                    .bind(refresh.map(|(hash, _)| hash))
                    .bind(refresh.map(|(_, expires_at)| expires_at))
            };
        }
        let exchanged = match self {
            Store::Sqlite(pool) => {
                inline::script_did_its_work(
                    pool,
                    SQLITE_EXCHANGE_CODE,
                    &bind_exchange!(inline::Args::default()),
                    || bind_exchange!(sqlx::query::<sqlx::Sqlite>(SQLITE_EXCHANGE_CODE)),
                )
                .await?
            }
            Store::Postgres(pool) => {
                let (used,): (i64,) = on_kept!(pool, |conn| bind_exchange!(sqlx::query_as(PG_EXCHANGE_CODE))
                    .fetch_one(conn)
                    .await);
                if used == 0 {
                    // Used before (nothing was written): the grant of its first use goes.
                    self.revoke_grant_of_code(code_hash, now).await?;
                }
                used == 1
            }
        };
        Ok(if exchanged {
            CodeExchange::Exchanged
        } else {
            CodeExchange::Replayed
        })
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
