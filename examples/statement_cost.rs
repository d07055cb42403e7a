//! What one statement costs through sqlx: CPU time and context switches per primary-key
//! `SELECT` (a 1,000-row table that stays in the cache), for one task and for four at once,
//! each either taking a connection from the pool for every statement or holding one for all
//! of its statements. Figures per statement: this process's CPU, the whole machine's busy time
//! (with PostgreSQL, its backend's work is in there) and the machine's context switches.
//!
//! ```text
//! cargo run --release --example statement_cost                   # SQLite, in a temporary file
//! cargo run --release --example statement_cost -- postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every statement to it and
//! back. And whenever a connection goes back to the pool, sqlx checks it with a ping of its own,
//! in a task of its own: a hand-off to the SQLite thread, or a round trip to the PostgreSQL
//! backend. "held" leaves that ping out. See "What bounds each figure" in `docs/benchmarks.md`.
//!
//! On SQLite it then runs the same lookups, and a write (`UPDATE` by primary key, committed
//! alone), on the calling task's own thread through rusqlite (the same SQLite library, no
//! hand-off), and the write through sqlx too: what `storage::inline` saves a login's
//! statements.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use portcullis::bench::cpu::Sample;

const STATEMENTS: usize = 20_000;

/// Runs `STATEMENTS` lookups as `tasks` tasks and prints what each cost.
macro_rules! measure {
    ($pool:expr, $label:expr) => {{
        for tasks in [1_usize, 4] {
            for held in [false, true] {
                let before = Sample::take(None);
                let started = Instant::now();
                let mut running = Vec::new();
                for task in 0..tasks {
                    let pool = $pool.clone();
                    running.push(tokio::spawn(async move {
                        let mut conn = if held { Some(pool.acquire().await?) } else { None };
                        for i in 0..STATEMENTS / tasks {
                            let id = i64::try_from((i + task) % 1000).unwrap_or(0);
                            let query = sqlx::query_as::<_, (i64, String)>("SELECT id, v FROM statement_cost WHERE id = $1").bind(id);
                            let _row = match conn.as_mut() {
                                Some(conn) => query.fetch_optional(&mut **conn).await?,
                                None => query.fetch_optional(&pool).await?,
                            };
                        }
                        anyhow::Ok(())
                    }));
                }
                for task in running {
                    task.await??;
                }
                let wall = started.elapsed().as_secs_f64() * 1e6 / STATEMENTS as f64;
                let cost = before.since(STATEMENTS as u64).ok_or_else(|| anyhow::anyhow!("no /proc"))?;
                let us = |ms: Option<f64>| ms.map_or("–".to_owned(), |ms| format!("{:.1}", ms * 1000.0));
                println!(
                    "{}, {tasks} task(s), {}: this process {} µs, machine busy {} µs, machine switches {:.2}, wall {wall:.1} µs per statement",
                    $label,
                    if held { "one connection held" } else { "a pooled connection per statement" },
                    us(cost.load_tool_ms),
                    us(cost.machine_busy_ms),
                    cost.machine_switches.unwrap_or(0.0),
                );
            }
        }
    }};
}

/// Prints what `statements` statements run by `tasks` tasks cost, from `before`.
fn report(label: &str, before: &Sample, started: Instant, statements: usize) -> anyhow::Result<()> {
    let wall = started.elapsed().as_secs_f64() * 1e6 / statements as f64;
    let cost = before
        .since(statements as u64)
        .ok_or_else(|| anyhow::anyhow!("no /proc"))?;
    let us = |ms: Option<f64>| ms.map_or("–".to_owned(), |ms| format!("{:.1}", ms * 1000.0));
    println!(
        "{label}: this process {} µs, machine busy {} µs, machine switches {:.2}, wall {wall:.1} µs per statement",
        us(cost.load_tool_ms),
        us(cost.machine_busy_ms),
        cost.machine_switches.unwrap_or(0.0),
    );
    Ok(())
}

