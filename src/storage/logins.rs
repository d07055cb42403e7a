//! Login transactions: the persisted state of each login in progress.

use sqlx::FromRow;

use super::audit::{audit_columns, bind_audit, insert_audit};
use super::codes::{bind_new_code, code_insert_columns, insert_code};
use super::inline;
use super::kept::on_kept;
use super::sessions::{
    bind_session, end_session, insert_session, reauthenticate_session, session_insert_columns,
};
use super::{AuditEvent, BeginWrite, NewCode, Session, Store, StoreResult, with_db};
use crate::clock::UnixTime;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
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

/// The columns of [`StoredLogin`], in its order.
macro_rules! login_columns {
    () => {
        "id, browser_hash, csrf_token, client_id, request, state, user_id, version, created_at, expires_at"
    };
}
pub(super) use login_columns;

const INSERT_LOGIN: &str = concat!(
    "INSERT INTO login_transactions (",
    login_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);

/// On PostgreSQL, the writes of a login in progress that do not finish it (the login's
/// insert, and its moves between pages) commit without waiting for the write-ahead log to
/// reach the disk: `synchronous_commit` is off for their own transaction only
/// (`set_config(.., true)` is `SET LOCAL`, read when the statement's transaction commits).
/// A crash of the database server can lose the last such commits (a fraction of a second of
/// them), never corrupt anything: a login lost so sends its user back to the application
/// ("Sign-in expired"), a move lost sends them back a page. Neither gives anything: the session,
/// the code, the audit event, the TOTP replay guard and the throttle counters are written
/// with a synchronous commit, which also flushes every write before it.
macro_rules! async_commit {
    () => {
        "WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true)) "
    };
}

/// [`INSERT_LOGIN`] on PostgreSQL, with an [`async_commit!`].
const PG_INSERT_LOGIN: &str = concat!(
    async_commit!(),
    "INSERT INTO login_transactions (",
    login_columns!(),
    ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM async_commit"
);

const GET_LOGIN: &str = concat!(
    "SELECT ",
    login_columns!(),
    " FROM login_transactions WHERE id = $1"
);

/// Binds a [`StoredLogin`] to `$query` (sqlx's, or [`inline::Args`]) as [`INSERT_LOGIN`] takes it.
macro_rules! bind_login {
    ($query:expr, $login:expr) => {{
        let login: &StoredLogin = $login;
        $query
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
    }};
}

impl StoredLogin {
    /// A row of [`GET_LOGIN`] read inline (or another whose first columns are the same).
    pub(super) fn from_inline(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(StoredLogin {
            id: row.get(0)?,
            browser_hash: row.get(1)?,
            csrf_token: row.get(2)?,
            client_id: row.get(3)?,
            request: row.get(4)?,
            state: row.get(5)?,
            user_id: row.get(6)?,
            version: row.get(7)?,
            created_at: row.get(8)?,
            expires_at: row.get(9)?,
        })
    }
}

/// A login's move to its next state, if it is still at `expected_version`.
#[derive(Debug, Clone)]
pub struct Advance<'a> {
    pub id: &'a str,
    pub expected_version: i64,
    /// The next state, as JSON.
    pub state: &'a str,
    pub user_id: Option<&'a str>,
}

const ADVANCE_LOGIN: &str = "UPDATE login_transactions SET state = $1, user_id = $2, version = version + 1
     WHERE id = $3 AND version = $4";

/// [`ADVANCE_LOGIN`] on PostgreSQL, with an [`async_commit!`].
const PG_ADVANCE_LOGIN: &str = concat!(
    async_commit!(),
    "UPDATE login_transactions SET state = $1, user_id = $2, version = version + 1
     FROM async_commit WHERE id = $3 AND version = $4"
);

/// Binds an [`Advance`] to `$query` (sqlx's, or [`inline::Args`]) as `$1` to `$4` of
/// [`ADVANCE_LOGIN`] (and of the scripts that start with it).
macro_rules! bind_advance {
    ($query:expr, $advance:expr) => {{
        let advance: &Advance = $advance;
        $query
            .bind(advance.state)
            .bind(advance.user_id)
            .bind(advance.id)
            .bind(advance.expected_version)
    }};
}

/// Updates a login to an [`Advance`] through `$executor`; one row affected when it was
/// still at the expected version.
macro_rules! advance_login {
    ($executor:expr, $advance:expr) => {
        bind_advance!(sqlx::query(ADVANCE_LOGIN), $advance)
            .execute($executor)
            .await
    };
}

