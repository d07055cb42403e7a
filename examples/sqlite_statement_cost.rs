//! What one SQLite statement costs through sqlx: CPU time and context switches per
//! primary-key `SELECT`, for one task and for four at once, read from `/proc/self`.
//!
//! ```text
//! cargo run --release --example sqlite_statement_cost
//! ```
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every statement to it
//! and back; the figures show what that hand-off costs beside SQLite's own work (a lookup by
//! primary key in a 1,000-row table that stays in the page cache). See "What bounds each
//! figure" in `docs/benchmarks.md`.

use std::time::Instant;

use anyhow::Context;

/// CPU seconds of this process, and the context switches of all its threads.
fn usage() -> anyhow::Result<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .context("no fields in /proc/self/stat")?
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short /proc/self/stat")?.parse::<f64>()?)
    };
    let seconds = (ticks(11)? + ticks(12)?) / 100.0;
    let mut switches = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let status = std::fs::read_to_string(task?.path().join("status"))?;
        for line in status.lines().filter(|l| l.contains("ctxt_switches")) {
            switches += line.split_whitespace().last().unwrap_or("0").parse::<u64>()?;
        }
    }
    Ok((seconds, switches))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/cost.db?mode=rwc", dir.path().display());
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .connect(&url)
        .await?;
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    for id in 0..1000_i64 {
        sqlx::query("INSERT INTO t VALUES ($1, 'x')")
            .bind(id)
            .execute(&pool)
            .await?;
    }
    let statements = 20_000;
    for tasks in [1_usize, 4] {
        let (cpu, switches) = usage()?;
        let started = Instant::now();
        let mut running = Vec::new();
        for task in 0..tasks {
            let pool = pool.clone();
            running.push(tokio::spawn(async move {
                for i in 0..statements / tasks {
                    let id = i64::try_from((i + task) % 1000).unwrap_or(0);
                    let _: Option<(i64, String)> = sqlx::query_as("SELECT id, v FROM t WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&pool)
                        .await?;
                }
                anyhow::Ok(())
            }));
        }
        for task in running {
            task.await??;
        }
        let (cpu_after, switches_after) = usage()?;
        let n = statements as f64;
        println!(
            "{tasks} task(s): {:.1} µs of CPU, {:.2} context switches and {:.1} µs of wall time per statement",
            (cpu_after - cpu) * 1e6 / n,
            (switches_after - switches) as f64 / n,
            started.elapsed().as_secs_f64() * 1e6 / n
        );
    }
    Ok(())
}
