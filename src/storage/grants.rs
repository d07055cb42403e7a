//! Grants (what a code exchange issued), refresh token families, revoked access tokens.

use std::collections::{HashMap, HashSet};

use std::sync::{Arc, LazyLock};

use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{FromRow, QueryBuilder};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::mfa::{
    UserContext, UserContextRow, context_columns, context_joins, user_context_columns, user_context_joins,
};
use super::tenancy::UserWithTenancy;
use super::{
    BeginWrite, PolicyContext, Store, StoreError, StoreResult, WriteTurn, lock, pg_pool_options, sqlite_file,
    with_db,
};
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
/// of the one prepared statement every batch shares ([`send_rotations`]) may plan for ten
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

/// What a batch did with one waiting rotation.
enum Stored {
    /// Nothing: the old token was not current for the client, or was presented twice in
    /// the batch (the first is stored).
    Not,
    /// Stored: the grant id, and the grant's [`RefreshContext`] unless reading it failed.
    Rotated(String, Option<Box<RefreshContext>>),
}

/// A rotation waiting for the SQLite write turn, and where its outcome goes; `Err` when its
/// batch failed and it must be stored alone.
pub(super) struct Waiting {
    rotation: Rotation,
    done: oneshot::Sender<Result<Stored, ()>>,
}

/// At most this many rotations in one statement (five parameters each).
const MAX_ROTATIONS_PER_STATEMENT: usize = 64;

/// The next batch: the first [`MAX_ROTATIONS_PER_STATEMENT`] rotations `waiting`.
fn next_batch(waiting: &std::sync::Mutex<Vec<Waiting>>) -> Vec<Waiting> {
    let mut waiting = lock(waiting);
    let n = waiting.len().min(MAX_ROTATIONS_PER_STATEMENT);
    waiting.drain(..n).collect()
}

/// Queues `rotation` on `waiting`, then waits for either its answer or a turn to send a batch
/// (`turn`: the write turn on SQLite, a permit for a batch in flight on PostgreSQL). Whoever
/// gets a turn takes the next batch and gives it, with the turn, to `send`, which runs it on
/// a task of its own; this rotation is in that batch, or waits for the next turn. A turn that
/// finds nothing waiting means a batch already holds this rotation, and answers it (or drops
/// its sender when its task ends). Returns what the batch stored for this rotation (the grant
/// id and its context, if read; None when the old token was not current), or `Err(())` when
/// the batch failed or ended without an answer, so that the rotation is to be stored alone.
async fn queue_and_wait<T, F: std::future::Future<Output = T>>(
    waiting: &std::sync::Mutex<Vec<Waiting>>,
    rotation: Rotation,
    mut turn: impl FnMut() -> F,
    send: impl Fn(Vec<Waiting>, T),
) -> Result<Option<(String, Option<Box<RefreshContext>>)>, ()> {
    let (done, mut outcome) = oneshot::channel();
    lock(waiting).push(Waiting { rotation, done });
    let answer = loop {
        tokio::select! {
            biased;
            answer = &mut outcome => break answer,
            turn = turn() => {
                let batch = next_batch(waiting);
                if batch.is_empty() {
                    break (&mut outcome).await;
                }
                send(batch, turn);
            }
        }
    };
    match answer {
        Ok(Ok(Stored::Rotated(grant_id, context))) => Ok(Some((grant_id, context))),
        Ok(Ok(Stored::Not)) => Ok(None),
        Ok(Err(())) | Err(_) => Err(()),
    }
}

