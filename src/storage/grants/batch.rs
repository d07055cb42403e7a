//! Refresh-token rotations stored in batches: on SQLite, every rotation waiting for the
//! write turn in one statement; on PostgreSQL, the rotations waiting at once in one statement,
//! with at most [`PG_BATCHES_IN_FLIGHT`] batches in flight per database.

use std::collections::{HashMap, HashSet};

use std::sync::{Arc, LazyLock};

use sqlx::postgres::{PgExecutor, PgPool};
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{Connection, FromRow, QueryBuilder};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::{RefreshContext, RefreshContextRow, Rotation};
use crate::storage::kept::{KeptConnections, pg_database};
use crate::storage::mfa::{context_columns, context_joins, user_context_columns, user_context_joins};
use crate::storage::{ACQUIRE_TIMEOUT, StoreResult, WriteTurn, lock, sqlite_file};

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
pub(in crate::storage) struct Waiting {
    rotation: Rotation,
    done: oneshot::Sender<Result<Stored, ()>>,
}

/// At most this many rotations in one statement (five parameters each).
const MAX_ROTATIONS_PER_STATEMENT: usize = 64;

/// The next batch: the first [`MAX_ROTATIONS_PER_STATEMENT`] rotations `waiting`. Rotations
/// whose requests went away while they waited (no one is left to hear their answer) are
/// dropped first: their clients would never see the new token, and storing it would use the
/// old one up, so that the client's retry with it would count as reuse and end the grant. A
/// rotation already in a batch when its request goes away is stored all the same.
fn next_batch(waiting: &std::sync::Mutex<Vec<Waiting>>) -> Vec<Waiting> {
    let mut waiting = lock(waiting);
    waiting.retain(|w| !w.done.is_closed());
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
                    // The turn is kept while this waits: rotations queued meanwhile wait
                    // for a batch to finish and go out together, in fewer and larger
                    // batches (given back here, PostgreSQL refreshes ran 9 % slower, at
                    // 18 % more CPU each: docs/benchmarks.md, refresh checks of 2026-12-05).
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
pub(super) async fn rotate_in_turn(
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
/// rotations it holds, so a second batch gathers while the first runs, and a batch that
/// returns sends the one gathered behind it ([`send_batch`]). In check runs (16 virtual
/// users, 2026-12-05, with that) one and two were within the noise of each other (5,632 and
/// 5,195 against 5,278 and 5,239 refreshes/s) and three and four did worse (4,717–4,989); two
/// are kept, so that one slow batch does not hold every refresh.
const PG_BATCHES_IN_FLIGHT: u32 = 2;

/// What this process keeps for each PostgreSQL database it uses: the rotations waiting to be
/// sent in a batch ([`rotate_in_batch`]), the permits for batches in flight, and the
/// connections batches go out on.
pub(super) struct PgRotations {
    in_flight: Arc<Semaphore>,
    waiting: std::sync::Mutex<Vec<Waiting>>,
    /// The idle connections batches go out on (at most one per batch in flight), with the
    /// time each came back. They plan [`PG_REFRESH_BATCH`] once, generically
    /// (`plan_cache_mode = force_generic_plan`): left to choose, PostgreSQL keeps planning it
    /// anew for each batch (about a millisecond of its CPU, more than the batch's execution),
    /// because a plan for the batch at hand is always estimated cheaper than one for any
    /// batch. They are kept here rather than in a pool because a pool pings each connection
    /// on its way back, a round trip per batch that the batch behind it waits for. A
    /// connection whose batch failed is kept only if a ping still answers, and one idle for
    /// [`PING_IF_IDLE_FOR`](crate::storage::PING_IF_IDLE_FOR) is pinged before its next batch
    /// ([`KeptConnections`]).
    connections: KeptConnections,
}

/// The [`PgRotations`] of each PostgreSQL database this process uses, by [`pg_database`].
static PG_DATABASES: LazyLock<std::sync::Mutex<HashMap<String, Arc<PgRotations>>>> =
    LazyLock::new(Default::default);

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
                connections: KeptConnections::new(generic),
            })
        })
        .clone()
}

