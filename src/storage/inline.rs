//! SQLite statements run on the calling thread, for the statements of a login.
//!
//! sqlx gives each SQLite connection a thread of its own and hands every statement to it and
//! back: a wake-up of that thread, and of the caller's once the answer is ready, per statement.
//! On a machine whose cores are busy hashing passwords each wake-up also interrupts a hash. A
//! login's statements (the login transaction, the login facts, the TOTP replay guard, the
//! completed login, the code exchange) go instead through rusqlite on connections of this
//! process's own, on the thread of the request that asks: the same SQLite library, the same
//! file, the same SQL; microseconds of work where the hand-off cost tens.
//!
//! A statement here never waits for a lock. Its connections have no busy timeout: when another
//! connection holds what it needs (another process's write, say), it answers [`Busy`] at once,
//! having changed nothing, and the caller runs the same statement through sqlx instead, which
//! waits on its own thread. Writes take this process's write turn first, as every write does,
//! so they never meet a writer of this process. Work on the calling thread is reading and
//! writing pages of the file: SQLite runs in WAL mode with `synchronous = NORMAL`, so a commit
//! does not wait for the disk, and in the server a checkpoint (which does) never runs here
//! ([`Checkpoints::Background`]: `wal_autocheckpoint = 0`, as on the store's own connections;
//! with [`Checkpoints::OnCommit`], for short-lived commands, a commit that takes the log past
//! 1,000 pages copies it back, as theirs do).

use std::path::PathBuf;
use std::sync::{Mutex, TryLockError};

use rusqlite::types::Value;
use rusqlite::{CachedStatement, Connection, ErrorCode};

use super::{BeginWrite, Checkpoints, StoreError, StoreResult, lock, sqlite_file};

/// How [`Store::connect_with`](super::Store::connect_with) opened a file, for the connections
/// opened here. A store opened any other way has none and runs everything through sqlx.
#[derive(Debug, Clone)]
pub(super) struct InlineConfig {
    pub path: PathBuf,
    pub checkpoints: Checkpoints,
}

/// The connections of one file: the writer (used in the write turn, and for reads while no
/// write holds it) and idle readers (one taken per read; at most as many as threads reading at
/// once).
#[derive(Default)]
pub(super) struct InlineConnections {
    config: Mutex<Option<InlineConfig>>,
    writer: Mutex<Option<Connection>>,
    readers: Mutex<Vec<Connection>>,
}

impl InlineConnections {
    /// Lets statements on this file run inline, on connections opened as `config` says.
    pub fn configure(&self, config: InlineConfig) {
        *lock(&self.config) = Some(config);
    }

    fn configured(&self) -> bool {
        lock(&self.config).is_some()
    }

    /// Opens a connection to the file, or None once the store was closed.
    fn open(&self) -> StoreResult<Option<Connection>> {
        let config = lock(&self.config).clone();
        config
            .map(|config| open(&config).map_err(StoreError::Sqlite))
            .transpose()
    }
}

/// The database was locked by another connection: nothing was done, and the caller runs the
/// statement through sqlx.
#[derive(Debug)]
pub(super) struct Busy;

/// A failure of an inline statement: busy (try through sqlx), or an error.
pub(super) enum Failure {
    Busy,
    Error(rusqlite::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Failure::Busy,
            _ => Failure::Error(error),
        }
    }
}

/// Statements each inline connection keeps prepared.
const STATEMENTS_KEPT: usize = 64;

/// Opens a connection as [`Store::connect_with`](super::Store::connect_with) opens its own.
fn open(config: &InlineConfig) -> rusqlite::Result<Connection> {
    let conn = Connection::open(&config.path)?;
    // Every statement run here stays prepared (rusqlite keeps 16 by default; the writer runs
    // about twenty, and preparing one of the login's joins again costs more than running it).
    conn.set_prepared_statement_cache_capacity(STATEMENTS_KEPT);
    conn.busy_timeout(std::time::Duration::ZERO)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "journal_size_limit", super::LOG_BYTES_KEPT)?;
    if config.checkpoints == Checkpoints::Background {
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    }
    // The file is in WAL mode already (the store's pool set it when it opened the file).
    Ok(conn)
}

