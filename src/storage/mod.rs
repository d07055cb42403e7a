//! Persistence on SQLite or PostgreSQL.
//!
//! [`Store`] holds one of the two pools. Each query is written once, in SQL both backends
//! accept (`$1` placeholders, `ON CONFLICT`, `RETURNING`), inside [`with_db!`], which
//! expands the body once per backend so each copy is compiled against its own driver's
//! types. There is no runtime SQL rewriting and no `Any` driver. Methods are grouped by
//! aggregate, one file each; every method has a contract test that runs on both backends
//! (`tests/api/storage.rs`).

mod admin;
mod audit;
mod clients;
mod codes;
mod consents;
mod factors;
mod grants;
mod inline;
mod kept;
mod keys;
mod login_facts;
mod logins;
mod maintenance;
mod mfa;
mod otp;
mod outbox;
mod seed;
mod sessions;
pub mod tenancy;
mod throttle;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

pub use admin::{Deleted, PageRequest, UserChanges};
pub use audit::{AuditEvent, AuditFilter};
pub use codes::{CodeContext, CodeExchange, NewCode, StoredCode};
pub use factors::{Factor, ResetFiled, ResetRequest};
pub use grants::{Grant, PG_REFRESH_BATCH, RefreshContext, RefreshOutcome, Refreshed};
pub use keys::StoredKey;
pub use login_facts::{LoginFacts, LoginUser};
pub use logins::{Advance, Completion, SessionWrite, StoredLogin};
pub use maintenance::PURGE_STATEMENTS;
pub use mfa::{Enforcement, PolicyContext, UserContext, UserMfa};
pub use otp::OtpCode;
pub use outbox::OutgoingEmail;
pub use seed::{SeedFactor, SeedUser};
pub use sessions::Session;
pub use throttle::Throttle;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// The pool size when the configuration leaves it at 0. SQLite: 4 (and one more connection
/// kept for the writes in turn, `SqliteFile::writer_or`). Its writers take turns anyway, every
/// connection is a thread of its own, and each reader's page cache is dropped whenever
/// another connection has written, so more connections cost hand-offs and re-reads without
/// adding work done (refresh 4,600/s with 4, 4,100/s with 16 in a check run).
/// PostgreSQL: twice the CPU cores, at least 4. sqlx hands out its idle connections in turn,
/// so every connection of the pool serves statements, each through a backend process of its
/// own; with more backends than the cores can keep warm, each statement costs the database
/// more. On the 2-core development machine (PostgreSQL on the same machine), 4 against the 16
/// of before: logins 104.7-106.6/s against 99.2-99.8 (the postgres processes 3.0-3.2 ms per
/// login against 4.2), userinfo 7,324-7,468/s against 5,601-5,622, introspection 6,780-6,939/s
/// against 5,318-5,347 (alternating runs); 2 was as fast for logins but left the cores idle
/// under userinfo. A database across a network, where a statement waits longer for its
/// answer, may want more (`database.max_connections`).
pub fn default_pool_size(url: &str) -> u32 {
    if url.starts_with("sqlite:") {
        return 4;
    }
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    u32::try_from(cores.saturating_mul(2)).unwrap_or(u32::MAX).max(4)
}

/// The options of a PostgreSQL pool of at most `max_connections`. sqlx pings a pooled
/// connection before each use by default: one more round trip per statement. Only a
/// connection that sat idle is checked (a server restart or a dropped TCP connection shows
/// there); a busy one proves itself.
fn pg_pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < PING_IF_IDLE_FOR {
                    return Ok(true);
                }
                Ok(sqlx::Connection::ping(conn).await.is_ok())
            })
        })
}

/// A SQLite log this long (256 MiB of 4 KiB pages) did not start over for a while (a reader
/// kept it) and is truncated by [`Store::checkpoint`]. A log that starts over is trimmed to
/// [`LOG_BYTES_KEPT`] by SQLite itself. With 8,192 frames, one second of refreshes (15,000 to
/// 19,000 frames at 16 at once) was truncated every second, holding the write turn (p99 16.5
/// and 17.2 ms against 10.0 and 9.6 ms, 3,951 and 4,060 refreshes/s against 4,329 and 4,540).
pub const LOG_FRAMES_TO_TRUNCATE: i64 = 65_536;

