//! What a login step reads before it decides, in one statement: the user (by login name or
//! id) with their policy context and factors, and the failure counters of the step's throttle
//! keys. It is the same statement whether or not the user exists: a name that matches no user
//! skips the user's joins, tens of microseconds (the whole statement took 0.06 ms in PostgreSQL
//! with a user), beside the password hash of about 15 ms that both pay.

use sqlx::{FromRow, Row};

use super::inline;
use super::kept::on_kept;
use super::mfa::{
    UserContextRow, context_columns, context_joins, factor_object, factors_from_json, factors_json,
    user_context_columns, user_context_joins,
};
use super::tenancy::UserWithTenancy;
use super::{BeginWrite, Factor, PolicyContext, Store, StoreResult, Throttle};

/// Which user a login step is about.
#[derive(Debug, Clone, Copy)]
pub enum LoginUser<'a> {
    /// By the name typed on the login page; None when it is not a valid login name, which no
    /// user has.
    Name(Option<&'a str>),
    /// By id, once the password step has found the user.
    Id(&'a str),
}

/// What [`Store::login_facts`] read.
#[derive(Debug)]
pub struct LoginFacts {
    /// The counters of the throttle keys that have failures on record.
    pub throttles: Vec<Throttle>,
    /// The user, when there is one, with their policy context and their factors (oldest
    /// first).
    pub user: Option<(UserWithTenancy, PolicyContext, Vec<Factor>)>,
}

/// The statement of [`Store::login_facts`], for users matching `$condition` (on `users u`,
/// with the user's name or id as `$1`); the throttle keys are `$2` and `$3`. The throttles'
/// columns come first, prefixed `first_` and `second_`; the user's (all NULL when no user
/// matches) follow, as [`user_context_columns!`] names them, and their factors as `factors`.
macro_rules! login_facts_sql {
    ($aggregate:tt, $condition:literal) => {
        concat!(
            "SELECT t1.key AS first_key, t1.failures AS first_failures,
                    t1.window_start AS first_window_start, t1.locked_until AS first_locked_until,
                    t2.key AS second_key, t2.failures AS second_failures,
                    t2.window_start AS second_window_start, t2.locked_until AS second_locked_until,
                    x.*
             FROM (SELECT 1 AS one) one
             LEFT JOIN throttles t1 ON t1.key = $2
             LEFT JOIN throttles t2 ON t2.key = $3
             LEFT JOIN (SELECT ",
            user_context_columns!($aggregate),
            ", ",
            factors_json!($aggregate, "u.id"),
            " AS factors FROM users u ",
            user_context_joins!(),
            " WHERE ",
            $condition,
            ") x ON 1 = 1"
        )
    };
}

macro_rules! login_facts_by_name_sql {
    ($aggregate:tt) => {
        login_facts_sql!($aggregate, "u.username = $1")
    };
}

macro_rules! login_facts_by_id_sql {
    ($aggregate:tt) => {
        login_facts_sql!($aggregate, "u.id = $1")
    };
}

/// One row of [`login_facts_sql!`].
struct LoginFactsRow {
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
        Ok(Self { throttles, user })
    }
}

/// [`FromRow`] for [`LoginFactsRow`] on one backend's rows: the user's columns are read only
/// when a user matched (`id` is not NULL), since they are all NULL otherwise.
macro_rules! login_facts_from_row {
    ($row:ty) => {
        impl<'r> FromRow<'r, $row> for LoginFactsRow {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
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
                Ok(Self { throttles, user })
            }
        }
    };
}
login_facts_from_row!(sqlx::sqlite::SqliteRow);
login_facts_from_row!(sqlx::postgres::PgRow);

impl Store {
    /// The user of a login step with their policy context and factors, and the counters of
    /// throttle keys `first` and `second` (when given), in one statement: the password and
    /// challenge steps read them all before they decide anything.
    pub async fn login_facts(
        &self,
        user: LoginUser<'_>,
        first: &str,
        second: Option<&str>,
    ) -> StoreResult<LoginFacts> {
        // The statement for each backend's string aggregate, and the user's name or id.
        let (sqlite_sql, pg_sql, key) = match user {
            LoginUser::Name(name) => (
                login_facts_by_name_sql!("group_concat"),
                login_facts_by_name_sql!("string_agg"),
                name,
            ),
            LoginUser::Id(id) => (
                login_facts_by_id_sql!("group_concat"),
                login_facts_by_id_sql!("string_agg"),
                Some(id),
            ),
        };
        let row: Option<LoginFactsRow> = match self {
            Store::Sqlite(pool) => {
                let args = inline::Args::default().bind(key).bind(first).bind(second);
                let read = inline::read(pool, |conn| {
                    let mut statement = inline::prepare(conn, sqlite_sql, &args)?;
                    let mut rows = statement.raw_query();
                    rows.next()?.map(LoginFactsRow::from_inline).transpose()
                })?;
                match read {
                    Ok(row) => row,
                    Err(inline::Busy) => {
                        sqlx::query_as(sqlite_sql)
                            .bind(key)
                            .bind(first)
                            .bind(second)
                            .fetch_optional(&mut *pool.read_conn().await?)
                            .await?
                    }
                }
            }
            Store::Postgres(pool) => on_kept!(pool, |conn| sqlx::query_as(pg_sql)
                .bind(key)
                .bind(first)
                .bind(second)
                .fetch_optional(conn)
                .await),
        };
        // The statement always returns its one row; none would mean no user and no counters.
        let Some(row) = row else {
            return Ok(LoginFacts {
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
            throttles: row.throttles,
            user,
        })
    }
}
