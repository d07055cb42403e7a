//! The command line, run as scripts run it: the real binary, JSON on stdout.

use std::process::Output;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

use crate::helpers::{PgDatabase, fresh_database};

struct Cli {
    database_url: String,
    dir: TempDir,
    _database: Option<PgDatabase>,
}

impl Cli {
    async fn new() -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, database) = fresh_database(&dir).await;
        Cli {
            database_url,
            dir,
            _database: database,
        }
    }

    async fn run_with_env(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
        command
            .args(args)
            .env_clear()
            .env("PORTCULLIS_DATABASE_URL", &self.database_url)
            .env("PORTCULLIS_KEY_DIR", self.dir.path().join("keys"))
            .env("PORTCULLIS_LOG_LEVEL", "warn")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(stdin) = stdin {
            input.write_all(stdin.as_bytes()).await.unwrap();
        }
        drop(input);
        child.wait_with_output().await.unwrap()
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.run_with_env(args, stdin, &[]).await
    }

    /// Runs a command that must succeed and print one JSON value.
    async fn json(&self, args: &[&str], stdin: Option<&str>) -> Value {
        let output = self.run(args, stdin).await;
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert_eq!(stdout.trim().lines().count(), 1, "one JSON line: {stdout}");
        serde_json::from_str(&stdout).unwrap()
    }

    /// Runs a command that must fail; returns its stderr.
    async fn failure(&self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.run(args, stdin).await;
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(output.stdout.is_empty(), "nothing on stdout when failing");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        stderr
    }
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn create_and_list_round_trip_as_json() {
    let cli = Cli::new().await;
    let reseller = cli
        .json(&["reseller", "create", "--name", "Acme Partners"], None)
        .await;
    let reseller_id = reseller["id"].as_str().unwrap();
    assert!(ids(&cli.json(&["reseller", "list"], None).await).contains(&reseller_id));

    let company = cli
        .json(
            &["company", "create", "--reseller", reseller_id, "--name", "Globex"],
            None,
        )
        .await;
    let company_id = company["id"].as_str().unwrap();
    assert_eq!(company["reseller_id"], reseller_id);
    assert_eq!(
        ids(&cli
            .json(&["company", "list", "--reseller", reseller_id], None)
            .await),
        vec![company_id]
    );

    let user = cli
        .json(
            &[
                "user",
                "create",
                "--company",
                company_id,
                "--username",
                "Alice",
                "--email",
                "alice@example.com",
                "--phone",
                "+1 415 555 0100",
                "--role",
                "company_admin",
            ],
            Some("a long enough password\n"),
        )
        .await;
    let user_id = user["id"].as_str().unwrap();
    assert_eq!(user["username"], "alice");
    assert_eq!(user["phone"], "+14155550100");
    assert_eq!(user["role"], "company_admin");
    assert!(user.get("password_hash").is_none());
    let users = cli.json(&["user", "list", "--company", company_id], None).await;
    assert_eq!(ids(&users), vec![user_id]);
    assert!(
        !users.to_string().contains("argon2"),
        "hashes never leave the database"
    );
    let changed = cli
        .json(
            &["user", "set-password", "--user", user_id],
            Some("another long password"),
        )
        .await;
    assert_eq!(changed["id"], user_id);

    let client = cli
        .json(
            &[
                "client",
                "create",
                "--name",
                "Payroll",
                "--redirect-uri",
                "https://payroll.example.com/cb",
                "--redirect-uri",
                "http://127.0.0.1:3000/cb",
                "--signing-alg",
                "ES256",
            ],
            None,
        )
        .await;
    let client_id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();
    assert_eq!(secret.len(), 43);
    let clients = cli.json(&["client", "list"], None).await;
    assert_eq!(ids(&clients), vec![client_id]);
    assert_eq!(clients[0]["id_token_alg"], "ES256");
    assert_eq!(clients[0]["redirect_uris"].as_array().unwrap().len(), 2);
    assert!(
        !clients.to_string().contains(secret),
        "the secret is shown exactly once"
    );

    let public = cli
        .json(
            &[
                "client",
                "create",
                "--name",
                "SPA",
                "--public",
                "--redirect-uri",
                "https://spa.example.com/cb",
            ],
            None,
        )
        .await;
    assert!(public.get("client_secret").is_none());
}

