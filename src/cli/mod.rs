//! The command line: `portcullis serve | migrate | demo | reseller | company | user |
//! client | keys`. Every create prints one JSON object on stdout; lists print a JSON
//! array; logs and errors go to stderr.

mod admin;
mod bench;
mod demo;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::Config;
use crate::startup::{Application, shutdown_signal};

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An OpenID Connect provider for multi-tenant B2B software"
)]
pub struct Cli {
    /// A TOML configuration file.
    #[arg(long, global = true, env = "PORTCULLIS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the provider.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create a demo tenant (if missing) and run the provider.
    Demo,
    /// Manage resellers.
    #[command(subcommand)]
    Reseller(ResellerCommand),
    /// Manage companies.
    #[command(subcommand)]
    Company(CompanyCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage relying-party clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Benchmarks: seed users in bulk, load a running provider, measure argon2.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Args)]
pub struct BenchRun {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A second instance: each login posts its password and code there.
    #[arg(long = "second-url")]
    second_url: Option<String>,
    /// login, refresh, client-credentials, discovery, jwks, userinfo or introspect.
    #[arg(long)]
    scenario: String,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long, e.g. `10s`.
    #[arg(long, default_value = "10s")]
    duration: humantime::Duration,
    /// Stop after this many operations.
    #[arg(long, default_value_t = u64::MAX)]
    requests: u64,
    #[arg(long = "client-id", default_value = "bench-client")]
    client_id: String,
    #[arg(long = "client-secret", env = "BENCH_CLIENT_SECRET")]
    client_secret: String,
    #[arg(long = "redirect-uri", default_value = "https://bench.example/callback")]
    redirect_uri: String,
    /// Logins cycle through seeded users FIRST..FIRST+N (all with TOTP).
    #[arg(long = "mfa-users", default_value_t = 1000)]
    mfa_users: u64,
    #[arg(long = "first-user", default_value_t = 0)]
    first_user: u64,
    #[arg(long)]
    scope: Option<String>,
    /// Get refresh tokens here (GET, JSON {"refresh_token"}) instead of signing in.
    #[arg(long = "refresh-token-url")]
    refresh_token_url: Option<String>,
    /// The server's process id, to report its memory.
    #[arg(long = "server-pid")]
    server_pid: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Create resellers, companies, users `bench0000000...` (one password) and TOTP factors,
    /// and the client `bench-client` (a new secret each run). Prints JSON.
    Seed {
        #[arg(long, default_value_t = 10)]
        resellers: u64,
        #[arg(long, default_value_t = 100)]
        companies: u64,
        #[arg(long, default_value_t = 1000)]
        users: u64,
        /// The first N users get a TOTP factor (and are challenged at sign-in).
        #[arg(long = "mfa-users", default_value_t = 1000)]
        mfa_users: u64,
        /// How the bench client's tokens are signed: RS256 or ES256.
        #[arg(long = "signing-alg", default_value = "RS256")]
        signing_alg: String,
    },
    /// Drive a running provider and print a JSON report.
    Run(Box<BenchRun>),
    /// argon2 verifications per second with the configured parameters and concurrency cap.
    Argon2 {
        #[arg(long, default_value_t = 8)]
        tasks: usize,
        #[arg(long, default_value = "5s")]
        duration: humantime::Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print audit events (oldest first) as JSON lines.
    List {
        #[arg(long, value_name = "COMPANY_ID")]
        company: Option<String>,
        #[arg(long, value_name = "RESELLER_ID")]
        reseller: Option<String>,
        /// Events about this user.
        #[arg(long, value_name = "USER_ID")]
        user: Option<String>,
        /// Events of this type, e.g. `login.succeeded`.
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// At or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Before this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ResellerCommand {
    /// Create a reseller; prints {"id": ...}.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List resellers.
    List,
    /// Enforce MFA on one of the reseller's companies: required, no skip, no opt-out.
    Enforce {
        #[arg(long, value_name = "RESELLER_ID")]
        reseller: String,
        #[arg(long, value_name = "COMPANY_ID")]
        company: String,
        /// Narrow the allowed methods, e.g. `totp`.
        #[arg(long, value_name = "METHODS")]
        methods: Option<String>,
    },
    /// End an enforcement.
    Release {
        #[arg(long, value_name = "RESELLER_ID")]
        reseller: String,
        #[arg(long, value_name = "COMPANY_ID")]
        company: String,
    },
    /// The minimum MFA policy of all the reseller's companies.
    #[command(subcommand)]
    Mfa(ResellerMfaCommand),
}

#[derive(Debug, Subcommand)]
pub enum ResellerMfaCommand {
    Show {
        #[arg(long, value_name = "RESELLER_ID")]
        reseller: String,
    },
    /// Companies may only tighten this minimum.
    Set {
        #[arg(long, value_name = "RESELLER_ID")]
        reseller: String,
        #[arg(long, value_parser = ["off", "optional", "required"])]
        mode: String,
        /// The methods companies may allow (default: any).
        #[arg(long, value_name = "METHODS")]
        methods: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CompanyCommand {
    /// Create a company under a reseller; prints {"id": ...}.
    Create {
        #[arg(long, value_name = "RESELLER_ID")]
        reseller: String,
        #[arg(long)]
        name: String,
    },
    /// List companies, optionally of one reseller.
    List {
        #[arg(long, value_name = "RESELLER_ID")]
        reseller: Option<String>,
    },
    /// The company's MFA policy.
    #[command(subcommand)]
    Mfa(CompanyMfaCommand),
}

#[derive(Debug, Subcommand)]
pub enum CompanyMfaCommand {
    /// Print the stored settings, the reseller's floor and the effective policy as JSON.
    Show {
        #[arg(long, value_name = "COMPANY_ID")]
        company: String,
    },
    /// Change settings; the ones not given keep their value.
    Set(CompanyMfaSet),
}

#[derive(Debug, Args)]
pub struct CompanyMfaSet {
    #[arg(long, value_name = "COMPANY_ID")]
    pub company: String,
    #[arg(long, value_parser = ["off", "optional", "required"])]
    pub mode: Option<String>,
    /// Allowed methods, e.g. `totp,email`.
    #[arg(long, value_name = "METHODS")]
    pub methods: Option<String>,
    #[arg(long = "allow-skip", value_name = "BOOL")]
    pub allow_skip: Option<bool>,
    /// How many times a user may skip enrolment (`none`: no limit, the skip is remembered).
    #[arg(long = "skip-limit", value_name = "N|none")]
    pub skip_limit: Option<String>,
    /// When skipping ends (RFC 3339, or `none`).
    #[arg(long = "skip-deadline", value_name = "TIME|none")]
    pub skip_deadline: Option<String>,
    #[arg(long = "allow-self-reset", value_name = "BOOL")]
    pub allow_self_reset: Option<bool>,
    /// A reset approver (an administrator of the company); repeat for several. Replaces the list.
    #[arg(long = "approver", value_name = "USER_ID")]
    pub approvers: Vec<String>,
    #[arg(long = "keep-enrollments-when-off", value_name = "BOOL")]
    pub keep_enrollments_when_off: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input. Prints {"id": ...}.
    Create(UserCreate),
    /// List users, optionally of one company.
    List {
        #[arg(long, value_name = "COMPANY_ID")]
        company: Option<String>,
    },
    /// Set a user's password, read from standard input.
    SetPassword {
        #[arg(long, value_name = "USER_ID")]
        user: String,
    },
    /// Exempt a user from a required (not enforced) MFA policy, or end the exemption.
    MfaOptOut {
        #[arg(long, value_name = "USER_ID")]
        user: String,
        #[arg(long = "opt-out", value_name = "BOOL", action = clap::ArgAction::Set)]
        opt_out: bool,
        /// Why (required when opting out).
        #[arg(long)]
        reason: Option<String>,
        /// When the exemption ends (RFC 3339).
        #[arg(long, value_name = "TIME")]
        expires: Option<String>,
    },
    /// Reset a user's MFA: factors, recovery codes and the remembered skip; emails the user.
    MfaReset {
        #[arg(long, value_name = "USER_ID")]
        user: String,
    },
}

#[derive(Debug, Args)]
pub struct UserCreate {
    #[arg(long, value_name = "COMPANY_ID")]
    pub company: String,
    /// The login name (unique across the instance, case-insensitive).
    #[arg(long)]
    pub username: String,
    #[arg(long)]
    pub email: String,
    /// In E.164 form, e.g. +14155550100.
    #[arg(long)]
    pub phone: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, default_value = "user", value_parser = ["user", "company_admin", "reseller_admin"])]
    pub role: String,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints {"client_id": ..., "client_secret": ...} (the secret
    /// exactly once; public clients have none).
    Create(Box<ClientCreate>),
    /// List clients (never their secrets).
    List,
}

#[derive(Debug, Args)]
pub struct ClientCreate {
    #[arg(long)]
    pub name: String,
    /// A redirect URI; repeat for several. Requests must repeat one exactly.
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the user back; repeat for several.
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (SPA, mobile app): no secret, PKCE required.
    #[arg(long)]
    pub public: bool,
    #[arg(long = "signing-alg", default_value = "RS256", value_parser = ["RS256", "ES256"])]
    pub signing_alg: String,
    /// A grant type; repeat for several. Default: authorization_code and refresh_token.
    #[arg(long = "grant", value_name = "GRANT", value_parser = ["authorization_code", "refresh_token", "client_credentials"])]
    pub grants: Vec<String>,
    /// An allowed scope; repeat for several. Default: openid profile email phone.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Ask users for consent (a third-party application).
    #[arg(long = "third-party")]
    pub third_party: bool,
    /// Only users of this company may log in; repeat for several. Default: every company.
    #[arg(long = "allowed-company", value_name = "COMPANY_ID")]
    pub allowed_companies: Vec<String>,
    /// A service client of the admin API: client_credentials with the `admin` scope,
    /// acting for `--reseller` or `--company` (or, with `--instance`, the whole instance).
    #[arg(long)]
    pub service: bool,
    /// The reseller a service client acts for.
    #[arg(
        long,
        value_name = "RESELLER_ID",
        requires = "service",
        conflicts_with = "company"
    )]
    pub reseller: Option<String>,
    /// The company a service client acts for.
    #[arg(long, value_name = "COMPANY_ID", requires = "service")]
    pub company: Option<String>,
    /// A service client that operates the whole instance (creates resellers).
    #[arg(long, requires = "service", conflicts_with_all = ["reseller", "company"])]
    pub instance: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key for each algorithm; the previous keys keep verifying until
    /// their tokens have expired.
    Rotate,
    /// List signing keys.
    List,
}

/// A CLI failure: printed as one line on stderr.
#[derive(Debug)]
pub struct CliError(pub String);

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(error: E) -> Self {
        CliError(error.to_string())
    }
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("portcullis: {error}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("portcullis: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError(message)) => {
            eprintln!("portcullis: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command, config: Config) -> Result<(), CliError> {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            crate::startup::open_store(&config)
                .await
                .map_err(|e| CliError(format!("{e:#}")))?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Demo => {
            demo::prepare(&config).await?;
            serve(config).await
        }
        Command::Bench(command) => bench::execute(command, &config).await,
        other => admin::execute(other, &config).await,
    }
}

async fn serve(config: Config) -> Result<(), CliError> {
    let listen = config.listen;
    let app = Application::build(config, Arc::new(SystemClock))
        .await
        .map_err(|e| CliError(format!("{e:#}")))?;
    tracing::info!(issuer = %app.state().issuer, %listen, "Portcullis is ready");
    app.run_until_stopped(shutdown_signal())
        .await
        .map_err(|e| CliError(format!("{e:#}")))
}

/// Prints one JSON value on stdout, as one line. A closed standard output
/// (`portcullis ... | head`) is not an error worth a panic, which `println!` would make of it.
pub(crate) fn print_json(value: &serde_json::Value) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{value}");
}
