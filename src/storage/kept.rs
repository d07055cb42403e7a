//! PostgreSQL connections this process keeps itself, outside sqlx's pool.
//!
//! sqlx pings every pooled connection as it goes back into its pool (`return_to_pool` in
//! sqlx-core 0.9; no option turns it off): for a statement, a second round trip, and a
//! wake-up of the backend and of a tokio thread. The batches of refreshes
//! (`grants::batch`) and a login's statements (the login transaction, the login facts, the
//! TOTP replay guard, the completed login, the code exchange: nine per login) go out on
//! connections kept here instead, which come back without a ping. The ping guards against
//! a connection left in an unknown state by a statement that was abandoned half-way (its
//! request went away); here such a connection is never given back: it is closed, and the
//! backend rolls back whatever it held. Nor is one whose statement failed. One idle for
//! [`PING_IF_IDLE_FOR`] is pinged before it is used again, as the pool's are.
//!
//! A statement on these connections may run, or wait for a lock, for at most
//! [`STATEMENT_TIMEOUT`] (PostgreSQL's `statement_timeout`), unless the database URL sets
//! `statement_timeout` itself (`?options[statement_timeout]=5s`). Without it a statement
//! stuck behind a lock (an open transaction of someone's `psql`) would hold its backend, and
//! a batch its permit, for as long as the lock; a request that timed out meanwhile closes its
//! connection, but the backend does not notice until the lock is released, so each retry
//! would leave one more backend waiting.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ACQUIRE_TIMEOUT, PING_IF_IDLE_FOR, lock};

/// Idle connections to one database, each with the time it came back.
pub(super) struct KeptConnections {
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    connect: PgConnectOptions,
}

/// How long PostgreSQL lets a statement on a kept connection run, waits for locks included,
/// before it cancels the statement (SQLSTATE 57014, which `StoreError::is_unavailable`
/// recognises). A third of the default HTTP request timeout: a login's statements and a
/// batch of refreshes take milliseconds.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// `connect` with [`STATEMENT_TIMEOUT`], unless its options already set `statement_timeout`.
fn with_statement_timeout(connect: PgConnectOptions) -> PgConnectOptions {
    if connect
        .get_options()
        .is_some_and(|options| options.contains("statement_timeout"))
    {
        return connect;
    }
    connect.options([(
        "statement_timeout",
        format!("{}ms", STATEMENT_TIMEOUT.as_millis()),
    )])
}

impl KeptConnections {
    /// Connections made with `connect` and [`STATEMENT_TIMEOUT`].
    pub fn new(connect: PgConnectOptions) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            connect: with_statement_timeout(connect),
        }
    }

    /// An idle connection, or a new one, within [`ACQUIRE_TIMEOUT`] as from a pool.
    pub async fn connection(&self) -> Result<PgConnection, sqlx::Error> {
        let connection = async {
            loop {
                let idle = lock(&self.idle).pop();
                let Some((mut connection, since)) = idle else {
                    return PgConnection::connect_with(&self.connect).await;
                };
                if since.elapsed() < PING_IF_IDLE_FOR || connection.ping().await.is_ok() {
                    return Ok(connection);
                }
            }
        };
        tokio::time::timeout(ACQUIRE_TIMEOUT, connection)
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    /// Keeps `connection`, whose statement was answered, for the next one.
    pub fn keep(&self, connection: PgConnection) {
        lock(&self.idle).push((connection, Instant::now()));
    }

    /// Closes the idle connections.
    pub async fn close(&self) {
        let idle: Vec<_> = lock(&self.idle).drain(..).collect();
        for (connection, _) in idle {
            let _ = connection.close().await;
        }
    }
}

/// Names the database `pool` connects to (host, port and database).
pub(super) fn pg_database(pool: &PgPool) -> String {
    let options = pool.connect_options();
    format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    )
}

/// The connections of a login's statements on one database: at most as many at once as the
/// pool may hold.
struct LoginConnections {
    permits: Arc<Semaphore>,
    kept: KeptConnections,
}