#[tokio::test]
async fn bad_input_gets_one_clear_line_and_changes_nothing() {
    let cli = Cli::new().await;
    let reseller = cli.json(&["reseller", "create", "--name", "R"], None).await;
    let company = cli
        .json(
            &[
                "company",
                "create",
                "--reseller",
                reseller["id"].as_str().unwrap(),
                "--name",
                "C",
            ],
            None,
        )
        .await;
    let company_id = company["id"].as_str().unwrap();
    let user = |name: &'static str, email: &'static str| {
        vec![
            "user",
            "create",
            "--company",
            company_id,
            "--username",
            name,
            "--email",
            email,
        ]
    };

    let error = cli
        .failure(&user("bob", "not-an-email"), Some("long enough password"))
        .await;
    assert!(error.contains("not a valid email address"), "{error}");
    let error = cli.failure(&user("bob", "bob@example.com"), Some("short")).await;
    assert!(error.contains("at least 8 characters"), "{error}");
    let error = cli
        .failure(
            &user("bob smith", "bob@example.com"),
            Some("long enough password"),
        )
        .await;
    assert!(error.contains("login name"), "{error}");
    let error = cli
        .failure(&["company", "create", "--reseller", "nope", "--name", "X"], None)
        .await;
    assert!(error.contains("reseller nope does not exist"), "{error}");
    let error = cli
        .failure(
            &[
                "user",
                "create",
                "--company",
                "nope",
                "--username",
                "x",
                "--email",
                "x@example.com",
            ],
            Some("long enough password"),
        )
        .await;
    assert!(error.contains("company nope does not exist"), "{error}");
    let error = cli
        .failure(
            &[
                "client",
                "create",
                "--name",
                "X",
                "--redirect-uri",
                "http://evil.example.com/cb",
            ],
            None,
        )
        .await;
    assert!(error.contains("https"), "{error}");
    let error = cli.failure(&["client", "create", "--name", "X"], None).await;
    assert!(error.contains("redirect URI"), "{error}");

    cli.json(&user("bob", "bob@example.com"), Some("long enough password"))
        .await;
    let error = cli
        .failure(&user("BOB", "bob2@example.com"), Some("long enough password"))
        .await;
    assert!(error.contains("already exists"), "{error}");
    let users = cli.json(&["user", "list"], None).await;
    assert_eq!(users.as_array().unwrap().len(), 1, "no half-created users");
}

#[tokio::test]
async fn invalid_configuration_stops_with_one_line_naming_the_key() {
    let cli = Cli::new().await;
    for (env, key) in [
        (
            ("PORTCULLIS_TOKENS__ACCESS_TOKEN_TTL", "0s"),
            "tokens.access_token_ttl",
        ),
        (
            ("PORTCULLIS_TOKENS__ACCESS_TOKEN_TTL", "soon"),
            "tokens.access_token_ttl",
        ),
        (("PORTCULLIS_LISTEN", "not-an-address"), "listen"),
        (("PORTCULLIS_ISSUER", "https://id.example.com/"), "issuer"),
        (("PORTCULLIS_LISTN", "127.0.0.1:1"), "listn"),
        (("PORTCULLIS_DATABASE_URL", "mysql://x"), "database_url"),
    ] {
        let output = cli.run_with_env(&["migrate"], None, &[env]).await;
        assert_eq!(output.status.code(), Some(2), "{env:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(key), "{env:?}: {stderr}");
    }
    let config = cli.dir.path().join("portcullis.toml");
    std::fs::write(&config, "[login]\nmax_failures_per_account = \"five\"\n").unwrap();
    let output = cli
        .run_with_env(
            &["migrate"],
            None,
            &[("PORTCULLIS_CONFIG", config.to_str().unwrap())],
        )
        .await;
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("login.max_failures_per_account"), "{stderr}");
}