/// How many passes [`Store::checkpoint`] makes beside the writers at most, and how few frames
/// a pass may copy for the next to be the one in the write turn.
const BESIDE_PASSES_AT_MOST: usize = 4;
const FEW_FRAMES: i64 = 64;

/// `journal_size_limit`: when SQLite's log starts over, its first commit trims the file to
/// this size (128 MiB), without a checkpoint. Under sustained writes the log reaches about
/// one second of frames between checkpoints (60-80 MB at 15,000-19,000 frames a second):
/// trimmed to 32 MiB, it was cut and grown again every second, and the file system's work
/// for that made the syncs of the next checkpoint in the write turn slower (in refresh runs
/// of 2026-12-05: 7,005-7,291 against 7,581-7,834 refreshes/s, the pass in the turn 86-90
/// against 29-31 ms in two of three pairs).
const LOG_BYTES_KEPT: i64 = 128 * 1024 * 1024;

/// How long a statement waits for a PostgreSQL connection (from the pool, or for a batch of
/// refreshes) before it fails.
pub(super) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled PostgreSQL connection idle for longer than this is pinged before it is used.
pub(super) const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend `$store` is.
macro_rules! with_db {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::storage::Store::Sqlite($pool) => $body,
            $crate::storage::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_db;

/// Fetches at most one row of `$sql!(aggregate)`, with `$bind`s, where `$sql` is a macro
/// given the name of the string-aggregate function, which the backends spell differently
/// (`group_concat` on SQLite, `string_agg` on PostgreSQL; both take the value and a separator).
macro_rules! fetch_optional_aggregating {
    ($store:expr, $sql:ident, $($bind:expr),+) => {
        match $store {
            $crate::storage::Store::Sqlite(pool) => sqlx::query_as($sql!("group_concat"))
                $(.bind($bind))+
                .fetch_optional(&mut *$crate::storage::BeginWrite::read_conn(pool).await?)
                .await?,
            $crate::storage::Store::Postgres(pool) => sqlx::query_as($sql!("string_agg"))
                $(.bind($bind))+
                .fetch_optional(&mut *$crate::storage::BeginWrite::read_conn(pool).await?)
                .await?,
        }
    };
}
pub(crate) use fetch_optional_aggregating;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; the string names what already exists.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A reference points at nothing; the string names what is missing.
    #[error("{0} does not exist")]
    Missing(&'static str),
    /// A stored value could not be read back (a bug or a manual edit).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A statement run on the calling thread failed (see `storage::inline`).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    /// Whether the database did not answer in time, so that the request may be tried again:
    /// no connection came free within the acquire timeout, or PostgreSQL cancelled the
    /// statement at its `statement_timeout` (SQLSTATE 57014, see `kept::STATEMENT_TIMEOUT`).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::PoolTimedOut) => true,
            StoreError::Database(error) => error
                .as_database_error()
                .and_then(|db| db.code())
                .is_some_and(|code| code == "57014"),
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Maps constraint violations of a write to domain errors.
fn write_error(error: sqlx::Error, conflict: &'static str, missing: &'static str) -> StoreError {
    match error.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict(conflict),
        Some(db) if db.is_foreign_key_violation() => StoreError::Missing(missing),
        _ => StoreError::Database(error),
    }
}

/// Starts a transaction that will write. On SQLite it takes the write lock up front
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes can fail with
/// SQLITE_BUSY_SNAPSHOT, which no busy timeout cures.
///
/// SQLite has one writer at a time. Writers of this process queue first on an async lock
/// of the database file, first come first served, so that they do not meet at SQLite's
/// lock, whose busy handler waits by sleeping (1, 2, 5, 10 ms and up: the refresh grant's
/// p99 under load was 235 ms that way, see docs/benchmarks.md).
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(&self)
    -> impl std::future::Future<Output = Result<WriteTx<Self::Db>, sqlx::Error>> + Send;

    /// This process's turn at the SQLite write lock and the writer connection
    /// ([`SqliteFile::writer_or`]), for one writing statement outside a transaction: run it
    /// on the writer and hold the turn until it returns. One lookup of the file's state
    /// serves both. No turn on PostgreSQL, whose writers lock rows, not the database, and
    /// the pool itself.
    fn write_turn(&self) -> impl std::future::Future<Output = (Option<WriteTurn>, Self)> + Send;

    /// A connection for a read that the login and token steps make before they write. On
    /// SQLite, the writer connection when it is idle, else one from the pool: SQLite drops
    /// a connection's whole page cache whenever another connection has written, so a
    /// pooled connection reads every page it needs again after each write, while the
    /// writer's cache is always current. It never waits for the writer: waiting cost
    /// userinfo 13 % in a check run (every read behind one thread). One from the pool on
    /// PostgreSQL. See docs/architecture.md, "Login reads on the writer when it is idle".
    fn read_conn(
        &self,
    ) -> impl std::future::Future<Output = Result<PoolConnection<Self::Db>, sqlx::Error>> + Send;

    /// Runs `script`, a write in one round trip with its arguments bound, and returns its
    /// rows. On PostgreSQL the script is one statement (writing `WITH` parts). On SQLite it
    /// is one transaction spelled out in one string (`BEGIN IMMEDIATE;`, its statements,
    /// `COMMIT`), run on the writer in this process's turn. sqlx hands each statement to the
    /// SQLite connection's own thread and waits for its answer: a script is one hand-off where
    /// [`BeginWrite::begin_write`], each statement and the commit are one each (six for a
    /// finished login, a dozen context switches). Parameters are numbered (`$N`) across the
    /// whole script.
    ///
    /// On SQLite the script runs to its end in a task of its own, even when the request that
    /// asked for it goes away: sqlx stops a script whose caller stopped listening after the
    /// statement in hand, which would leave the writer inside the transaction. When a
    /// statement fails, the rest are skipped and the transaction is rolled back; if even that
    /// fails, the connection is closed (SQLite rolls back what it held), not reused.
    fn write_script<O>(
        &self,
        script: sqlx::query::Query<'_, Self::Db, <Self::Db as sqlx::Database>::Arguments>,
    ) -> impl std::future::Future<Output = Result<Vec<O>, sqlx::Error>> + Send
    where
        O: for<'r> sqlx::FromRow<'r, <Self::Db as sqlx::Database>::Row> + Send + Unpin + 'static;
}