/// Group commit on SQLite: a rotation queues, then waits for either its outcome or the
/// write turn. Whoever gets the turn stores every queued rotation in one statement, then
/// reads the contexts of their grants in a second, so the turn (and the hand-off of a
/// statement to its connection's thread and back) is paid once per batch, not once per
/// refresh. Returns the grant id and its context (None if the batch could not read it), or
/// None when the old token is not current for the client.
async fn rotate_in_turn(
    pool: &SqlitePool,
    rotation: Rotation,
) -> Result<Option<(String, Option<Box<RefreshContext>>)>, sqlx::Error> {
    // One lookup of the file's state for the queue, the turn and the writer.
    let file = sqlite_file(pool);
    let writer = file.writer_or(pool);
    let alone = rotation.clone();
    let answer = queue_and_wait(
        &file.rotations,
        rotation,
        || file.turn.clone().lock_owned(),
        |batch, turn| {
            // On a task of its own, holding the turn, so that a request dropped meanwhile (its
            // client went away) still finishes the batch for the others.
            let writer = writer.clone();
            tokio::spawn(async move { store_batch(&writer, batch, turn).await });
        },
    )
    .await;
    match answer {
        Ok(stored) => Ok(stored),
        // The batch failed (or its task ended without an answer): alone, with its own error.
        Err(()) => {
            let _turn = file.turn.clone().lock_owned().await;
            rotate_one!(&writer, &alone).map(|stored| stored.map(|grant_id| (grant_id, None)))
        }
    }
}

/// Stores the successors of `batch` in one statement on the writer connection, holding the
/// write `turn`; then, with the turn passed on (the next batch gathers meanwhile and waits for
/// the connection), reads the contexts of their grants in a second on the same connection,
/// whose page cache its own writes keep current, and answers each waiting rotation.
async fn store_batch(writer: &SqlitePool, batch: Vec<Waiting>, turn: WriteTurn) {
    let (batch, repeated) = first_of_each_token(batch);
    let mut connection = match writer.acquire().await {
        Ok(connection) => connection,
        Err(error) => return batch_failed(batch.into_iter().chain(repeated), &error),
    };
    let stored: Result<Vec<(String, String)>, sqlx::Error> = {
        let mut query = QueryBuilder::new(rotation_req!());
        query.push_values(&batch, |mut row, w| {
            row.push_bind(&w.rotation.new_hash)
                .push_bind(&w.rotation.old_hash)
                .push_bind(&w.rotation.client_id)
                .push_bind(w.rotation.new_expires_at)
                .push_bind(w.rotation.now);
        });
        query.push(rotation_insert!());
        query.build_query_as().fetch_all(&mut *connection).await
    };
    drop(turn);
    let stored: HashMap<String, String> = match stored {
        Ok(rows) => rows.into_iter().collect(),
        Err(error) => return batch_failed(batch.into_iter().chain(repeated), &error),
    };
    answer_not(repeated);
    // Stored is stored: from here on a failure only costs the contexts, which each request
    // then reads alone.
    let mut contexts = contexts_of_grants(&mut connection, stored.values())
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "reading the grants of a batch of refresh-token rotations failed");
            HashMap::new()
        });
    for waiting in batch {
        let answer = match stored.get(&waiting.rotation.old_hash) {
            Some(grant_id) => Stored::Rotated(grant_id.clone(), contexts.remove(grant_id).map(Box::new)),
            None => Stored::Not,
        };
        let _ = waiting.done.send(Ok(answer));
    }
}

fn batch_failed(batch: impl IntoIterator<Item = Waiting>, error: &sqlx::Error) {
    tracing::warn!(%error, "a batch of refresh-token rotations failed; each is retried alone");
    for waiting in batch {
        let _ = waiting.done.send(Err(()));
    }
}

/// Batches of rotations that one PostgreSQL database is sent at once by this process, at
/// most: a batch is one statement, one executor start-up and one commit however many
/// rotations it holds, so a second batch gathers while the first runs and is sent when it
/// returns. Two did best in check runs (16 virtual users, back to back): 3,847 and 4,138
/// refreshes/s against 3,715 and 3,883 with three; four and six did worse, one too.
const PG_BATCHES_IN_FLIGHT: u32 = 2;

