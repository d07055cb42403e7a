//! The benchmark tool (`portcullis bench ...`): seeding tenants and users in bulk, and a
//! load generator that drives a running provider over HTTP and reports throughput, latency
//! percentiles and the server's memory.
//!
//! Scenarios: `login` (authorize, password, TOTP code, code exchange: every virtual user
//! computes its own codes), `refresh` (rotation), `client-credentials`, `discovery`, `jwks`,
//! `userinfo`, `introspect`. Endpoints are read from the discovery document, so the
//! token-endpoint and metadata scenarios run against any OpenID provider.

pub mod cpu;
pub mod http;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use aws_lc_rs::hmac;
use serde::Serialize;
use serde_json::Value;

use crate::clock::{Clock, SystemClock};
use crate::crypto::{MasterKey, random_token, token_hash};
use crate::model::{Client, Company, GrantType, Reseller, ScopeSet, SigningAlg, new_id};
use crate::password::Passwords;
use crate::policy::{CompanyPolicy, Method, Mode};
use crate::storage::{SeedFactor, SeedUser, Store};

/// The password of every seeded user.
pub const PASSWORD: &str = "bench password 0123456789";
pub const CLIENT_ID: &str = "bench-client";
pub const REDIRECT_URI: &str = "https://bench.example/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The login name of seeded user `n`.
pub fn username(n: u64) -> String {
    format!("bench{n:07}")
}

/// The TOTP secret of a seeded user: derived from the name, so the load tool computes
/// codes without reading the database.
pub fn totp_secret(username: &str) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"portcullis bench totp v1");
    hmac::sign(&key, username.as_bytes()).as_ref()[..20].to_vec()
}

#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub resellers: u64,
    pub companies: u64,
    pub users: u64,
    /// The first this many users get a TOTP factor (their companies challenge them).
    pub mfa_users: u64,
    /// How the bench client's tokens are signed.
    pub signing_alg: SigningAlg,
}

#[derive(Debug, Serialize)]
pub struct SeedReport {
    pub resellers: u64,
    pub companies: u64,
    pub users: u64,
    pub mfa_users: u64,
    pub seconds: f64,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
}

/// Creates resellers, companies (MFA optional, TOTP: enrolled users are challenged), users
/// `bench0000000...` with one shared password hash, TOTP factors, and a confidential client
/// allowed every grant (its secret is new on every run).
pub async fn seed(
    store: &Store,
    master: &MasterKey,
    passwords: &Passwords,
    options: &SeedOptions,
) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let now = SystemClock.now();
    if options.resellers == 0 || options.companies < options.resellers || options.mfa_users > options.users {
        bail!("need at least one reseller, a company per reseller, and no more MFA users than users");
    }
    let hash = passwords.hash(PASSWORD.to_owned()).await?;
    let mut companies = Vec::new();
    let mut resellers = Vec::new();
    for r in 0..options.resellers {
        let reseller = Reseller {
            id: new_id(),
            name: format!("Bench reseller {r}"),
            created_at: now,
        };
        store.insert_reseller(&reseller).await?;
        resellers.push(reseller);
    }
    for c in 0..options.companies {
        let reseller = &resellers[usize::try_from(c % options.resellers)?];
        let company = Company {
            id: new_id(),
            reseller_id: reseller.id.clone(),
            name: format!("Bench company {c}"),
            created_at: now,
        };
        store.insert_company(&company).await?;
        let policy = CompanyPolicy {
            mode: Mode::Optional,
            methods: [Method::Totp].into_iter().collect(),
            ..CompanyPolicy::default()
        };
        store
            .save_company_policy(&company.id, &policy, false, &[], now)
            .await?;
        companies.push(company);
    }
    // In batches, so memory stays small at a million users.
    let batch = 50_000u64;
    let mut n = 0u64;
    while n < options.users {
        let end = (n + batch).min(options.users);
        let mut users = Vec::new();
        let mut factors = Vec::new();
        for i in n..end {
            let name = username(i);
            let id = new_id();
            if i < options.mfa_users {
                let factor_id = new_id();
                factors.push(SeedFactor {
                    sealed_secret: master.seal(&factor_id, &totp_secret(&name)),
                    id: factor_id,
                    user_id: id.clone(),
                });
            }
            users.push(SeedUser {
                id,
                company_id: companies[usize::try_from(i % options.companies)?].id.clone(),
                email: format!("{name}@bench.example"),
                username: name,
            });
        }
        store.seed_users(&users, &hash, now).await?;
        store.seed_totp_factors(&factors, now).await?;
        n = end;
    }
    let secret = random_token();
    let client = Client {
        id: CLIENT_ID.into(),
        name: "Bench".into(),
        secret_hash: Some(token_hash(&secret)),
        public: false,
        first_party: true,
        redirect_uris: vec![REDIRECT_URI.into()],
        post_logout_redirect_uris: vec![],
        grant_types: vec![
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
        ],
        scopes: ScopeSet::parse("openid profile email api")?,
        id_token_alg: options.signing_alg,
        reseller_id: None,
        company_id: None,
        allowed_companies: vec![],
        created_at: now,
    };
    if store.get_client(CLIENT_ID).await?.is_none() {
        store.insert_client(&client).await?;
    } else {
        store
            .set_client_secret_hash(CLIENT_ID, &token_hash(&secret))
            .await?;
    }
    Ok(SeedReport {
        resellers: options.resellers,
        companies: options.companies,
        users: options.users,
        mfa_users: options.mfa_users,
        seconds: started.elapsed().as_secs_f64(),
        client_id: CLIENT_ID.into(),
        client_secret: secret,
        redirect_uri: REDIRECT_URI.into(),
    })
}

