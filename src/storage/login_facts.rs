//! What a login step reads before it decides, in one statement: the login transaction, the
//! user (by the login name typed, or the one the login names) with their policy context and
//! factors, and the failure counters of the step's throttle keys. It is the same statement
//! whether or not the user exists: a name that matches no user skips the user's joins, tens
//! of microseconds (the whole statement took 0.06 ms in PostgreSQL with a user), beside the
//! password hash of about 15 ms that both pay.

use sqlx::{FromRow, Row};

use super::inline;
use super::kept::on_kept;
use super::logins::{StoredLogin, login_columns};
use super::mfa::{
    UserContextRow, context_columns, context_joins, factor_object, factors_from_json, factors_json,
    user_and_context_columns, user_context_joins,
};
use super::tenancy::UserWithTenancy;
use super::{BeginWrite, Factor, PolicyContext, Store, StoreResult, Throttle};

/// Which user a login step is about, and the throttle keys whose counters it reads.
#[derive(Debug, Clone, Copy)]
pub enum LoginUser<'a> {
    /// By the name typed on the login page (None when it is not a valid login name, which no
    /// user has), with the counters of keys `first` and `second`.
    Name {
        name: Option<&'a str>,
        first: &'a str,
        second: Option<&'a str>,
    },
    /// The user the login transaction names (once the password step has found them), with
    /// the counters of the key `key_prefix` followed by their id.
    OfLogin { key_prefix: &'a str },
}

/// What [`Store::login_facts`] read.
#[derive(Debug)]
pub struct LoginFacts {
    /// The login transaction, when there is one with the id given.
    pub login: Option<StoredLogin>,
    /// The counters of the throttle keys that have failures on record.
    pub throttles: Vec<Throttle>,
    /// The user, when there is one, with their policy context and their factors (oldest
    /// first).
    pub user: Option<(UserWithTenancy, PolicyContext, Vec<Factor>)>,
}

/// The statement of [`Store::login_facts`]: the login transaction `$4` (its columns first, in
/// [`login_columns!`]'s order, named `login_` and theirs), the counters of the throttle keys
/// `$first_key` and `$3` (prefixed `first_` and `second_`) and the user matching `$condition`
/// (on `users u`; all NULL when none matches), as
/// [`user_context_columns!`](super::mfa::user_context_columns) names them (but `confirmed`,
/// NULL here), with their factors as `factors`. `$first_key` may read the login's columns
/// (`l.user_id`), `$condition` its user id as `(SELECT user_id FROM l)`. One row, whatever
/// matched.
macro_rules! login_facts_sql {
    ($aggregate:tt, $condition:literal, $first_key:literal) => {
        concat!(
            "WITH l AS (SELECT ",
            login_columns!(),
            " FROM login_transactions WHERE id = $4)
             SELECT l.id AS login_id, l.browser_hash AS login_browser_hash,
                    l.csrf_token AS login_csrf_token, l.client_id AS login_client_id,
                    l.request AS login_request, l.state AS login_state, l.user_id AS login_user_id,
                    l.version AS login_version, l.created_at AS login_created_at,
                    l.expires_at AS login_expires_at,
                    t1.key AS first_key, t1.failures AS first_failures,
                    t1.window_start AS first_window_start, t1.locked_until AS first_locked_until,
                    t2.key AS second_key, t2.failures AS second_failures,
                    t2.window_start AS second_window_start, t2.locked_until AS second_locked_until,
                    x.*
             FROM (SELECT 1 AS one) one
             LEFT JOIN l ON 1 = 1
             LEFT JOIN throttles t1 ON t1.key = ",
            $first_key,
            "
             LEFT JOIN throttles t2 ON t2.key = $3
             LEFT JOIN (SELECT ",
            user_and_context_columns!($aggregate),
            // The kinds of the confirmed factors are not read again: the factors are all here.
            ", NULL AS confirmed, ",
            factors_json!($aggregate, "u.id"),
            " AS factors FROM users u ",
            user_context_joins!(),
            " WHERE ",
            $condition,
            ") x ON 1 = 1"
        )
    };
}

/// [`login_facts_sql!`] for [`LoginUser::Name`]: the name is `$1`, the keys `$2` and `$3`.
macro_rules! login_facts_by_name_sql {
    ($aggregate:tt) => {
        login_facts_sql!($aggregate, "u.username = $1", "$2")
    };
}

/// [`login_facts_sql!`] for [`LoginUser::OfLogin`]: the key is `$2` followed by the user's id
/// (`$1` and `$3` are NULL).
macro_rules! login_facts_of_login_sql {
    ($aggregate:tt) => {
        login_facts_sql!($aggregate, "u.id = (SELECT user_id FROM l)", "$2 || l.user_id")
    };
}

/// One row of [`login_facts_sql!`].
struct LoginFactsRow {
    login: Option<StoredLogin>,
    throttles: Vec<Throttle>,
    /// The user's columns, and their factors as JSON, when a user matched.
    user: Option<(UserContextRow, Option<String>)>,
}

/// The throttle counters of a [`login_facts_sql!`] row: `read(prefix)` reads those of one key
/// (`first` or `second`), None when it has none; a key given twice is counted once.
fn throttles<E>(mut read: impl FnMut(&str) -> Result<Option<Throttle>, E>) -> Result<Vec<Throttle>, E> {
    let mut throttles: Vec<Throttle> = Vec::new();
    for prefix in ["first", "second"] {
        if let Some(throttle) = read(prefix)?
            && !throttles.iter().any(|t| t.key == throttle.key)
        {
            throttles.push(throttle);
        }
    }
    Ok(throttles)
}

impl LoginFactsRow {
    /// A row of [`login_facts_sql!`] read inline (`storage::inline`).
    fn from_inline(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let login = match row.get::<_, Option<String>>(0)? {
            Some(_) => Some(StoredLogin::from_inline(row)?),
            None => None,
        };
        let throttles = throttles(|prefix| -> rusqlite::Result<Option<Throttle>> {
            let column = |name: &str| format!("{prefix}_{name}");
            let Some(key) = row.get::<_, Option<String>>(column("key").as_str())? else {
                return Ok(None);
            };
            Ok(Some(Throttle {
                key,
                failures: row.get(column("failures").as_str())?,
                window_start: row.get(column("window_start").as_str())?,
                locked_until: row.get(column("locked_until").as_str())?,
            }))
        })?;
        let user = match row.get::<_, Option<String>>("id")? {
            Some(_) => Some((UserContextRow::from_inline(row)?, row.get("factors")?)),
            None => None,
        };
        Ok(Self {
            login,
            throttles,
            user,
        })
    }
}

/// [`FromRow`] for [`LoginFactsRow`] on one backend's rows: the login's columns and the
/// user's are read only when a login or a user matched (`login_id` or `id` is not NULL),
/// since they are all NULL otherwise.
macro_rules! login_facts_from_row {
    ($row:ty) => {
        impl<'r> FromRow<'r, $row> for LoginFactsRow {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                let login = match row.try_get::<Option<String>, _>("login_id")? {
                    Some(id) => Some(StoredLogin {
                        id,
                        browser_hash: row.try_get("login_browser_hash")?,
                        csrf_token: row.try_get("login_csrf_token")?,
                        client_id: row.try_get("login_client_id")?,
                        request: row.try_get("login_request")?,
                        state: row.try_get("login_state")?,
                        user_id: row.try_get("login_user_id")?,
                        version: row.try_get("login_version")?,
                        created_at: row.try_get("login_created_at")?,
                        expires_at: row.try_get("login_expires_at")?,
                    }),
                    None => None,
                };
                let throttles = throttles(|prefix| -> Result<Option<Throttle>, sqlx::Error> {
                    let column = |name: &str| format!("{prefix}_{name}");
                    let Some(key) = row.try_get::<Option<String>, _>(column("key").as_str())? else {
                        return Ok(None);
                    };
                    Ok(Some(Throttle {
                        key,
                        failures: row.try_get(column("failures").as_str())?,
                        window_start: row.try_get(column("window_start").as_str())?,
                        locked_until: row.try_get(column("locked_until").as_str())?,
                    }))
                })?;
                let user = match row.try_get::<Option<String>, _>("id")? {
                    Some(_) => Some((UserContextRow::from_row(row)?, row.try_get("factors")?)),
                    None => None,
                };
                Ok(Self {
                    login,
                    throttles,
                    user,
                })
            }
        }
    };
}
login_facts_from_row!(sqlx::sqlite::SqliteRow);
login_facts_from_row!(sqlx::postgres::PgRow);