/// What this process keeps for each PostgreSQL database it uses: the rotations waiting to be
/// sent in a batch ([`rotate_in_batch`]) and the permits for batches in flight.
pub(super) struct PgRotations {
    in_flight: Arc<Semaphore>,
    waiting: std::sync::Mutex<Vec<Waiting>>,
    /// The connections batches go out on, one per batch in flight. They plan
    /// [`PG_REFRESH_BATCH`] once, generically (`plan_cache_mode = force_generic_plan`):
    /// left to choose, PostgreSQL keeps planning it anew for each batch (about a millisecond
    /// of its CPU, more than the batch's execution), because a plan for the batch at hand is
    /// always estimated cheaper than one for any batch.
    connections: PgPool,
}

/// The [`PgRotations`] of each PostgreSQL database this process uses, by [`pg_database`].
static PG_DATABASES: LazyLock<std::sync::Mutex<HashMap<String, Arc<PgRotations>>>> =
    LazyLock::new(Default::default);

/// Names the database `pool` connects to (host, port and database).
fn pg_database(pool: &PgPool) -> String {
    let options = pool.connect_options();
    format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    )
}

fn pg_rotations(pool: &PgPool) -> Arc<PgRotations> {
    lock(&PG_DATABASES)
        .entry(pg_database(pool))
        .or_insert_with(|| {
            let generic = (*pool.connect_options())
                .clone()
                .options([("plan_cache_mode", "force_generic_plan")]);
            Arc::new(PgRotations {
                in_flight: Arc::new(Semaphore::new(PG_BATCHES_IN_FLIGHT as usize)),
                waiting: std::sync::Mutex::new(Vec::new()),
                connections: pg_pool_options(PG_BATCHES_IN_FLIGHT).connect_lazy_with(generic),
            })
        })
        .clone()
}

/// Closes the connections that batches of `pool`'s database go out on ([`Store::close`]). A
/// batch still in flight on them fails, and its rotations are each sent again alone on their
/// own pool; a later refresh opens new ones.
pub(super) async fn close_pg_rotations(pool: &PgPool) {
    let closed = lock(&PG_DATABASES).remove(&pg_database(pool));
    if let Some(rotations) = closed {
        rotations.connections.close().await;
    }
}

/// Group commit on PostgreSQL: a rotation queues, then waits for either its outcome or a
/// permit to send a batch ([`PG_BATCHES_IN_FLIGHT`]). Whoever gets a permit sends every queued
/// rotation (up to [`MAX_ROTATIONS_PER_STATEMENT`]) in one statement that stores them and
/// returns the contexts of their grants (as they stood before), so a batch costs the database
/// one round trip, one plan start-up and one commit. Returns what [`rotate_in_turn`] returns.
async fn rotate_in_batch(
    pool: &PgPool,
    rotation: Rotation,
) -> Result<Option<(String, Option<Box<RefreshContext>>)>, sqlx::Error> {
    let rotations = pg_rotations(pool);
    let alone = rotation.clone();
    let in_flight = || rotations.in_flight.clone().acquire_owned();
    let answer = queue_and_wait(&rotations.waiting, rotation, in_flight, |batch, permit| {
        let connections = rotations.connections.clone();
        tokio::spawn(async move { send_batch(&connections, batch, permit.ok()).await });
    })
    .await;
    match answer {
        Ok(stored) => Ok(stored),
        // The batch failed (a token of it was rotated by a batch in flight at the same time,
        // here or on another instance, or the connection broke): alone, with its own error.
        Err(()) => Ok(send_rotations(pool, &[&alone]).await?.pop().map(|row| {
            let grant_id = row.context.grant_id.clone();
            (grant_id, row.context.into_context().ok().map(Box::new))
        })),
    }
}

/// The statement of a batch of refreshes on PostgreSQL ([`send_rotations`]): the new token
/// hashes, the old ones, the client ids, the new expiries and the times as `$1` to `$5`
/// (arrays, one element per refresh).
pub const PG_REFRESH_BATCH: &str = concat!(
    rotation_req!(),
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[])), stored AS (",
    rotation_store_pg!(),
    ") SELECT stored.parent_hash, ",
    refresh_context_fields!("string_agg"),
    // The grant by its key, as in `rotation_store_pg!` (the planner would hash all grants).
    " FROM stored CROSS JOIN LATERAL (SELECT * FROM grants g WHERE g.id = stored.grant_id OFFSET 0) g ",
    refresh_context_joins!()
);