/// What to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Login,
    Refresh,
    ClientCredentials,
    Discovery,
    Jwks,
    Userinfo,
    Introspect,
}

impl std::str::FromStr for Scenario {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "login" => Scenario::Login,
            "refresh" => Scenario::Refresh,
            "client-credentials" => Scenario::ClientCredentials,
            "discovery" => Scenario::Discovery,
            "jwks" => Scenario::Jwks,
            "userinfo" => Scenario::Userinfo,
            "introspect" => Scenario::Introspect,
            other => bail!(
                "unknown scenario `{other}` (login, refresh, client-credentials, discovery, jwks, userinfo, introspect)"
            ),
        })
    }
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where the provider is; a second address splits each login across two instances.
    pub url: String,
    pub second_url: Option<String>,
    pub scenario: Scenario,
    pub concurrency: usize,
    pub duration: Duration,
    /// Stop after this many operations (whichever comes first).
    pub max_requests: u64,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    /// Logins use seeded users `first_user..first_user + mfa_users` (with TOTP) in turn. A
    /// user signs in at most once per 30-second TOTP step (a code is accepted once), so
    /// runs close together use different ranges.
    pub first_user: u64,
    pub mfa_users: u64,
    /// Scope for client_credentials (none: the client's default).
    pub scope: Option<String>,
    /// Where to get a refresh token for the refresh scenario instead of signing in (the
    /// peer provider's minting endpoint).
    pub refresh_token_url: Option<String>,
    pub server_pid: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub concurrency: usize,
    pub operations: u64,
    pub errors: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The tail that p99 does not see: a stall of tens of milliseconds once a second (SQLite's
    /// checkpoint holding the write turn) delays a fraction of a per cent of the requests.
    pub p999_ms: f64,
    pub max_ms: f64,
    /// The server's resident set before the run and its peak (VmHWM), KiB.
    pub server_rss_before_kib: Option<u64>,
    pub server_peak_rss_kib: Option<u64>,
    pub first_error: Option<String>,
    /// CPU time and context switches per operation: the server's threads (with
    /// `--server-pid`), this tool and the machine.
    pub cpu: Option<cpu::PerOperation>,
}

/// A resident-set figure of a process, from `/proc/PID/status` (`VmRSS`, `VmHWM`).
pub fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    cpu::status_field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        field,
    )
}

/// Endpoints from the provider's discovery document.
#[derive(Debug, Clone)]
struct Endpoints {
    discovery: String,
    token: String,
    jwks: String,
    userinfo: String,
    introspection: String,
    authorization: String,
}

