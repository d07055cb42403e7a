//! The test application: the real server on 127.0.0.1:0 with a fresh database, an
//! injected clock, and a cookie-keeping HTTP client that plays the browser.
//!
//! The database is SQLite in a temporary directory, or, when `TEST_POSTGRES_URL` names a
//! PostgreSQL server (e.g. `postgres://postgres@127.0.0.1:5432/postgres`), a fresh
//! database created for the test and dropped when the test ends.

use std::sync::Arc;

use portcullis::clock::ManualClock;
use portcullis::config::{Config, EmailTransport, Secret, SmtpTls};
use portcullis::crypto::{random_token, token_hash};
use portcullis::model::{
    Client, Company, Email, GrantType, NewUser, Reseller, Role, ScopeSet, SigningAlg, User, Username, new_id,
};
use portcullis::password::Passwords;
use portcullis::policy::CompanyPolicy;
use portcullis::policy::admin::{Admin, AdminError, PolicyView};
use portcullis::startup::Application;
use portcullis::storage::Store;
use regex::Regex;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use tempfile::TempDir;

use crate::smtp::SmtpServer;
use url::Url;

pub const PASSWORD: &str = "correct horse battery staple";

/// A PostgreSQL database that exists for one test.
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// The database URL for a new test, and what keeps that database alive.
pub async fn fresh_database(dir: &TempDir) -> (String, Option<PgDatabase>) {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            use sqlx::Connection;
            let name = format!(
                "portcullis_test_{}",
                random_token().to_lowercase().replace(['-', '_'], "")
            );
            let name = name[..40].to_owned();
            let mut conn = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("TEST_POSTGRES_URL is set but PostgreSQL is unreachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut conn)
                .await
                .unwrap();
            let mut url = Url::parse(&admin_url).unwrap();
            url.set_path(&name);
            (url.to_string(), Some(PgDatabase { admin_url, name }))
        }
        _ => (
            format!("sqlite://{}", dir.path().join("portcullis.db").display()),
            None,
        ),
    }
}

