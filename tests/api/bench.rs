//! A short smoke run of the benchmark tool against the test server: seeding, then every
//! scenario for a few operations, without errors. Figures come from `bench/run`, not here.

use std::time::Duration;

use portcullis::bench::{self, LoadOptions, Scenario, SeedOptions};
use portcullis::model::SigningAlg;
use portcullis::password::Passwords;

use crate::helpers::TestApp;

#[tokio::test]
async fn the_benchmark_tool_seeds_and_drives_every_scenario() {
    let app = TestApp::spawn().await;
    let master = portcullis::startup::master_key(&app.config).unwrap();
    let passwords = Passwords::new(&app.config.password).unwrap();
    let seeded = bench::seed(
        &app.store,
        &master,
        &passwords,
        &SeedOptions {
            resellers: 2,
            companies: 4,
            users: 60,
            mfa_users: 50,
            signing_alg: SigningAlg::ES256,
        },
    )
    .await
    .unwrap();
    assert_eq!(app.store.list_users(None).await.unwrap().len(), 60);
    let scenarios = [
        (Scenario::Login, 0),
        (Scenario::Refresh, 10),
        (Scenario::ClientCredentials, 0),
        (Scenario::Discovery, 0),
        (Scenario::Jwks, 0),
        (Scenario::Userinfo, 20),
        (Scenario::Introspect, 30),
    ];
    for (scenario, first_user) in scenarios {
        let report = bench::run(LoadOptions {
            url: app.address.clone(),
            second_url: None,
            scenario,
            concurrency: 2,
            duration: Duration::from_secs(5),
            max_requests: 6,
            client_id: seeded.client_id.clone(),
            client_secret: seeded.client_secret.clone(),
            redirect_uri: seeded.redirect_uri.clone(),
            first_user,
            mfa_users: 10,
            scope: None,
            refresh_token_url: None,
            server_pid: Some(std::process::id()),
        })
        .await
        .unwrap();
        assert_eq!(report.errors, 0, "{scenario:?}: {:?}", report.first_error);
        assert_eq!(report.operations, 6, "{scenario:?}");
        assert!(report.p99_ms >= report.p50_ms && report.per_second > 0.0);
        assert!(report.max_ms >= report.p999_ms && report.p999_ms >= report.p99_ms);
        assert!(report.server_peak_rss_kib.unwrap() > 0);
        // The server here is this process: its CPU is read from its own threads.
        let cpu = report.cpu.expect("CPU figures on Linux");
        assert!(
            cpu.load_tool_ms.unwrap() > 0.0 && cpu.machine_busy_ms.is_some(),
            "{scenario:?}: {cpu:?}"
        );
        assert!(cpu.server_ms.values().sum::<f64>() > 0.0, "{cpu:?}");
        if scenario == Scenario::Login {
            // Every login verified a password on the argon2 threads.
            assert!(cpu.server_ms.get("argon2").is_some_and(|ms| *ms > 1.0), "{cpu:?}");
        }
    }
    // Logins went through the TOTP challenge: the tokens say so.
    let events = app
        .store
        .list_audit(&portcullis::storage::AuditFilter {
            kind: Some("login.succeeded".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(events.iter().all(|e| e.detail.contains("\"mfa\"")), "{events:?}");
    let rate = bench::argon2_rate(&passwords, 2, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(rate > 0.0);
}
