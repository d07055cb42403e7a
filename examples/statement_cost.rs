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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1) {
        None => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}/cost.db?mode=rwc", dir.path().display());
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(4)
                .test_before_acquire(false)
                .connect(&url)
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