#[tokio::test]
async fn migrate_is_idempotent_and_keys_rotate_and_list() {
    let cli = Cli::new().await;
    for _ in 0..2 {
        let output = cli.run(&["migrate"], None).await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let rotated = cli.json(&["keys", "rotate"], None).await;
    let first: Vec<&str> = rotated["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(first.len(), 2);
    cli.json(&["keys", "rotate"], None).await;
    let keys = cli.json(&["keys", "list"], None).await;
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 4);
    for key in keys {
        let kid = key["kid"].as_str().unwrap();
        let expected = if first.contains(&kid) { "retired" } else { "active" };
        assert_eq!(key["status"], expected, "{key}");
    }
    assert!(std::fs::read_to_string(cli.dir.path().join("keys/master.key")).is_ok());
}

/// A reseller, a company, and a company admin, made with the CLI.
async fn tenant_with_admin(cli: &Cli) -> (String, String, String) {
    let reseller = cli.json(&["reseller", "create", "--name", "Acme"], None).await;
    let reseller = reseller["id"].as_str().unwrap().to_owned();
    let company = cli
        .json(
            &["company", "create", "--reseller", &reseller, "--name", "Globex"],
            None,
        )
        .await;
    let company = company["id"].as_str().unwrap().to_owned();
    let admin = cli
        .json(
            &[
                "user",
                "create",
                "--company",
                &company,
                "--username",
                "boss",
                "--email",
                "boss@example.com",
                "--role",
                "company_admin",
            ],
            Some("a long enough password"),
        )
        .await;
    (reseller, company, admin["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn company_mfa_settings_are_validated_shown_and_enforced_by_the_reseller() {
    let cli = Cli::new().await;
    let (reseller, company, admin) = tenant_with_admin(&cli).await;
    let shown = cli
        .json(&["company", "mfa", "show", "--company", &company], None)
        .await;
    assert_eq!(shown["policy"]["mode"], "off");
    assert_eq!(shown["effective"]["mode"], "off");

    let error = cli
        .failure(
            &[
                "company",
                "mfa",
                "set",
                "--company",
                &company,
                "--mode",
                "required",
            ],
            None,
        )
        .await;
    assert!(error.contains("reset approver"), "{error}");
    let error = cli
        .failure(
            &[
                "company",
                "mfa",
                "set",
                "--company",
                &company,
                "--mode",
                "required",
                "--methods",
                "",
                "--approver",
                &admin,
            ],
            None,
        )
        .await;
    assert!(error.contains("at least one method"), "{error}");
    let error = cli
        .failure(
            &[
                "company",
                "mfa",
                "set",
                "--company",
                &company,
                "--mode",
                "required",
                "--approver",
                "nobody",
            ],
            None,
        )
        .await;
    assert!(error.contains("cannot approve"), "{error}");
    let saved = cli
        .json(
            &[
                "company",
                "mfa",
                "set",
                "--company",
                &company,
                "--mode",
                "optional",
                "--methods",
                "totp",
                "--approver",
                &admin,
                "--allow-self-reset",
                "true",
            ],
            None,
        )
        .await;
    assert_eq!(saved["effective"]["mode"], "optional");
    assert_eq!(saved["policy"]["reset_approvers"], serde_json::json!([admin]));

    let enforced = cli
        .json(
            &[
                "reseller",
                "enforce",
                "--reseller",
                &reseller,
                "--company",
                &company,
                "--methods",
                "totp",
            ],
            None,
        )
        .await;
    assert_eq!(enforced["effective"]["mode"], "required");
    assert_eq!(enforced["effective"]["enforced"], true);
    assert_eq!(enforced["enforced_by"], reseller);
    let error = cli
        .failure(
            &["company", "mfa", "set", "--company", &company, "--mode", "off"],
            None,
        )
        .await;
    assert!(error.contains("enforces MFA"), "{error}");
    let error = cli
        .failure(
            &[
                "company",
                "mfa",
                "set",
                "--company",
                &company,
                "--allow-skip",
                "true",
                "--mode",
                "required",
            ],
            None,
        )
        .await;
    assert!(error.contains("cannot skip"), "{error}");
    let released = cli
        .json(
            &[
                "reseller",
                "release",
                "--reseller",
                &reseller,
                "--company",
                &company,
            ],
            None,
        )
        .await;
    assert_eq!(released["effective"]["mode"], "optional");
    let error = cli
        .failure(
            &[
                "reseller",
                "release",
                "--reseller",
                &reseller,
                "--company",
                &company,
            ],
            None,
        )
        .await;
    assert!(error.contains("not enforced"), "{error}");

    // The reseller's minimum: companies may only tighten it.
    cli.json(
        &[
            "reseller",
            "mfa",
            "set",
            "--reseller",
            &reseller,
            "--mode",
            "optional",
        ],
        None,
    )
    .await;
    let error = cli
        .failure(
            &["company", "mfa", "set", "--company", &company, "--mode", "off"],
            None,
        )
        .await;
    assert!(error.contains("at least `optional`"), "{error}");
    let other = cli.json(&["reseller", "create", "--name", "Other"], None).await;
    let error = cli
        .failure(
            &[
                "reseller",
                "enforce",
                "--reseller",
                other["id"].as_str().unwrap(),
                "--company",
                &company,
            ],
            None,
        )
        .await;
    assert!(error.contains("does not belong"), "{error}");
}

#[tokio::test]
async fn user_opt_out_and_reset_from_the_command_line() {
    let cli = Cli::new().await;
    let (_, _, admin) = tenant_with_admin(&cli).await;
    let error = cli
        .failure(
            &["user", "mfa-opt-out", "--user", &admin, "--opt-out", "true"],
            None,
        )
        .await;
    assert!(error.contains("reason"), "{error}");
    let error = cli
        .failure(
            &[
                "user",
                "mfa-opt-out",
                "--user",
                &admin,
                "--opt-out",
                "true",
                "--reason",
                "x",
                "--expires",
                "yesterday",
            ],
            None,
        )
        .await;
    assert!(error.contains("RFC 3339"), "{error}");
    let done = cli
        .json(
            &[
                "user",
                "mfa-opt-out",
                "--user",
                &admin,
                "--opt-out",
                "true",
                "--reason",
                "shared kiosk",
                "--expires",
                "2099-01-01T00:00:00Z",
            ],
            None,
        )
        .await;
    assert_eq!(done["mfa_opt_out"], true);
    cli.json(
        &["user", "mfa-opt-out", "--user", &admin, "--opt-out", "false"],
        None,
    )
    .await;
    let reset = cli.json(&["user", "mfa-reset", "--user", &admin], None).await;
    assert_eq!(reset["reset"], true);
    let error = cli
        .failure(&["user", "mfa-reset", "--user", "nobody"], None)
        .await;
    assert!(error.contains("does not exist"), "{error}");
}

#[tokio::test]
async fn service_clients_and_the_audit_log_from_the_command_line() {
    let cli = Cli::new().await;
    let (reseller, company, admin) = tenant_with_admin(&cli).await;
    let created = cli
        .json(
            &[
                "client",
                "create",
                "--name",
                "Automation",
                "--service",
                "--company",
                &company,
            ],
            None,
        )
        .await;
    assert!(created["client_secret"].is_string());
    let listed = cli.json(&["client", "list"], None).await;
    let service = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == created["client_id"])
        .unwrap();
    assert_eq!(service["grant_types"], serde_json::json!(["client_credentials"]));
    assert_eq!(service["scopes"], "admin");
    assert_eq!(service["company_id"], company.as_str());
    for (args, says) in [
        (
            vec!["client", "create", "--name", "X", "--service"],
            "acts for --reseller ID or --company ID",
        ),
        (
            vec![
                "client",
                "create",
                "--name",
                "X",
                "--grant",
                "client_credentials",
                "--scope",
                "admin",
            ],
            "use --service",
        ),
        (
            vec![
                "client",
                "create",
                "--name",
                "X",
                "--service",
                "--reseller",
                &reseller,
                "--redirect-uri",
                "https://x.example/cb",
            ],
            "only client_credentials",
        ),
    ] {
        let error = cli.failure(&args, None).await;
        assert!(error.contains(says), "{args:?}: {error}");
    }
    cli.json(&["user", "mfa-reset", "--user", &admin], None).await;
    let output = cli
        .run(
            &["audit", "list", "--company", &company, "--type", "mfa.reset"],
            None,
        )
        .await;
    assert!(output.status.success());
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["actor_kind"], "cli");
    assert_eq!(lines[0]["subject"], admin.as_str());
    let output = cli.run(&["audit", "list", "--user", &admin], None).await;
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("user.created") && text.contains("mfa.reset"),
        "{text}"
    );
}