/// The [`LoginConnections`] of each PostgreSQL database this process uses, by [`pg_database`].
static LOGIN_CONNECTIONS: LazyLock<Mutex<HashMap<String, Arc<LoginConnections>>>> =
    LazyLock::new(Default::default);

/// A connection for one of a login's statements. Give it back with [`Kept::done`]; dropped
/// otherwise (the statement was abandoned), it is closed.
pub(super) struct Kept {
    connection: PgConnection,
    owner: Arc<LoginConnections>,
    _permit: OwnedSemaphorePermit,
}

impl Kept {
    /// Keeps the connection for the next statement when `outcome` is a success. After an
    /// error it is closed: a connection whose server process was ended answers with a
    /// database error too (`FATAL`, SQLSTATE 57P01), and a login's statements fail rarely
    /// enough that a new connection after each failure costs nothing that shows.
    pub fn done<T>(self, outcome: &Result<T, sqlx::Error>) {
        let Kept {
            connection,
            owner,
            _permit,
        } = self;
        if outcome.is_ok() {
            owner.kept.keep(connection);
        }
    }
}

impl Deref for Kept {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.connection
    }
}

impl DerefMut for Kept {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.connection
    }
}

/// A connection for one of a login's statements on `pool`'s database, within
/// [`ACQUIRE_TIMEOUT`].
pub(super) async fn login_connection(pool: &PgPool) -> Result<Kept, sqlx::Error> {
    let owner = lock(&LOGIN_CONNECTIONS)
        .entry(pg_database(pool))
        .or_insert_with(|| {
            Arc::new(LoginConnections {
                permits: Arc::new(Semaphore::new(pool.options().get_max_connections() as usize)),
                kept: KeptConnections::new((*pool.connect_options()).clone()),
            })
        })
        .clone();
    let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, owner.permits.clone().acquire_owned())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map_err(|_| sqlx::Error::PoolClosed)?;
    let connection = owner.kept.connection().await?;
    Ok(Kept {
        connection,
        owner,
        _permit: permit,
    })
}

/// Closes the idle login connections of `pool`'s database
/// ([`Store::close`](super::Store::close)); one in use is closed when its statement ends.
pub(super) async fn close_login_connections(pool: &PgPool) {
    let closed = lock(&LOGIN_CONNECTIONS).remove(&pg_database(pool));
    if let Some(owner) = closed {
        owner.permits.close();
        owner.kept.close().await;
    }
}

/// Runs `$body` with `$conn` bound to a kept connection of `$pool`'s database (a `&mut
/// PgConnection`, for a login's statement) and gives the connection back (see
/// [`Kept::done`]); evaluates to `$body`'s value, or returns its error.
macro_rules! on_kept {
    ($pool:expr, |$conn:ident| $body:expr) => {{
        let mut kept = $crate::storage::kept::login_connection($pool).await?;
        let outcome: Result<_, sqlx::Error> = {
            let $conn: &mut sqlx::postgres::PgConnection = &mut kept;
            $body
        };
        kept.done(&outcome);
        outcome?
    }};
}
pub(super) use on_kept;

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn kept_connections_get_the_statement_timeout_unless_the_url_sets_one() {
        let plain = PgConnectOptions::from_str("postgres://u@localhost/db").unwrap();
        assert_eq!(
            with_statement_timeout(plain).get_options(),
            Some("-c statement_timeout=10000ms")
        );
        let generic = PgConnectOptions::from_str("postgres://u@localhost/db")
            .unwrap()
            .options([("plan_cache_mode", "force_generic_plan")]);
        assert_eq!(
            with_statement_timeout(generic).get_options(),
            Some("-c plan_cache_mode=force_generic_plan -c statement_timeout=10000ms")
        );
        let own =
            PgConnectOptions::from_str("postgres://u@localhost/db?options[statement_timeout]=2s").unwrap();
        assert_eq!(
            with_statement_timeout(own).get_options(),
            Some("-c statement_timeout=2s")
        );
    }
}