/// Closes the idle connections that batches of `pool`'s database go out on
/// ([`Store::close`](crate::storage::Store::close)). A batch in flight finishes on its own and
/// its connection is dropped with the last batch; a later refresh opens new ones.
pub(in crate::storage) async fn close_pg_rotations(pool: &PgPool) {
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
pub(super) async fn rotate_in_batch(
    pool: &PgPool,
    rotation: Rotation,
) -> Result<Option<(String, Option<Box<RefreshContext>>)>, sqlx::Error> {
    let rotations = pg_rotations(pool);
    let alone = rotation.clone();
    let in_flight = || rotations.in_flight.clone().acquire_owned();
    let answer = queue_and_wait(&rotations.waiting, rotation, in_flight, |batch, permit| {
        let rotations = rotations.clone();
        tokio::spawn(async move { send_batch(&rotations, batch, permit.ok()).await });
    })
    .await;
    match answer {
        Ok(stored) => Ok(stored),
        // The batch failed (a token of it was rotated by a batch in flight at the same time,
        // here or on another instance, or the connection broke): alone, with its own error.
        // On the pool, whose size bounds the connections of a failed batch's rotations (up
        // to MAX_ROTATIONS_PER_STATEMENT at once); the kept connections have no bound but
        // the batches' permits.
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
async fn send_rotations(
    executor: impl PgExecutor<'_>,
    rotations: &[&Rotation],
) -> Result<Vec<SentRow>, sqlx::Error> {
    let column = |f: fn(&Rotation) -> &str| rotations.iter().map(|r| f(r).to_owned()).collect::<Vec<_>>();
    sqlx::query_as(PG_REFRESH_BATCH)
        .bind(column(|r| &r.new_hash))
        .bind(column(|r| &r.old_hash))
        .bind(column(|r| &r.client_id))
        .bind(rotations.iter().map(|r| r.new_expires_at).collect::<Vec<i64>>())
        .bind(rotations.iter().map(|r| r.now).collect::<Vec<i64>>())
        .fetch_all(executor)
        .await
}

/// Sends `batch` as one statement ([`send_rotations`]) on a connection of `rotations`,
/// holding a `permit` until every rotation of it is answered; then, while rotations are
/// waiting, sends the next batch on the same connection with the same permit, so that a
/// batch behind it goes out without waiting for a waiting request's task to wake, take the
/// permit and start a task of its own.
async fn send_batch(rotations: &PgRotations, mut batch: Vec<Waiting>, permit: Option<OwnedSemaphorePermit>) {
    let mut connection = match rotations.connections.connection().await {
        Ok(connection) => connection,
        Err(error) => return batch_failed(batch, &error),
    };
    loop {
        let (sent, repeated) = first_of_each_token(batch);
        let sent_rotations: Vec<&Rotation> = sent.iter().map(|w| &w.rotation).collect();
        let rows = match send_rotations(&mut connection, &sent_rotations).await {
            Ok(rows) => rows,
            Err(error) => {
                batch_failed(sent.into_iter().chain(repeated), &error);
                // Kept if it still answers (the statement failed, not the connection).
                if let Ok(Ok(())) = tokio::time::timeout(ACQUIRE_TIMEOUT, connection.ping()).await {
                    rotations.connections.keep(connection);
                }
                return;
            }
        };
        answer_sent(sent, rows);
        answer_not(repeated);
        batch = next_batch(&rotations.waiting);
        if batch.is_empty() {
            break;
        }
    }
    rotations.connections.keep(connection);
    drop(permit);
}

/// Answers each rotation of `sent` from the `rows` its batch returned: [`Stored::Rotated`]
/// with its grant's context, or [`Stored::Not`] when no row names its old token.
fn answer_sent(sent: Vec<Waiting>, rows: Vec<SentRow>) {
    let mut stored: HashMap<String, Stored> = rows
        .into_iter()
        .map(|row| {
            let grant_id = row.context.grant_id.clone();
            // Stored is stored: a context that cannot be read is read again alone.
            let context = row.context.into_context().ok().map(Box::new);
            (row.parent_hash, Stored::Rotated(grant_id, context))
        })
        .collect();
    for waiting in sent {
        let answer = stored.remove(&waiting.rotation.old_hash).unwrap_or(Stored::Not);
        let _ = waiting.done.send(Ok(answer));
    }
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
pub(super) async fn contexts_of_grants<'a>(
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