#[tokio::test]
async fn a_closed_standard_output_is_not_a_panic() {
    let cli = Cli::new().await;
    cli.json(&["reseller", "create", "--name", "Acme"], None).await;
    // As in `portcullis reseller list | head -0`: the reader is gone before anything is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["reseller", "list"])
        .env_clear()
        .env("PORTCULLIS_DATABASE_URL", &cli.database_url)
        .env("PORTCULLIS_KEY_DIR", cli.dir.path().join("keys"))
        .env("PORTCULLIS_LOG_LEVEL", "warn")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn() // not `output()`, which would capture stdout
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.status.success(), "{stderr}");
}

/// The binary itself serves (the other tests run the server inside the test binary): start-up
/// with its allocator (mimalloc, `src/main.rs`), migrations, keys, then discovery, a client
/// created by the CLI and a client_credentials token from it, and `/readyz`.
#[tokio::test]
async fn the_binary_serves_tokens() {
    let cli = Cli::new().await;
    let created = cli
        .json(
            &[
                "client",
                "create",
                "--name",
                "Backend",
                "--redirect-uri",
                "https://app.example/callback",
                "--grant",
                "client_credentials",
                "--scope",
                "api",
            ],
            None,
        )
        .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .env_clear()
        .env("PORTCULLIS_DATABASE_URL", &cli.database_url)
        .env("PORTCULLIS_KEY_DIR", cli.dir.path().join("keys"))
        .env("PORTCULLIS_LOG_LEVEL", "warn")
        .env("PORTCULLIS_LISTEN", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_ISSUER", &url)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(response) = http.get(format!("{url}/readyz")).send().await
            && response.status().is_success()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "the server became ready within 5 s");
    let discovery: Value = http
        .get(format!("{url}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], url.as_str());
    let token = http
        .post(format!("{url}/token"))
        .basic_auth(
            created["client_id"].as_str().unwrap(),
            created["client_secret"].as_str(),
        )
        .form(&[("grant_type", "client_credentials"), ("scope", "api")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), reqwest::StatusCode::OK);
    let token: Value = token.json().await.unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert!(
        token["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    server.kill().await.unwrap();
}