impl Store {
    /// What a login step reads before it decides, in one statement: login transaction
    /// `login_id`, the step's user with their policy context and factors, and the counters of
    /// the step's throttle keys. The password and challenge steps read them all at once.
    pub async fn login_facts(&self, login_id: &str, user: LoginUser<'_>) -> StoreResult<LoginFacts> {
        // The statement for each backend's string aggregate, and `$1` to `$3`.
        let (sqlite_sql, pg_sql, name, first, second) = match user {
            LoginUser::Name { name, first, second } => (
                login_facts_by_name_sql!("group_concat"),
                login_facts_by_name_sql!("string_agg"),
                name,
                first,
                second,
            ),
            LoginUser::OfLogin { key_prefix } => (
                login_facts_of_login_sql!("group_concat"),
                login_facts_of_login_sql!("string_agg"),
                None,
                key_prefix,
                None,
            ),
        };
        let row: Option<LoginFactsRow> = match self {
            Store::Sqlite(pool) => {
                let args = inline::Args::default()
                    .bind(name)
                    .bind(first)
                    .bind(second)
                    .bind(login_id);
                let read = inline::read(pool, |conn| {
                    let mut statement = inline::prepare(conn, sqlite_sql, &args)?;
                    let mut rows = statement.raw_query();
                    rows.next()?.map(LoginFactsRow::from_inline).transpose()
                })?;
                match read {
                    Ok(row) => row,
                    Err(inline::Busy) => {
                        sqlx::query_as(sqlite_sql)
                            .bind(name)
                            .bind(first)
                            .bind(second)
                            .bind(login_id)
                            .fetch_optional(&mut *pool.read_conn().await?)
                            .await?
                    }
                }
            }
            Store::Postgres(pool) => on_kept!(pool, |conn| sqlx::query_as(pg_sql)
                .bind(name)
                .bind(first)
                .bind(second)
                .bind(login_id)
                .fetch_optional(conn)
                .await),
        };
        // The statement always returns its one row; none would mean nothing matched.
        let Some(row) = row else {
            return Ok(LoginFacts {
                login: None,
                throttles: Vec::new(),
                user: None,
            });
        };
        let user = match row.user {
            Some((user, factors)) => {
                let context = user.into_user_context()?;
                Some((
                    context.user,
                    context.policy,
                    factors_from_json(factors.as_deref())?,
                ))
            }
            None => None,
        };
        Ok(LoginFacts {
            login: row.login,
            throttles: row.throttles,
            user,
        })
    }
}