/// A rusqlite connection to `path`, set up as the server sets up its own.
fn open_inline(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "normal")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// One lookup of `measure!` on `conn`.
fn lookup(conn: &rusqlite::Connection, id: i64) -> rusqlite::Result<Option<(i64, String)>> {
    let mut statement = conn.prepare_cached("SELECT id, v FROM statement_cost WHERE id = ?1")?;
    match statement.query_row([id], |row| Ok((row.get(0)?, row.get(1)?))) {
        Ok(row) => Ok(Some(row)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The lookups of `measure!`, each task with a connection of its own, run on the task's thread.
async fn inline_reads(path: &Path) -> anyhow::Result<()> {
    for tasks in [1_usize, 4] {
        let before = Sample::take(None);
        let started = Instant::now();
        let mut running = Vec::new();
        for task in 0..tasks {
            let path: PathBuf = path.to_owned();
            running.push(tokio::spawn(async move {
                let conn = open_inline(&path)?;
                for i in 0..STATEMENTS / tasks {
                    let id = i64::try_from((i + task) % 1000).unwrap_or(0);
                    lookup(&conn, id)?;
                    // A task yields between statements, as one awaiting a driver would.
                    tokio::task::yield_now().await;
                }
                anyhow::Ok(())
            }));
        }
        for task in running {
            task.await??;
        }
        report(
            &format!("SQLite inline, {tasks} task(s)"),
            &before,
            started,
            STATEMENTS,
        )?;
    }
    Ok(())
}

/// One write of [`writes`] on `conn`.
fn update(conn: &rusqlite::Connection, sql: &str, i: usize, id: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?
        .execute(rusqlite::params![i.to_string(), id])
}

/// A write committed alone, by one task: through sqlx's pool, then on the task's own thread.
async fn writes(pool: &sqlx::SqlitePool, path: &Path) -> anyhow::Result<()> {
    const UPDATE: &str = "UPDATE statement_cost SET v = $1 WHERE id = $2";
    let before = Sample::take(None);
    let started = Instant::now();
    for i in 0..STATEMENTS / 4 {
        let id = i64::try_from(i % 1000).unwrap_or(0);
        sqlx::query(UPDATE)
            .bind(i.to_string())
            .bind(id)
            .execute(pool)
            .await?;
    }
    report(
        "SQLite write, 1 task, a pooled connection per statement",
        &before,
        started,
        STATEMENTS / 4,
    )?;
    let conn = open_inline(path)?;
    let before = Sample::take(None);
    let started = Instant::now();
    for i in 0..STATEMENTS / 4 {
        let id = i64::try_from(i % 1000).unwrap_or(0);
        update(&conn, UPDATE, i, id)?;
        tokio::task::yield_now().await;
    }
    report("SQLite write inline, 1 task", &before, started, STATEMENTS / 4)?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1) {
        None => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}/cost.db?mode=rwc", dir.path().display());
            // As the server opens it (`Store::connect_with`).
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(4)
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            sqlx::query("CREATE TABLE statement_cost (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
                .execute(&pool)
                .await?;
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999) \
                 INSERT INTO statement_cost SELECT i, 'x' FROM n",
            )
            .execute(&pool)
            .await?;
            measure!(pool, "SQLite");
            inline_reads(&dir.path().join("cost.db")).await?;
            writes(&pool, &dir.path().join("cost.db")).await?;
        }
        Some(url) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .test_before_acquire(false)
                .connect(&url)
                .await?;
            // A table of its own in the given database, dropped again at the end.
            sqlx::query("DROP TABLE IF EXISTS statement_cost")
                .execute(&pool)
                .await?;
            sqlx::query("CREATE TABLE statement_cost (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
                .execute(&pool)
                .await?;
            sqlx::query("INSERT INTO statement_cost SELECT i, 'x' FROM generate_series(0, 999) AS i")
                .execute(&pool)
                .await?;
            measure!(pool, "PostgreSQL");
            sqlx::query("DROP TABLE statement_cost").execute(&pool).await?;
        }
    }
    Ok(())
}