async fn endpoints(http: &mut http::Client, base: &str) -> anyhow::Result<Endpoints> {
    let discovery = format!("{}/.well-known/openid-configuration", base.trim_end_matches('/'));
    let document = http.send("GET", &discovery, &[], None).await?.json()?;
    // Instances behind one issuer advertise the issuer's addresses; talk to this one.
    let origin = url::Url::parse(base)?;
    let field = |name: &str| {
        let advertised = document[name].as_str().unwrap_or_default();
        match url::Url::parse(advertised) {
            Ok(mut url) => {
                let _ = url.set_scheme(origin.scheme());
                let _ = url.set_host(origin.host_str());
                let _ = url.set_port(origin.port());
                url.to_string()
            }
            Err(_) => advertised.to_owned(),
        }
    };
    Ok(Endpoints {
        token: field("token_endpoint"),
        jwks: field("jwks_uri"),
        userinfo: field("userinfo_endpoint"),
        introspection: field("introspection_endpoint"),
        authorization: field("authorization_endpoint"),
        discovery,
    })
}

/// What every virtual user of a run shares: the options, the endpoints and what is worked
/// out from them once.
struct Shared {
    options: LoadOptions,
    endpoints: Endpoints,
    /// The authorization request of every login (its parameters do not change).
    authorize: String,
    /// `scheme://host:port` of the first instance and of the one that takes the password
    /// and the code (the second, if any).
    origin: String,
    other_origin: String,
    /// The client's `Authorization: Basic ...` header value.
    basic: String,
    next_user: AtomicU64,
}

impl Shared {
    fn new(options: LoadOptions, endpoints: Endpoints, second: Option<Endpoints>) -> anyhow::Result<Self> {
        let origin = |url: &str| -> anyhow::Result<String> {
            Ok(url::Url::parse(url)?.origin().ascii_serialization())
        };
        let mut authorize = url::Url::parse(&endpoints.authorization)
            .with_context(|| format!("authorization endpoint {:?}", endpoints.authorization))?;
        authorize.query_pairs_mut().extend_pairs([
            ("response_type", "code"),
            ("client_id", options.client_id.as_str()),
            ("redirect_uri", options.redirect_uri.as_str()),
            ("scope", "openid"),
            ("state", "bench"),
            ("nonce", "bench"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]);
        let basic = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", options.client_id, options.client_secret),
        );
        Ok(Self {
            origin: origin(&endpoints.authorization)?,
            other_origin: origin(&second.as_ref().unwrap_or(&endpoints).authorization)?,
            authorize: authorize.into(),
            basic: format!("Basic {basic}"),
            options,
            endpoints,
            next_user: AtomicU64::new(0),
        })
    }
}

/// One virtual user's state.
struct Worker {
    http: http::Client,
    shared: Arc<Shared>,
    refresh_token: Option<String>,
    access_token: Option<String>,
}

/// The `name=value` pairs of a response's `Set-Cookie` headers.
fn cookies(response: &http::Response, jar: &mut Vec<String>) {
    for value in response.headers_named("set-cookie") {
        if let Some(pair) = value.split(';').next() {
            jar.push(pair.to_owned());
        }
    }
}

fn location(response: &http::Response) -> anyhow::Result<String> {
    response
        .header("location")
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("expected a redirect, got {}", response.status))
}

fn field(html: &str, name: &str) -> anyhow::Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .ok_or_else(|| anyhow!("no {name} on the page"))?
        + marker.len();
    let end = html[start..]
        .find('"')
        .ok_or_else(|| anyhow!("unterminated {name}"))?;
    Ok(html[start..start + end].to_owned())
}