/// `query` with its bound arguments taken out of the borrows they were bound from, so that it
/// can outlive them ([`BeginWrite::write_script`] on SQLite runs it in a task of its own).
fn owned_script<DB, O>(
    mut query: sqlx::query::Query<'_, DB, DB::Arguments>,
) -> Result<sqlx::query::QueryAs<'static, DB, O, DB::Arguments>, sqlx::Error>
where
    DB: sqlx::Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    O: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let arguments = sqlx::Execute::<DB>::take_arguments(&mut query).map_err(sqlx::Error::Encode)?;
    let sql = sqlx::Execute::<DB>::sql(query);
    Ok(sqlx::query_as_with(sql, arguments.unwrap_or_default()))
}

/// See [`BeginWrite::write_turn`].
pub(crate) type WriteTurn = tokio::sync::OwnedMutexGuard<()>;

/// A write transaction, holding this process's turn at the SQLite write lock until it is
/// committed, rolled back or dropped. Derefs to the connection, as sqlx's transaction does.
pub(crate) struct WriteTx<Db: sqlx::Database> {
    tx: Transaction<'static, Db>,
    _turn: Option<WriteTurn>,
}

impl<Db: sqlx::Database> WriteTx<Db> {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl<Db: sqlx::Database> std::ops::Deref for WriteTx<Db> {
    type Target = Db::Connection;
    fn deref(&self) -> &Db::Connection {
        &self.tx
    }
}

impl<Db: sqlx::Database> std::ops::DerefMut for WriteTx<Db> {
    fn deref_mut(&mut self) -> &mut Db::Connection {
        &mut self.tx
    }
}

/// What this process keeps for each SQLite file it opened: the write turn, the connection
/// the writes in turn run on ([`SqliteFile::writer_or`], set by [`Store::connect_with`]), and the
/// refresh-token rotations waiting for the turn (`grants::rotate_in_turn`).
#[derive(Default)]
struct SqliteFile {
    turn: Arc<tokio::sync::Mutex<()>>,
    writer: std::sync::Mutex<Option<SqlitePool>>,
    rotations: std::sync::Mutex<Vec<grants::Waiting>>,
    /// The connections that run a login's statements on the calling thread (`inline`).
    inline: inline::InlineConnections,
}

impl SqliteFile {
    /// Where writes taken in turn run: a pool of one connection kept for them, or `pool`
    /// itself when none is open (after [`Store::close`]). SQLite drops a connection's page
    /// cache whenever another connection has written, so writes spread over the pool re-read
    /// their pages from the file each time, while the one connection that made every write
    /// keeps its cache current.
    fn writer_or(&self, pool: &SqlitePool) -> SqlitePool {
        lock(&self.writer).clone().unwrap_or_else(|| pool.clone())
    }
}

fn sqlite_file(pool: &SqlitePool) -> Arc<SqliteFile> {
    static FILES: LazyLock<std::sync::Mutex<HashMap<std::path::PathBuf, Arc<SqliteFile>>>> =
        LazyLock::new(Default::default);
    let file = pool.connect_options().get_filename().to_path_buf();
    lock(&FILES).entry(file).or_default().clone()
}

/// Locks a mutex of this module's in-memory state (which stays consistent if a holder
/// panicked: every change to it is a single push, drain or insert).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl BeginWrite for SqlitePool {
    type Db = Sqlite;
    async fn begin_write(&self) -> Result<WriteTx<Sqlite>, sqlx::Error> {
        // One lookup of the file's state for both the turn and the writer.
        let file = sqlite_file(self);
        let turn = file.turn.clone().lock_owned().await;
        let tx = file.writer_or(self).begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx {
            tx,
            _turn: Some(turn),
        })
    }

    async fn write_turn(&self) -> (Option<WriteTurn>, SqlitePool) {
        let file = sqlite_file(self);
        let turn = file.turn.clone().lock_owned().await;
        (Some(turn), file.writer_or(self))
    }

    async fn read_conn(&self) -> Result<PoolConnection<Sqlite>, sqlx::Error> {
        match sqlite_file(self).writer_or(self).try_acquire() {
            Some(idle) => Ok(idle),
            None => self.acquire().await,
        }
    }

    async fn write_script<O>(
        &self,
        script: sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<Vec<O>, sqlx::Error>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin + 'static,
    {
        let script = owned_script(script)?;
        let (turn, writer) = self.write_turn().await;
        let run = tokio::spawn(async move {
            let _turn = turn;
            let mut conn = writer.acquire().await?;
            let ran = script.fetch_all(&mut *conn).await;
            if ran.is_err() && sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                // No transaction was open (BEGIN itself failed), or the connection is broken.
                conn.close_on_drop();
            }
            ran
        });
        run.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }
}