/// Runs `work` on the file's inline writer, in this process's write turn. Ok(Err(Busy)) when
/// another connection held the write lock: nothing was written. A failed `work` that left a
/// transaction open is rolled back; a connection that cannot roll back is closed.
pub(super) async fn write<T>(
    pool: &sqlx::SqlitePool,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> StoreResult<Result<T, Busy>> {
    let file = sqlite_file(pool);
    if !file.inline.configured() {
        return Ok(Err(Busy));
    }
    let _turn = file.turn.clone().lock_owned().await;
    // Held while the statement runs (a read that has the writer is waited for: microseconds);
    // a read never waits for it, and takes a reader instead.
    let mut writer = lock(&file.inline.writer);
    let conn = match writer.take() {
        Some(conn) if file.inline.configured() => conn,
        Some(_) => return Ok(Err(Busy)),
        None => match file.inline.open()? {
            Some(conn) => conn,
            None => return Ok(Err(Busy)),
        },
    };
    let mut done = work(&conn).map_err(Failure::from);
    if !conn.is_autocommit() {
        // A failed script (or one that did not commit, which is not written either).
        if done.is_ok() {
            done = Err(Failure::Error(rusqlite::Error::InvalidQuery));
        }
        let _ = conn.execute_batch("ROLLBACK");
    }
    // Closed (SQLite rolls back what it held) when even the rollback failed.
    if conn.is_autocommit() {
        *writer = Some(conn);
    }
    finish(done)
}

/// Runs `work` on the file's inline writer when no write holds it (its page cache holds what
/// the login's writes left there; another connection re-reads from the file every page that a
/// write since its last read may have changed), else on an idle inline reader (opened when none
/// is idle). Ok(Err(Busy)) when a lock kept it from reading.
pub(super) fn read<T>(
    pool: &sqlx::SqlitePool,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> StoreResult<Result<T, Busy>> {
    let file = sqlite_file(pool);
    let writer = match file.inline.writer.try_lock() {
        Ok(writer) => Some(writer),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    };
    if let Some(writer) = writer
        && let Some(conn) = writer.as_ref()
    {
        return finish(work(conn).map_err(Failure::from));
    }
    let idle = lock(&file.inline.readers).pop();
    let conn = match idle {
        Some(conn) => conn,
        None => match file.inline.open()? {
            Some(conn) => conn,
            None => return Ok(Err(Busy)),
        },
    };
    let done = work(&conn).map_err(Failure::from);
    // A store closed meanwhile has no configuration left: the connection closes here.
    if conn.is_autocommit() && file.inline.configured() {
        lock(&file.inline.readers).push(conn);
    }
    finish(done)
}

fn finish<T>(done: Result<T, Failure>) -> StoreResult<Result<T, Busy>> {
    match done {
        Ok(value) => Ok(Ok(value)),
        Err(Failure::Busy) => Ok(Err(Busy)),
        Err(Failure::Error(e)) => Err(StoreError::Sqlite(e)),
    }
}

/// Closes the inline connections of `pool`'s file, and runs nothing inline on it after
/// ([`Store::close`](super::Store::close)). A statement running meanwhile finishes first.
pub(super) fn close(pool: &sqlx::SqlitePool) {
    let file = sqlite_file(pool);
    lock(&file.inline.config).take();
    lock(&file.inline.writer).take();
    lock(&file.inline.readers).clear();
}

/// Arguments for an inline statement, bound as sqlx's are (`.bind(value)`, in the order of
/// `$1`, `$2`, ...), so that the `bind_*!` macros of either driver's statements serve here too.
#[derive(Default)]
pub(super) struct Args(Vec<Value>);

impl Args {
    pub fn bind<T: Bind>(mut self, value: T) -> Self {
        self.0.push(value.value());
        self
    }
}

/// A value [`Args::bind`] takes: the types the login's statements bind.
pub(super) trait Bind {
    fn value(self) -> Value;
}

impl Bind for &String {
    fn value(self) -> Value {
        Value::Text(self.clone())
    }
}

impl Bind for &str {
    fn value(self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl Bind for i64 {
    fn value(self) -> Value {
        Value::Integer(self)
    }
}

impl Bind for bool {
    fn value(self) -> Value {
        Value::Integer(i64::from(self))
    }
}

impl<T: Bind> Bind for Option<T> {
    fn value(self) -> Value {
        self.map_or(Value::Null, Bind::value)
    }
}

/// Prepares `sql` (from the connection's statement cache) with `args` bound to the `$N`
/// parameters it names.
pub(super) fn prepare<'c>(
    conn: &'c Connection,
    sql: &str,
    args: &Args,
) -> rusqlite::Result<CachedStatement<'c>> {
    let mut statement = conn.prepare_cached(sql)?;
    for i in 1..=statement.parameter_count() {
        let value = statement
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$')?.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .and_then(|n| args.0.get(n))
            .ok_or(rusqlite::Error::InvalidParameterCount(i, args.0.len()))?;
        statement.raw_bind_parameter(i, value)?;
    }
    Ok(statement)
}

/// Runs a script of statements separated by `;` (which no statement of a script contains
/// otherwise: the test `scripts_split_into_their_statements`), each prepared once per
/// connection and given the `$N` of `args` it names. Returns the first column of every row
/// any of them returned.
pub(super) fn script(conn: &Connection, script: &str, args: &Args) -> rusqlite::Result<Vec<i64>> {
    let mut out = Vec::new();
    for sql in statements(script) {
        let mut statement = prepare(conn, sql, args)?;
        let mut rows = statement.raw_query();
        while let Some(row) = rows.next()? {
            out.push(row.get(0)?);
        }
    }
    Ok(out)
}

/// Runs `sql`, a write script (see [`script`]) whose first row is 1 when it did its work, in
/// the write turn: inline with `args`, or, when the inline writer is busy, as `query` (the same
/// script bound for sqlx) through [`BeginWrite::write_script`]. True when it did its work.
pub(super) async fn script_did_its_work<'q>(
    pool: &sqlx::SqlitePool,
    sql: &'static str,
    args: &Args,
    query: impl FnOnce() -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
) -> StoreResult<bool> {
    if let Ok(rows) = write(pool, |conn| script(conn, sql, args)).await? {
        return Ok(rows.first() == Some(&1));
    }
    let rows: Vec<(i64,)> = pool.write_script(query()).await?;
    Ok(rows.first().is_some_and(|(done,)| *done == 1))
}

/// The statements of a script.
fn statements(script: &str) -> impl Iterator<Item = &str> {
    script.split(';').map(str::trim).filter(|sql| !sql.is_empty())
}

#[cfg(test)]
mod tests {
    use super::statements;

    /// The scripts run inline are split at `;`: no statement of theirs may hold one, and they
    /// hold no string literal that could.
    #[test]
    fn scripts_split_into_their_statements() {
        for (script, count) in [
            (super::super::logins::SQLITE_COMPLETE_LOGIN, 7),
            (super::super::codes::SQLITE_EXCHANGE_CODE, 7),
        ] {
            assert!(!script.contains('\'') && !script.contains('"'), "{script}");
            let parts: Vec<&str> = statements(script).collect();
            assert_eq!(parts.len(), count, "{parts:?}");
            assert_eq!(parts.first().copied(), Some("BEGIN IMMEDIATE"));
            assert_eq!(parts.last().copied(), Some("COMMIT"));
        }
    }
}