fn query_value(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The body of a successful response as JSON; an error naming the status otherwise.
fn json_ok(response: &http::Response, what: &str) -> anyhow::Result<Value> {
    let body = response.json()?;
    if !response.is_success() {
        bail!("{what} answered {}: {body}", response.status);
    }
    Ok(body)
}

impl Worker {
    /// A whole login; returns the token response.
    async fn login(&mut self) -> anyhow::Result<Value> {
        let shared = self.shared.clone();
        let options = &shared.options;
        let n =
            options.first_user + shared.next_user.fetch_add(1, Ordering::Relaxed) % options.mfa_users.max(1);
        let name = username(n);
        let authorize = self.http.send("GET", &shared.authorize, &[], None).await?;
        let mut jar = Vec::new();
        cookies(&authorize, &mut jar);
        let login_path = location(&authorize)?;
        let cookie = jar.join("; ");
        let with_cookie = [("cookie", cookie.as_str())];
        let page = self
            .http
            .send(
                "GET",
                &format!("{}{login_path}", shared.origin),
                &with_cookie,
                None,
            )
            .await?;
        let page = page.text()?;
        let login = field(page, "login")?;
        let csrf = field(page, "csrf_token")?;
        let after_password = self
            .http
            .post_form(
                &format!("{}/login", shared.other_origin),
                &with_cookie,
                &[
                    ("login", login.as_str()),
                    ("csrf_token", csrf.as_str()),
                    ("username", name.as_str()),
                    ("password", PASSWORD),
                ],
            )
            .await?;
        let mut next = location(&after_password)?;
        if next.starts_with("/login") {
            let now = SystemClock.now();
            let code = crate::mfa::totp::code_at(&totp_secret(&name), now)
                .ok_or_else(|| anyhow!("computing a TOTP code failed"))?;
            let challenged = self
                .http
                .post_form(
                    &format!("{}/login/challenge", shared.other_origin),
                    &with_cookie,
                    &[
                        ("login", login.as_str()),
                        ("csrf_token", csrf.as_str()),
                        ("code", code.as_str()),
                    ],
                )
                .await?;
            next = location(&challenged)?;
        }
        let code = query_value(&next, "code").ok_or_else(|| anyhow!("no code in {next}"))?;
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", options.redirect_uri.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .await
    }

    /// A form posted with the client's credentials; the JSON answer of a success.
    async fn post_as_client(
        &mut self,
        url: &str,
        form: &[(&str, &str)],
        what: &str,
    ) -> anyhow::Result<Value> {
        let response = self
            .http
            .post_form(url, &[("authorization", self.shared.basic.as_str())], form)
            .await?;
        json_ok(&response, what)
    }

    async fn token(&mut self, form: &[(&str, &str)]) -> anyhow::Result<Value> {
        let shared = self.shared.clone();
        self.post_as_client(&shared.endpoints.token, form, "token endpoint")
            .await
    }

    async fn get_ok(&mut self, url: &str, bearer: Option<&str>) -> anyhow::Result<()> {
        let authorization = bearer.map(|token| format!("Bearer {token}"));
        let headers: &[(&str, &str)] = match &authorization {
            Some(value) => &[("authorization", value.as_str())],
            None => &[],
        };
        let response = self.http.send("GET", url, headers, None).await?;
        if !response.is_success() {
            bail!("{url} answered {}", response.status);
        }
        Ok(())
    }

    /// Untimed preparation: tokens for the scenarios that need them.
    async fn prepare(&mut self) -> anyhow::Result<()> {
        let shared = self.shared.clone();
        if let (Scenario::Refresh, Some(url)) = (shared.options.scenario, &shared.options.refresh_token_url) {
            let minted = self.http.send("GET", url, &[], None).await?;
            self.refresh_token = json_ok(&minted, url)?["refresh_token"]
                .as_str()
                .map(str::to_owned);
            return Ok(());
        }
        if matches!(
            shared.options.scenario,
            Scenario::Refresh | Scenario::Userinfo | Scenario::Introspect
        ) {
            let tokens = self.login().await?;
            self.refresh_token = tokens["refresh_token"].as_str().map(str::to_owned);
            self.access_token = tokens["access_token"].as_str().map(str::to_owned);
        }
        Ok(())
    }

    async fn operation(&mut self) -> anyhow::Result<()> {
        let shared = self.shared.clone();
        let endpoints = &shared.endpoints;
        match shared.options.scenario {
            Scenario::Login => self.login().await.map(|_| ()),
            Scenario::Refresh => {
                let current = self
                    .refresh_token
                    .clone()
                    .ok_or_else(|| anyhow!("no refresh token"))?;
                let body = self
                    .token(&[("grant_type", "refresh_token"), ("refresh_token", &current)])
                    .await?;
                self.refresh_token = body["refresh_token"].as_str().map(str::to_owned);
                Ok(())
            }
            Scenario::ClientCredentials => {
                let mut form = vec![("grant_type", "client_credentials")];
                if let Some(scope) = &shared.options.scope {
                    form.push(("scope", scope));
                }
                self.token(&form).await.map(|_| ())
            }
            Scenario::Discovery => self.get_ok(&endpoints.discovery, None).await,
            Scenario::Jwks => self.get_ok(&endpoints.jwks, None).await,
            Scenario::Userinfo => {
                let token = self.access_token.clone();
                self.get_ok(&endpoints.userinfo, token.as_deref()).await
            }
            Scenario::Introspect => {
                let token = self.access_token.clone().unwrap_or_default();
                let body = self
                    .post_as_client(
                        &endpoints.introspection,
                        &[("token", token.as_str())],
                        "introspection",
                    )
                    .await?;
                if body["active"] != true {
                    bail!("introspection said {body}");
                }
                Ok(())
            }
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

/// Runs a scenario and reports.
pub async fn run(options: LoadOptions) -> anyhow::Result<Report> {
    let mut http = http::Client::default();
    let first = endpoints(&mut http, &options.url).await?;
    let second = match &options.second_url {
        Some(url) => Some(endpoints(&mut http, url).await?),
        None => None,
    };
    let server_pid = options.server_pid;
    let (concurrency, max) = (options.concurrency.max(1), options.max_requests);
    let rss_before = server_pid.and_then(|pid| rss_kib(pid, "VmRSS"));
    let shared = Arc::new(Shared::new(options, first, second)?);
    let budget = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let mut worker = Worker {
            http: http::Client::default(),
            shared: shared.clone(),
            refresh_token: None,
            access_token: None,
        };
        worker.prepare().await?;
        workers.push(worker);
    }
    let cpu_before = cpu::Sample::take(server_pid);
    let started = Instant::now();
    let deadline = started + shared.options.duration;
    let mut tasks = Vec::new();
    for mut worker in workers {
        let budget = budget.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            while Instant::now() < deadline && budget.fetch_add(1, Ordering::Relaxed) < max {
                let begun = Instant::now();
                match worker.operation().await {
                    Ok(()) => latencies.push(u32::try_from(begun.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let (l, e, f) = task.await?;
        latencies.extend(l);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let operations = latencies.len() as u64;
    let cpu = cpu_before.since(operations);
    Ok(Report {
        scenario: format!("{:?}", shared.options.scenario),
        concurrency: shared.options.concurrency,
        operations,
        errors,
        seconds,
        per_second: operations as f64 / seconds,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        p999_ms: percentile(&latencies, 99.9),
        max_ms: percentile(&latencies, 100.0),
        server_rss_before_kib: rss_before,
        server_peak_rss_kib: server_pid.and_then(|pid| rss_kib(pid, "VmHWM")),
        first_error,
        cpu,
    })
}

/// How many argon2 verifications per second this machine does with `passwords`' parameters
/// and concurrency cap, with `tasks` verifications in flight (the ceiling of password logins).
pub async fn argon2_rate(passwords: &Passwords, tasks: usize, duration: Duration) -> anyhow::Result<f64> {
    let hash = passwords.hash(PASSWORD.to_owned()).await?;
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut running = Vec::new();
    for _ in 0..tasks.max(1) {
        let (hash, done, passwords) = (hash.clone(), done.clone(), passwords.clone());
        running.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                if passwords
                    .verify(PASSWORD.to_owned(), Some(hash.clone()))
                    .await
                    .is_ok()
                {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in running {
        task.await?;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_take_the_nearest_rank_and_100_is_the_slowest() {
        // 1 ms to 1,000 ms, in microseconds.
        let sorted: Vec<u32> = (1..=1000).map(|ms| ms * 1000).collect();
        assert_eq!(percentile(&sorted, 50.0), 501.0);
        assert_eq!(percentile(&sorted, 99.0), 990.0);
        assert_eq!(percentile(&sorted, 99.9), 999.0);
        assert_eq!(percentile(&sorted, 100.0), 1000.0);
        assert_eq!(percentile(&[], 99.9), 0.0);
        // Three stalled operations in a thousand (as behind a checkpoint holding the write
        // turn): p99 does not see them, p99.9 does.
        let mut stalled = vec![2_000; 997];
        stalled.extend([80_000; 3]);
        assert_eq!(percentile(&stalled, 99.0), 2.0);
        assert_eq!(percentile(&stalled, 99.9), 80.0);
    }
}