/// One row of [`send_rotations`]: the context of a stored rotation's grant, and the token it
/// replaced.
#[derive(FromRow)]
struct SentRow {
    parent_hash: String,
    #[sqlx(flatten)]
    context: RefreshContextRow,
}

/// Stores `rotations` and returns the contexts of their grants (as they stood before), in one
/// statement (PostgreSQL). The rotations go as five arrays, so every batch, of any size, is
/// the same prepared statement.
async fn send_rotations(pool: &PgPool, rotations: &[&Rotation]) -> Result<Vec<SentRow>, sqlx::Error> {
    let column = |f: fn(&Rotation) -> &str| rotations.iter().map(|r| f(r).to_owned()).collect::<Vec<_>>();
    sqlx::query_as(PG_REFRESH_BATCH)
        .bind(column(|r| &r.new_hash))
        .bind(column(|r| &r.old_hash))
        .bind(column(|r| &r.client_id))
        .bind(rotations.iter().map(|r| r.new_expires_at).collect::<Vec<i64>>())
        .bind(rotations.iter().map(|r| r.now).collect::<Vec<i64>>())
        .fetch_all(pool)
        .await
}

/// Sends `batch` as one statement ([`send_rotations`]), holding a `permit` until every
/// rotation of it is answered.
async fn send_batch(pool: &PgPool, batch: Vec<Waiting>, permit: Option<OwnedSemaphorePermit>) {
    let (batch, repeated) = first_of_each_token(batch);
    let rotations: Vec<&Rotation> = batch.iter().map(|w| &w.rotation).collect();
    let rows = match send_rotations(pool, &rotations).await {
        Ok(rows) => rows,
        Err(error) => return batch_failed(batch.into_iter().chain(repeated), &error),
    };
    let mut stored: HashMap<String, Stored> = rows
        .into_iter()
        .map(|row| {
            let grant_id = row.context.grant_id.clone();
            // Stored is stored: a context that cannot be read is read again alone.
            let context = row.context.into_context().ok().map(Box::new);
            (row.parent_hash, Stored::Rotated(grant_id, context))
        })
        .collect();
    for waiting in batch {
        let answer = stored.remove(&waiting.rotation.old_hash).unwrap_or(Stored::Not);
        let _ = waiting.done.send(Ok(answer));
    }
    answer_not(repeated);
    drop(permit);
}

/// One successor per token: a token presented twice in one batch is stored for the first
/// request. Returns the batch without the repeats, and the repeats, which are to be answered
/// [`Stored::Not`] once the batch is stored (so that their refusal finds the token used and
/// revokes its family as reused).
fn first_of_each_token(batch: Vec<Waiting>) -> (Vec<Waiting>, Vec<Waiting>) {
    let mut first = HashSet::new();
    batch
        .into_iter()
        .partition(|w| first.insert(w.rotation.old_hash.clone()))
}

/// Answers `waiting` [`Stored::Not`].
fn answer_not(waiting: Vec<Waiting>) {
    for waiting in waiting {
        let _ = waiting.done.send(Ok(Stored::Not));
    }
}

/// The [`RefreshContext`]s of grants `ids` (SQLite), by grant id, in one statement.
async fn contexts_of_grants<'a>(
    connection: &mut SqliteConnection,
    ids: impl IntoIterator<Item = &'a String>,
) -> StoreResult<HashMap<String, RefreshContext>> {
    let ids: HashSet<&String> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut query = QueryBuilder::new(concat!(
        refresh_context_columns!("group_concat"),
        " FROM grants g ",
        refresh_context_joins!(),
        " WHERE g.id IN ("
    ));
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(id);
    }
    query.push(")");
    let rows: Vec<RefreshContextRow> = query.build_query_as().fetch_all(connection).await?;
    rows.into_iter()
        .map(|row| row.into_context().map(|c| (c.grant.id.clone(), c)))
        .collect()
}

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