pub struct TestApp {
    /// The SMTP server on loopback the provider sends its mail to.
    pub smtp: SmtpServer,
    pub templates: portcullis::templates::Templates,
    /// Where the server listens: `http://127.0.0.1:<port>`.
    pub address: String,
    /// The configured issuer; the same as `address` unless a test changes it.
    pub issuer: String,
    pub clock: Arc<ManualClock>,
    pub store: Store,
    pub config: Config,
    _dir: TempDir,
    server: tokio::task::JoinHandle<()>,
    // Declared last: dropped after the server and the pool.
    _database: Option<PgDatabase>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Starts the server with the test configuration, adjusted by `configure`.
    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, database) = fresh_database(&dir).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut config = Config {
            listen: listener.local_addr().unwrap(),
            issuer: format!("http://127.0.0.1:{port}"),
            database_url: Secret::new(database_url),
            key_dir: dir.path().join("keys"),
            ..Config::default()
        };
        config.database.max_connections = 5;
        let smtp = SmtpServer::start().await;
        config.email.transport = EmailTransport::Smtp;
        config.email.smtp.host = "127.0.0.1".into();
        config.email.smtp.port = smtp.port;
        config.email.smtp.tls = SmtpTls::None;
        config.email.poll_interval = std::time::Duration::from_millis(100);
        configure(&mut config);
        let clock = ManualClock::starting_now();
        let app = Application::build_on(listener, config.clone(), clock.clone())
            .await
            .unwrap();
        let store = app.state().store.clone();
        let server = tokio::spawn(async move {
            let _ = app.run_until_stopped(std::future::pending()).await;
        });
        TestApp {
            smtp,
            templates: portcullis::templates::Templates::load().unwrap(),
            address: format!("http://127.0.0.1:{port}"),
            issuer: config.issuer.clone(),
            clock,
            store,
            config,
            _dir: dir,
            server,
            _database: database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A new browser: its own cookie jar, no redirects followed.
    pub fn browser(&self) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            address: self.address.clone(),
        }
    }

    /// A plain HTTP client (no cookies, no redirects), as an RP back end uses.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    pub fn now(&self) -> i64 {
        use portcullis::clock::Clock;
        self.clock.now()
    }

    /// A reseller with one company.
    pub async fn tenant(&self) -> (Reseller, Company) {
        let reseller = Reseller {
            id: new_id(),
            name: "Acme Partners".into(),
            created_at: self.now(),
        };
        self.store.insert_reseller(&reseller).await.unwrap();
        let company = self.company(&reseller.id, "Globex").await;
        (reseller, company)
    }

    pub async fn company(&self, reseller_id: &str, name: &str) -> Company {
        let company = Company {
            id: new_id(),
            reseller_id: reseller_id.into(),
            name: name.into(),
            created_at: self.now(),
        };
        self.store.insert_company(&company).await.unwrap();
        company
    }

    /// A user whose password is [`PASSWORD`].
    pub async fn user(&self, company_id: &str, username: &str) -> User {
        self.user_with_role(company_id, username, Role::User).await
    }

    pub async fn user_with_role(&self, company_id: &str, username: &str, role: Role) -> User {
        let passwords = Passwords::new(&self.config.password).unwrap();
        let hash = passwords.hash(PASSWORD.into()).await.unwrap();
        let new = NewUser {
            company_id: company_id.into(),
            username: Username::parse(username).unwrap(),
            email: Email::parse(&format!("{username}@example.com")).unwrap(),
            phone: Some(portcullis::model::Phone::parse("+14155550100").unwrap()),
            name: Some(format!("User {username}")),
            role,
        };
        self.store
            .insert_user(&new_id(), &new, Some(&hash), self.now())
            .await
            .unwrap()
    }

    pub async fn client(&self, spec: ClientSpec) -> TestClient {
        let id = format!("client-{}", &random_token()[..10]);
        let secret = (!spec.public).then(random_token);
        let client = Client {
            id: id.clone(),
            name: spec.name.clone(),
            secret_hash: secret.as_deref().map(token_hash),
            public: spec.public,
            first_party: !spec.third_party,
            redirect_uris: vec![spec.redirect_uri.clone()],
            post_logout_redirect_uris: vec![spec.post_logout_redirect_uri.clone()],
            grant_types: spec.grants.clone(),
            scopes: ScopeSet::parse(&spec.scopes).unwrap(),
            id_token_alg: spec.alg,
            reseller_id: None,
            company_id: None,
            allowed_companies: spec.allowed_companies.clone(),
            created_at: self.now(),
        };
        self.store.insert_client(&client).await.unwrap();
        TestClient {
            id,
            secret,
            redirect_uri: spec.redirect_uri,
            post_logout_redirect_uri: spec.post_logout_redirect_uri,
        }
    }

    /// A confidential first-party client with the defaults.
    pub async fn confidential_client(&self) -> TestClient {
        self.client(ClientSpec::default()).await
    }

    /// A company administrator (a reset approver).
    pub async fn admin_user(&self, company_id: &str, username: &str) -> User {
        self.user_with_role(company_id, username, Role::CompanyAdmin)
            .await
    }

    /// MFA administration, as the CLI and the admin API do it.
    pub fn admin(&self) -> Admin<'_> {
        Admin {
            store: &self.store,
            templates: &self.templates,
            issuer: &self.issuer,
        }
    }

    /// Changes a company's MFA policy (validated like any save).
    pub async fn set_policy(
        &self,
        company_id: &str,
        change: impl FnOnce(&mut CompanyPolicy),
    ) -> Result<PolicyView, AdminError> {
        let mut policy = self
            .store
            .get_company_policy(company_id)
            .await
            .unwrap()
            .unwrap_or_default();
        change(&mut policy);
        self.admin().save_policy(company_id, policy, self.now()).await
    }

    /// A reseller and company with the user `alice`, and a confidential client.
    pub async fn with_alice(&self) -> TestClient {
        let (_, company) = self.tenant().await;
        self.user(&company.id, "alice").await;
        self.confidential_client().await
    }

    /// GET /userinfo with a bearer token.
    pub async fn userinfo(&self, access_token: &str) -> reqwest::Response {
        self.http()
            .get(self.url("/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }

    /// The `kid`s the JWKS publishes.
    pub async fn published_kids(&self) -> Vec<String> {
        let body: serde_json::Value = self
            .http()
            .get(self.url("/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[derive(Clone)]
pub struct ClientSpec {
    pub name: String,
    pub public: bool,
    pub third_party: bool,
    pub redirect_uri: String,
    pub post_logout_redirect_uri: String,
    pub grants: Vec<GrantType>,
    pub scopes: String,
    pub alg: SigningAlg,
    pub allowed_companies: Vec<String>,
}

impl Default for ClientSpec {
    fn default() -> Self {
        Self {
            name: "Payroll".into(),
            public: false,
            third_party: false,
            redirect_uri: "https://rp.example.com/callback".into(),
            post_logout_redirect_uri: "https://rp.example.com/signed-out".into(),
            grants: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes: "openid profile email phone".into(),
            alg: SigningAlg::RS256,
            allowed_companies: vec![],
        }
    }
}

#[derive(Clone, Debug)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
    pub post_logout_redirect_uri: String,
}

pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

impl TestClient {
    /// An authorization request with PKCE, state and nonce.
    pub fn authorize_query(&self, extra: &str) -> String {
        let mut url = Url::parse("http://x/").unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", "openid profile email")
            .append_pair("state", "state-123")
            .append_pair("nonce", "nonce-456")
            .append_pair("code_challenge", CHALLENGE)
            .append_pair("code_challenge_method", "S256");
        let mut query = url.query().unwrap().to_owned();
        if !extra.is_empty() {
            query.push('&');
            query.push_str(extra);
        }
        query
    }

    /// Exchanges a code at the token endpoint with client_secret_basic (or as a public
    /// client), returning the status and JSON body.
    pub async fn exchange(
        &self,
        app: &TestApp,
        code: &str,
        verifier: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", self.redirect_uri.clone()),
        ];
        if let Some(verifier) = verifier {
            form.push(("code_verifier", verifier.to_owned()));
        }
        self.token_request(app, form).await
    }

    pub async fn refresh(&self, app: &TestApp, refresh_token: &str) -> (StatusCode, serde_json::Value) {
        self.token_request(
            app,
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", refresh_token.into()),
            ],
        )
        .await
    }

    pub async fn token_request(
        &self,
        app: &TestApp,
        mut form: Vec<(&str, String)>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = app.http().post(app.url("/token"));
        match &self.secret {
            Some(secret) => request = request.basic_auth(&self.id, Some(secret)),
            None => form.push(("client_id", self.id.clone())),
        }
        let response = request.form(&form).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// A form post to an endpoint with client_secret_basic.
    pub async fn post(&self, app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut request = app.http().post(app.url(path)).form(form);
        if let Some(secret) = &self.secret {
            request = request.basic_auth(&self.id, Some(secret));
        }
        request.send().await.unwrap()
    }
}

pub struct Browser {
    pub http: reqwest::Client,
    address: String,
}

/// A login form as the page shows it.
#[derive(Debug, Clone)]
pub struct LoginForm {
    pub login: String,
    pub csrf_token: String,
}

pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let pattern = Regex::new(&format!(r#"name="{name}" value="([^"]*)""#)).unwrap();
    pattern.captures(html).map(|c| c[1].to_owned())
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location header; status {}", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The value of one query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Browser {
    pub fn absolute(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.address)
        }
    }

    pub async fn get(&self, path_or_url: &str) -> reqwest::Response {
        self.http.get(self.absolute(path_or_url)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.absolute(path))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// GET /authorize with `query`.
    pub async fn authorize(&self, query: &str) -> reqwest::Response {
        self.get(&format!("/authorize?{query}")).await
    }

    /// Starts a login for `client` at /authorize and reads the login form.
    pub async fn start_login(&self, client: &TestClient) -> LoginForm {
        let response = self.authorize(&client.authorize_query("")).await;
        self.login_form(&location(&response)).await
    }

    /// Opens a login page and reads its form.
    pub async fn login_form(&self, login_url: &str) -> LoginForm {
        let response = self.get(login_url).await;
        assert_eq!(response.status(), StatusCode::OK, "login page for {login_url}");
        let html = response.text().await.unwrap();
        LoginForm {
            login: hidden_field(&html, "login").expect("login field"),
            csrf_token: hidden_field(&html, "csrf_token").expect("csrf field"),
        }
    }

    pub async fn submit_password(
        &self,
        form: &LoginForm,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        self.post(
            "/login",
            &[
                ("login", &form.login),
                ("csrf_token", &form.csrf_token),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// Starts at /authorize, signs in with the password, and returns where the provider
    /// finally sends the browser (the client's redirect URI with code or error).
    pub async fn sign_in(&self, query: &str, username: &str, password: &str) -> String {
        let response = self.authorize(query).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "authorize should redirect to the login page"
        );
        let login_url = location(&response);
        assert!(login_url.starts_with("/login?"), "{login_url}");
        let form = self.login_form(&login_url).await;
        let response = self.submit_password(&form, username, password).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "{:?}",
            response.text().await
        );
        location(&response)
    }

    /// An authorization code for `client`: signs in with the password, or straight from
    /// the browser session when there is one.
    pub async fn code(&self, client: &TestClient, username: &str) -> String {
        self.code_for(client, &client.authorize_query(""), username).await
    }

    pub async fn code_for(&self, client: &TestClient, query: &str, username: &str) -> String {
        let response = self.authorize(query).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let mut redirect = location(&response);
        if redirect.starts_with("/login?") {
            let form = self.login_form(&redirect).await;
            let response = self.submit_password(&form, username, PASSWORD).await;
            assert_eq!(
                response.status(),
                StatusCode::SEE_OTHER,
                "{:?}",
                response.text().await
            );
            redirect = location(&response);
        }
        assert!(redirect.starts_with(&client.redirect_uri), "{redirect}");
        query_param(&redirect, "code").expect("a code in the redirect")
    }
}

/// The claims of a JWT, without verifying it (tests verify separately).
pub fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

pub fn jwt_header(token: &str) -> serde_json::Value {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap()
}