/// [`Store::complete_login`] on PostgreSQL for a login page's usual end (a new session that
/// replaces none, and a code): the login's move, the session, the audit event and the code
/// in one statement, one round trip and one commit where `BEGIN`, four statements and
/// `COMMIT` were six round trips. `$1` to `$4` are the [`Advance`], then the session
/// ([`bind_session!`], nine), the event ([`bind_audit!`], eleven) and the code
/// ([`bind_new_code!`], sixteen). The inserts read the moved login, so nothing is written
/// when it had moved on; the session exists when the code's foreign key is checked, at the
/// end of the statement. Returns how many logins moved: 1 or 0.
const PG_COMPLETE_LOGIN: &str = concat!(
    "WITH moved AS (UPDATE login_transactions SET state = $1, user_id = $2, version = version + 1
                    WHERE id = $3 AND version = $4 RETURNING id),
     new_session AS (INSERT INTO sessions (",
    session_insert_columns!(),
    ") SELECT $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM moved),
     event AS (INSERT INTO audit_events (",
    audit_columns!(),
    ") SELECT $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24 FROM moved),
     new_code AS (INSERT INTO authorization_codes (",
    code_insert_columns!(),
    ") SELECT $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40
       FROM moved)
     SELECT count(*) FROM moved"
);

/// [`PG_COMPLETE_LOGIN`] on SQLite, as a script ([`BeginWrite::write_script`]): the same parameters, one
/// statement each. SQLite has no writing `WITH`, so each insert is made only when the statement
/// before it changed one row (`changes()` counts the last statement that finished, not the one
/// running): all four writes happen, or none after a login that had moved on. The script's one
/// row is the last insert's count: 1 or 0.
pub(super) const SQLITE_COMPLETE_LOGIN: &str = concat!(
    "BEGIN IMMEDIATE;
     UPDATE login_transactions SET state = $1, user_id = $2, version = version + 1
     WHERE id = $3 AND version = $4;
     INSERT INTO sessions (",
    session_insert_columns!(),
    ") SELECT $5, $6, $7, $8, $9, $10, $11, $12, $13 WHERE changes() = 1;
     INSERT INTO audit_events (",
    audit_columns!(),
    ") SELECT $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24 WHERE changes() = 1;
     INSERT INTO authorization_codes (",
    code_insert_columns!(),
    ") SELECT $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40
       WHERE changes() = 1;
     SELECT changes();
     COMMIT"
);

/// What a finished login writes ([`Store::complete_login`]).
#[derive(Debug)]
pub struct Completion<'a> {
    /// The login transaction's final state; none when no login page was involved (single
    /// sign-on straight from `/authorize`).
    pub login: Option<Advance<'a>>,
    pub session: SessionWrite<'a>,
    pub audit: &'a AuditEvent,
    /// None for the provider's own account pages, which need the session only.
    pub code: Option<&'a NewCode>,
    /// When the login finished (a replaced session ends then).
    pub now: UnixTime,
}

/// The browser session a finished login leaves.
#[derive(Debug)]
pub enum SessionWrite<'a> {
    /// A new session; `replaces` (another user's session in this browser) is ended first,
    /// with the grants issued under it.
    Start {
        session: &'a Session,
        replaces: Option<&'a str>,
    },
    /// The session's own user authenticated again (single sign-on, step-up,
    /// `prompt=login`, `max_age`).
    Reauthenticate {
        id: &'a str,
        auth_time: UnixTime,
        amr: &'a str,
        acr: &'a str,
        expires_at: UnixTime,
        mfa_verified_at: Option<UnixTime>,
    },
}

impl Store {
    pub async fn insert_login(&self, login: &StoredLogin) -> StoreResult<()> {
        match self {
            Store::Sqlite(pool) => {
                let args = bind_login!(inline::Args::default(), login);
                let written = inline::write(pool, |conn| {
                    inline::prepare(conn, INSERT_LOGIN, &args)?.raw_execute()
                })
                .await?;
                if written.is_err() {
                    let (_turn, writer) = pool.write_turn().await;
                    bind_login!(sqlx::query(INSERT_LOGIN), login)
                        .execute(&writer)
                        .await?;
                }
            }
            Store::Postgres(pool) => {
                on_kept!(pool, |conn| bind_login!(sqlx::query(PG_INSERT_LOGIN), login)
                    .execute(conn)
                    .await);
            }
        }
        Ok(())
    }

    pub async fn get_login(&self, id: &str) -> StoreResult<Option<StoredLogin>> {
        Ok(match self {
            Store::Sqlite(pool) => {
                let args = inline::Args::default().bind(id);
                let read = inline::read(pool, |conn| {
                    let mut statement = inline::prepare(conn, GET_LOGIN, &args)?;
                    let mut rows = statement.raw_query();
                    rows.next()?.map(StoredLogin::from_inline).transpose()
                })?;
                match read {
                    Ok(login) => login,
                    Err(inline::Busy) => {
                        sqlx::query_as(GET_LOGIN)
                            .bind(id)
                            .fetch_optional(&mut *pool.read_conn().await?)
                            .await?
                    }
                }
            }
            Store::Postgres(pool) => on_kept!(pool, |conn| sqlx::query_as(GET_LOGIN)
                .bind(id)
                .fetch_optional(conn)
                .await),
        })
    }

    /// Moves a login to a new state if nobody moved it since `expected_version` was read.
    /// Returns false when the login changed in between (a replayed or concurrent step).
    pub async fn advance_login(&self, advance: &Advance<'_>) -> StoreResult<bool> {
        Ok(match self {
            Store::Sqlite(pool) => {
                let args = bind_advance!(inline::Args::default(), advance);
                let updated = inline::write(pool, |conn| {
                    inline::prepare(conn, ADVANCE_LOGIN, &args)?.raw_execute()
                })
                .await?;
                match updated {
                    Ok(updated) => updated == 1,
                    Err(inline::Busy) => {
                        let (_turn, writer) = pool.write_turn().await;
                        advance_login!(&writer, advance)?.rows_affected() == 1
                    }
                }
            }
            Store::Postgres(pool) => {
                on_kept!(pool, |conn| bind_advance!(sqlx::query(PG_ADVANCE_LOGIN), advance)
                    .execute(conn)
                    .await)
                .rows_affected()
                    == 1
            }
        })
    }

    /// Writes what a finished login leaves behind, in one transaction: the login's final
    /// state (unless it moved since it was read: then nothing is written and the answer is
    /// false), the browser session, the audit event and the authorization code.
    pub async fn complete_login(&self, completion: &Completion<'_>) -> StoreResult<bool> {
        if let (
            Some(advance),
            SessionWrite::Start {
                session,
                replaces: None,
            },
            Some(code),
        ) = (&completion.login, &completion.session, completion.code)
        {
            // The usual end, in one round trip: `$1` to `$40` as PG_COMPLETE_LOGIN says, bound
            // to either backend's statement (sqlx's query or `inline::Args`).
            macro_rules! bind_completion {
                ($query:expr) => {
                    bind_new_code!(
                        bind_audit!(
                            bind_session!(bind_advance!($query, advance), session),
                            completion.audit
                        ),
                        code
                    )
                };
            }
            let moved = match self {
                Store::Sqlite(pool) => {
                    inline::script_did_its_work(
                        pool,
                        SQLITE_COMPLETE_LOGIN,
                        &bind_completion!(inline::Args::default()),
                        || bind_completion!(sqlx::query::<sqlx::Sqlite>(SQLITE_COMPLETE_LOGIN)),
                    )
                    .await?
                }
                Store::Postgres(pool) => {
                    let query = bind_completion!(sqlx::query_as::<_, (i64,)>(PG_COMPLETE_LOGIN));
                    let rows = on_kept!(pool, |conn| query.fetch_all(conn).await);
                    rows.first().is_some_and(|(moved,)| *moved == 1)
                }
            };
            return Ok(moved);
        }
        with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if let Some(advance) = &completion.login
                && advance_login!(&mut *tx, advance)?.rows_affected() != 1
            {
                tx.rollback().await?;
                return Ok(false);
            }
            match &completion.session {
                SessionWrite::Start { session, replaces } => {
                    if let Some(old) = replaces {
                        end_session!(tx, *old, completion.now)?;
                    }
                    insert_session!(&mut *tx, session)?;
                }
                SessionWrite::Reauthenticate {
                    id,
                    auth_time,
                    amr,
                    acr,
                    expires_at,
                    mfa_verified_at,
                } => {
                    reauthenticate_session!(&mut *tx, id, auth_time, amr, acr, expires_at, mfa_verified_at)?;
                }
            }
            insert_audit!(&mut *tx, completion.audit)?;
            if let Some(code) = completion.code {
                insert_code!(&mut *tx, code)?;
            }
            tx.commit().await?;
        });
        Ok(true)
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
