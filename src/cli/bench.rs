//! `portcullis bench seed | run | argon2`: see `crate::bench` and `docs/benchmarks.md`.

use super::{BenchCommand, BenchRun, CliError, print_json};
use crate::bench::{self, LoadOptions, SeedOptions};
use crate::config::Config;
use crate::model::SigningAlg;
use crate::password::Passwords;
use crate::startup::{master_key, open_store};

pub async fn execute(command: BenchCommand, config: &Config) -> Result<(), CliError> {
    let error = |e: anyhow::Error| CliError(format!("{e:#}"));
    match command {
        BenchCommand::Seed {
            resellers,
            companies,
            users,
            mfa_users,
            signing_alg,
        } => {
            let signing_alg = signing_alg
                .parse::<SigningAlg>()
                .map_err(|e| CliError(e.to_string()))?;
            let store = open_store(config).await.map_err(error)?;
            let master = master_key(config).map_err(error)?;
            let passwords = Passwords::new(&config.password)?;
            let options = SeedOptions {
                resellers,
                companies,
                users,
                mfa_users,
                signing_alg,
            };
            let report = bench::seed(&store, &master, &passwords, &options)
                .await
                .map_err(error);
            store.close().await;
            print_json(&serde_json::json!(report?));
        }
        BenchCommand::Run(run) => {
            let BenchRun {
                url,
                second_url,
                scenario,
                concurrency,
                duration,
                requests,
                client_id,
                client_secret,
                redirect_uri,
                mfa_users,
                first_user,
                scope,
                refresh_token_url,
                server_pid,
            } = *run;
            let options = LoadOptions {
                url,
                second_url,
                scenario: scenario.parse().map_err(error)?,
                concurrency,
                duration: duration.into(),
                max_requests: requests,
                client_id,
                client_secret,
                redirect_uri,
                first_user,
                mfa_users,
                scope,
                refresh_token_url,
                server_pid,
            };
            print_json(&serde_json::json!(bench::run(options).await.map_err(error)?));
        }
        BenchCommand::Argon2 { tasks, duration } => {
            let passwords = Passwords::new(&config.password)?;
            let rate = bench::argon2_rate(&passwords, tasks, duration.into())
                .await
                .map_err(error)?;
            print_json(&serde_json::json!({
                "argon2_verifications_per_second": rate,
                "memory_kib": config.password.memory_kib,
                "iterations": config.password.iterations,
                "parallelism": config.password.parallelism,
            }));
        }
    }
    Ok(())
}