impl BeginWrite for PgPool {
    type Db = Postgres;
    async fn begin_write(&self) -> Result<WriteTx<Postgres>, sqlx::Error> {
        Ok(WriteTx {
            tx: self.begin().await?,
            _turn: None,
        })
    }

    async fn write_turn(&self) -> (Option<WriteTurn>, PgPool) {
        (None, self.clone())
    }

    async fn read_conn(&self) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        self.acquire().await
    }

    async fn write_script<O>(
        &self,
        script: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<O>, sqlx::Error>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin + 'static,
    {
        owned_script(script)?.fetch_all(self).await
    }
}

/// Lists are stored as JSON arrays in TEXT columns on both backends.
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}

fn from_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn parse<T: FromStr>(column: &str, text: &str) -> StoreResult<T>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(format!("{column}: {e}")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Who copies SQLite's write-ahead log back into the database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoints {
    /// SQLite's default: the commit that takes the log past 1,000 pages does it, holding
    /// the write lock meanwhile (every writer waiting behind it). For short-lived commands.
    OnCommit,
    /// Commits never do; the owner of the store calls [`Store::checkpoint`] now and then
    /// (the server, from a background task), beside the writers instead of in their way.
    Background,
}

impl Store {
    /// Opens a pool for `url`. SQLite files (and their directory) are created if missing
    /// and run in WAL mode with foreign keys on.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        Self::connect_with(url, max_connections, Checkpoints::OnCommit).await
    }

    /// [`Store::connect`], choosing how SQLite checkpoints (PostgreSQL ignores it).
    /// `max_connections` 0 means [`default_pool_size`].
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        checkpoints: Checkpoints,
    ) -> anyhow::Result<Store> {
        let max_connections = match max_connections {
            0 => default_pool_size(url),
            n => n,
        };
        if url.starts_with("sqlite:") {
            let mut options = SqliteConnectOptions::from_str(url)
                .with_context(|| "parsing the SQLite database URL")?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .pragma("journal_size_limit", LOG_BYTES_KEPT.to_string());
            if checkpoints == Checkpoints::Background {
                options = options.pragma("wal_autocheckpoint", "0");
            }
            if let Some(dir) = options
                .get_filename()
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the database directory {}", dir.display()))?;
            }
            // The database is a file in this process: there is no connection to lose, and
            // sqlx's default check before each use would cost a round trip to the
            // connection's worker thread for every statement.
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await
                .with_context(|| "opening the SQLite database")?;
            let path = Path::new(options.get_filename()).to_path_buf();
            // The writes in turn run on a connection of their own, kept open (see
            // `SqliteFile::writer_or`).
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .with_context(|| "opening the SQLite database")?;
            let file = sqlite_file(&pool);
            file.inline.configure(inline::InlineConfig { path, checkpoints });
            let replaced = lock(&file.writer).replace(writer);
            if let Some(replaced) = replaced {
                replaced.close().await;
            }
            Ok(Store::Sqlite(pool))
        } else {
            let pool = pg_pool_options(max_connections)
                .connect(url)
                .await
                .with_context(|| "connecting to PostgreSQL")?;
            Ok(Store::Postgres(pool))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the embedded migrations that have not been applied yet.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
            Store::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        }
        .with_context(|| "applying database migrations")
    }

    /// Copies SQLite's write-ahead log into the database file (`PRAGMA
    /// wal_checkpoint(PASSIVE)`, which waits for no reader). First beside the writers, which
    /// copies most of it, in up to [`BESIDE_PASSES_AT_MOST`] passes; then once more in this
    /// process's write turn, which copies the few pages written meanwhile and so completes
    /// the checkpoint: only a complete one lets the next writer start the log over, else it
    /// grows without end. Returns the frames in the log and the frames copied, after the
    /// last; None on PostgreSQL.
    ///
    /// Each pass syncs the log, copies and syncs the database file; writers wait for the
    /// pass in the turn, so it should find little to sync. In refresh runs at 7,000-8,000/s
    /// (2026-12-05, a build that timed it), with one pass beside the writers the pass in the
    /// turn held it 15-88 ms a second (the median of each run; 61-88 ms in the later runs);
    /// with passes until one copies at most [`FEW_FRAMES`], and the log no longer trimmed
    /// each time ([`LOG_BYTES_KEPT`]), 22-34 ms, most of it its two syncs. Either change
    /// alone was not enough: more passes with the log trimmed, 7-90 ms; the log kept at its
    /// size with one pass, 85-91 ms.
    ///
    /// Writes outside the turn (single statements on the pool) can still keep the log from
    /// starting over; once it holds [`LOG_FRAMES_TO_TRUNCATE`] frames it is truncated
    /// (`TRUNCATE`, which waits for the readers of older frames and blocks writers meanwhile).
    pub async fn checkpoint(&self) -> StoreResult<Option<(i64, i64)>> {
        const PASSIVE: &str = "PRAGMA wal_checkpoint(PASSIVE)";
        match self {
            Store::Sqlite(pool) => {
                // Each pass beside the writers copies what was written during the one
                // before: once one copies few frames, the pass in the turn is left with
                // about what a short pass lets in, instead of what a long one did.
                let mut copied_before = 0;
                for _ in 0..BESIDE_PASSES_AT_MOST {
                    let (_busy, _log, copied): (i64, i64, i64) =
                        sqlx::query_as(PASSIVE).fetch_one(pool).await?;
                    // The count starts over with the log.
                    let this_pass = if copied >= copied_before {
                        copied - copied_before
                    } else {
                        copied
                    };
                    copied_before = copied;
                    if this_pass <= FEW_FRAMES {
                        break;
                    }
                }
                let (_turn, writer) = pool.write_turn().await;
                let (_busy, log, copied): (i64, i64, i64) =
                    sqlx::query_as(PASSIVE).fetch_one(&writer).await?;
                if log < LOG_FRAMES_TO_TRUNCATE {
                    return Ok(Some((log, copied)));
                }
                let (_busy, log, copied): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                    .fetch_one(&writer)
                    .await?;
                Ok(Some((log, copied)))
            }
            Store::Postgres(_) => Ok(None),
        }
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        with_db!(self, |pool| sqlx::query("SELECT 1").execute(pool).await.is_ok())
    }

    /// Closes every connection this store opened: the pool, and SQLite's writer or
    /// PostgreSQL's connections for batches of refreshes.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(pool) => {
                inline::close(pool);
                let writer = lock(&sqlite_file(pool).writer).take();
                if let Some(writer) = writer {
                    writer.close().await;
                }
            }
            Store::Postgres(pool) => {
                grants::close_pg_rotations(pool).await;
                kept::close_login_connections(pool).await;
            }
        }
        with_db!(self, |pool| pool.close().await)
    }
}

/// The SQLite file a `sqlite:` URL names, for messages.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    SqliteConnectOptions::from_str(url)
        .ok()
        .map(|o| Path::new(o.get_filename()).to_path_buf())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{BeginWrite, Store, default_pool_size, sqlite_file};

    #[test]
    fn the_default_pool_follows_the_backend_and_the_cores() {
        assert_eq!(default_pool_size("sqlite://data/portcullis.db"), 4);
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let postgres = default_pool_size("postgres://db/portcullis");
        assert_eq!(postgres, u32::try_from(2 * cores).unwrap_or(u32::MAX).max(4));
        assert!(postgres >= 4);
    }

    /// Reads go to the writer connection while it is idle (its page cache is current) and
    /// to the pool while a write transaction holds it, never waiting for the writer.
    #[tokio::test]
    async fn reads_use_the_idle_writer_and_never_wait_for_it() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("reads.db").display());
        let store = Store::connect(&url, 2).await.expect("the store opens");
        store.migrate().await.expect("migrations apply");
        let Store::Sqlite(pool) = &store else {
            unreachable!("a sqlite: URL opens SQLite")
        };
        let writer = sqlite_file(pool).writer_or(pool);

        let read = pool.read_conn().await.expect("a connection");
        assert_eq!(writer.num_idle(), 0, "the read holds the writer connection");
        drop(read);

        let tx = pool.begin_write().await.expect("a write transaction");
        let read = tokio::time::timeout(Duration::from_secs(2), store.get_login("none"))
            .await
            .expect("a read does not wait for a write transaction");
        assert!(read.expect("the read succeeds").is_none());
        tx.rollback().await.expect("rolled back");
        store.close().await;
    }
}
