//! Configuration: defaults, then an optional TOML file, then `PORTCULLIS_*` environment
//! variables (nested keys joined with `__`, e.g. `PORTCULLIS_TOKENS__ACCESS_TOKEN_TTL`).
//! Unknown keys and bad values stop start-up with one line naming the key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port the HTTP server binds.
    pub listen: SocketAddr,
    /// The issuer identifier: the public base URL of this provider, without a trailing slash.
    pub issuer: String,
    /// `sqlite://path` (the default, created if missing) or `postgres://...`.
    pub database_url: Secret,
    /// Directory for the master key (`master.key`).
    pub key_dir: PathBuf,
    /// Base64 of 32 bytes. When set, used instead of `<key_dir>/master.key`.
    pub master_key: Option<Secret>,
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `portcullis=debug,info`.
    pub log_level: String,
    /// Take the client address from the last `X-Forwarded-For` entry (behind a proxy only).
    pub trust_forwarded_for: bool,
    pub tokens: TokenConfig,
    pub login: LoginConfig,
    pub password: PasswordConfig,
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    /// A directory: write each email there as an `.eml` file instead of sending it.
    pub email_outbox: Option<PathBuf>,
    pub email: EmailConfig,
    /// A file: append each SMS there as a JSON line instead of sending it.
    pub sms_outbox: Option<PathBuf>,
    pub sms: SmsConfig,
    pub otp: OtpConfig,
}

/// One-time codes sent by email or SMS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtpConfig {
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// Guesses allowed per code.
    pub max_attempts: u32,
    /// How long "Send again" waits after a code was sent.
    #[serde(with = "humantime_serde")]
    pub resend_cooldown: Duration,
    pub sends_per_user_per_hour: i64,
    pub sends_per_company_per_hour: i64,
    /// Per address or number, whoever asks: a user cannot make us spam someone else.
    pub sends_per_destination_per_hour: i64,
}

impl Default for OtpConfig {
    fn default() -> Self {
        Self {
            code_ttl: Duration::from_secs(600),
            max_attempts: 5,
            resend_cooldown: Duration::from_secs(60),
            sends_per_user_per_hour: 10,
            sends_per_company_per_hour: 1000,
            sends_per_destination_per_hour: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// `log` (the default: messages are logged, for development), `twilio`, `webhook`, or
    /// `outbox` (see `sms_outbox`, which selects it on its own).
    pub provider: SmsProvider,
    /// How long a provider may take to accept a message.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub twilio: TwilioConfig,
    pub webhook: WebhookConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsProvider {
    Log,
    Twilio,
    Webhook,
    Outbox,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: Option<Secret>,
    /// The sending number (E.164); or use `messaging_service_sid`.
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    /// Twilio's API; tests point this at a mock server.
    pub base_url: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub url: String,
    /// Signs each request (HMAC-SHA256).
    pub secret: Option<Secret>,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            provider: SmsProvider::Log,
            timeout: Duration::from_secs(10),
            twilio: TwilioConfig::default(),
            webhook: WebhookConfig::default(),
        }
    }
}

impl Default for TwilioConfig {
    fn default() -> Self {
        Self {
            account_sid: String::new(),
            auth_token: None,
            from: None,
            messaging_service_sid: None,
            base_url: "https://api.twilio.com".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// `log` (the default: messages are logged, not sent), `smtp`, or `outbox` (see
    /// `email_outbox`, which selects it on its own).
    pub transport: EmailTransport,
    /// The `From` address, e.g. `Portcullis <no-reply@id.example.com>`.
    pub from: String,
    pub smtp: SmtpConfig,
    /// How often the sender looks for due messages (it also wakes when one is queued).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Attempts before a message is marked failed.
    pub max_attempts: u32,
    /// Delay before the second attempt; it doubles up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTransport {
    Log,
    Smtp,
    Outbox,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// `starttls` (upgrade on the submission port), `implicit` (TLS from the first byte,
    /// port 465), or `none` (plain, for a relay on the same host or network).
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    Starttls,
    Implicit,
    None,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            transport: EmailTransport::Log,
            from: "Portcullis <no-reply@localhost>".into(),
            smtp: SmtpConfig::default(),
            poll_interval: Duration::from_secs(5),
            max_attempts: 10,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub id_token_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub authorization_code_ttl: Duration,
    /// Lifetime of one refresh token; each rotation issues a new one.
    #[serde(with = "humantime_serde")]
    pub refresh_token_ttl: Duration,
    /// A refresh token family never outlives this, however often it is rotated.
    #[serde(with = "humantime_serde")]
    pub refresh_token_absolute_ttl: Duration,
    /// How often an instance re-reads the signing keys from the database.
    #[serde(with = "humantime_serde")]
    pub key_refresh_interval: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// How long a started login may take.
    #[serde(with = "humantime_serde")]
    pub transaction_ttl: Duration,
    /// Lifetime of the browser session (single sign-on).
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Failed passwords for one login name before it is locked.
    pub max_failures_per_account: i64,
    /// Failed passwords from one client address before it is locked.
    pub max_failures_per_address: i64,
    /// Failures are counted within this window.
    #[serde(with = "humantime_serde")]
    pub failure_window: Duration,
    /// First lockout; each further failure doubles it, up to `lockout_max`.
    #[serde(with = "humantime_serde")]
    pub lockout_base: Duration,
    #[serde(with = "humantime_serde")]
    pub lockout_max: Duration,
}

/// argon2id parameters. The defaults are OWASP's recommendation (m=19456 KiB, t=2, p=1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes computed at once; 0 means one per CPU core.
    pub max_concurrent_hashes: usize,
    pub min_length: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Pool size; 0 means the backend's default ([`crate::storage::default_pool_size`]).
    pub max_connections: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A configuration value that must not appear in logs.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: "http://127.0.0.1:8080".into(),
            database_url: Secret::new("sqlite://data/portcullis.db"),
            key_dir: PathBuf::from("keys"),
            master_key: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            trust_forwarded_for: false,
            tokens: TokenConfig::default(),
            login: LoginConfig::default(),
            password: PasswordConfig::default(),
            database: DatabaseConfig::default(),
            http: HttpConfig::default(),
            email_outbox: None,
            email: EmailConfig::default(),
            sms_outbox: None,
            sms: SmsConfig::default(),
            otp: OtpConfig::default(),
        }
    }
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(10 * 60),
            id_token_ttl: Duration::from_secs(10 * 60),
            authorization_code_ttl: Duration::from_secs(60),
            refresh_token_ttl: Duration::from_secs(14 * 24 * 3600),
            refresh_token_absolute_ttl: Duration::from_secs(90 * 24 * 3600),
            key_refresh_interval: Duration::from_secs(30),
        }
    }
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            transaction_ttl: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(8 * 3600),
            max_failures_per_account: 5,
            max_failures_per_address: 100,
            failure_window: Duration::from_secs(15 * 60),
            lockout_base: Duration::from_secs(30),
            lockout_max: Duration::from_secs(15 * 60),
        }
    }
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_concurrent_hashes: 0,
            min_length: 8,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A configuration problem, reported as one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn key(key: &str, problem: impl fmt::Display) -> Self {
        Self(format!("`{key}`: {problem}"))
    }
}

impl Config {
    /// Defaults, overlaid by the TOML file (if any), overlaid by `PORTCULLIS_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "configuration file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // PORTCULLIS_CONFIG names the file itself and is not a key.
        figment = figment.merge(Env::prefixed("PORTCULLIS_").ignore(&["config"]).split("__"));
        let config: Config = figment.extract().map_err(describe_figment_error)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: URLs, ranges, relations between values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.issuer_url()?;
        let url = self.database_url.expose();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::key(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        if let Some(key) = &self.master_key {
            crate::crypto::MasterKey::from_base64(key.expose())
                .map_err(|e| ConfigError::key("master_key", e))?;
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| ConfigError::key("log_level", e))?;
        let t = &self.tokens;
        for (key, value) in [
            ("tokens.access_token_ttl", t.access_token_ttl),
            ("tokens.id_token_ttl", t.id_token_ttl),
            ("tokens.authorization_code_ttl", t.authorization_code_ttl),
            ("tokens.refresh_token_ttl", t.refresh_token_ttl),
            ("tokens.refresh_token_absolute_ttl", t.refresh_token_absolute_ttl),
            ("tokens.key_refresh_interval", t.key_refresh_interval),
            ("login.transaction_ttl", self.login.transaction_ttl),
            ("login.session_ttl", self.login.session_ttl),
            ("login.failure_window", self.login.failure_window),
            ("login.lockout_base", self.login.lockout_base),
            ("login.lockout_max", self.login.lockout_max),
            ("http.request_timeout", self.http.request_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::key(key, "must be longer than zero"));
            }
            if value > Duration::from_secs(10 * 365 * 24 * 3600) {
                return Err(ConfigError::key(key, "must be shorter than ten years"));
            }
        }
        if t.authorization_code_ttl > Duration::from_secs(600) {
            return Err(ConfigError::key(
                "tokens.authorization_code_ttl",
                "must be at most 10 minutes (RFC 6749 section 4.1.2)",
            ));
        }
        if t.refresh_token_absolute_ttl < t.refresh_token_ttl {
            return Err(ConfigError::key(
                "tokens.refresh_token_absolute_ttl",
                "must not be shorter than tokens.refresh_token_ttl",
            ));
        }
        if self.login.max_failures_per_account < 1 {
            return Err(ConfigError::key(
                "login.max_failures_per_account",
                "must be at least 1",
            ));
        }
        if self.login.max_failures_per_address < 1 {
            return Err(ConfigError::key(
                "login.max_failures_per_address",
                "must be at least 1",
            ));
        }
        let p = &self.password;
        argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map_err(|e| ConfigError::key("password", e))?;
        if p.memory_kib < 8 * 1024 {
            return Err(ConfigError::key(
                "password.memory_kib",
                "must be at least 8192 (OWASP's lowest argon2id setting is 7168 KiB with t=5)",
            ));
        }
        if !(8..=128).contains(&p.min_length) {
            return Err(ConfigError::key(
                "password.min_length",
                "must be between 8 and 128",
            ));
        }
        if self.email.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::key(
                "email.from",
                "is not an email address (Name <address@example.com>)",
            ));
        }
        if self.email.max_attempts == 0 {
            return Err(ConfigError::key("email.max_attempts", "must be at least 1"));
        }
        for (key, value) in [
            ("email.poll_interval", self.email.poll_interval),
            ("email.retry_base", self.email.retry_base),
            ("email.retry_max", self.email.retry_max),
            ("email.smtp.timeout", self.email.smtp.timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::key(key, "must be longer than zero"));
            }
        }
        if self.email.transport == EmailTransport::Outbox && self.email_outbox.is_none() {
            return Err(ConfigError::key(
                "email.transport",
                "`outbox` needs `email_outbox` (a directory)",
            ));
        }
        self.validate_sms()?;
        let otp = &self.otp;
        if otp.code_ttl.is_zero() || otp.code_ttl > Duration::from_secs(3600) {
            return Err(ConfigError::key(
                "otp.code_ttl",
                "must be between 1 second and 1 hour",
            ));
        }
        if !(1..=10).contains(&otp.max_attempts) {
            return Err(ConfigError::key("otp.max_attempts", "must be between 1 and 10"));
        }
        for (key, value) in [
            ("otp.sends_per_user_per_hour", otp.sends_per_user_per_hour),
            ("otp.sends_per_company_per_hour", otp.sends_per_company_per_hour),
            (
                "otp.sends_per_destination_per_hour",
                otp.sends_per_destination_per_hour,
            ),
        ] {
            if value < 1 {
                return Err(ConfigError::key(key, "must be at least 1"));
            }
        }
        if self.http.body_limit < 1024 {
            return Err(ConfigError::key("http.body_limit", "must be at least 1024 bytes"));
        }
        Ok(())
    }

    fn validate_sms(&self) -> Result<(), ConfigError> {
        let sms = &self.sms;
        if sms.timeout.is_zero() {
            return Err(ConfigError::key("sms.timeout", "must be longer than zero"));
        }
        match (sms.provider, &self.sms_outbox) {
            (_, Some(_)) | (SmsProvider::Log, None) => Ok(()),
            (SmsProvider::Outbox, None) => Err(ConfigError::key(
                "sms.provider",
                "`outbox` needs `sms_outbox` (a file)",
            )),
            (SmsProvider::Twilio, None) => {
                let twilio = &sms.twilio;
                if !twilio.account_sid.starts_with("AC") {
                    return Err(ConfigError::key(
                        "sms.twilio.account_sid",
                        "must be a Twilio account SID (AC...)",
                    ));
                }
                if twilio.auth_token.is_none() {
                    return Err(ConfigError::key("sms.twilio.auth_token", "is required"));
                }
                match (&twilio.from, &twilio.messaging_service_sid) {
                    (None, None) => Err(ConfigError::key(
                        "sms.twilio.from",
                        "set a sending number or sms.twilio.messaging_service_sid",
                    )),
                    (Some(from), _) if crate::model::Phone::parse(from).is_err() => Err(ConfigError::key(
                        "sms.twilio.from",
                        "must be a number in E.164 form (+14155550100)",
                    )),
                    _ => Url::parse(&twilio.base_url)
                        .map(|_| ())
                        .map_err(|e| ConfigError::key("sms.twilio.base_url", e)),
                }
            }
            (SmsProvider::Webhook, None) => {
                let url = Url::parse(&sms.webhook.url).map_err(|e| ConfigError::key("sms.webhook.url", e))?;
                let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
                if url.scheme() != "https" && !loopback {
                    return Err(ConfigError::key(
                        "sms.webhook.url",
                        "must be https:// (http only on loopback)",
                    ));
                }
                if sms.webhook.secret.as_ref().is_none_or(|s| s.expose().len() < 16) {
                    return Err(ConfigError::key(
                        "sms.webhook.secret",
                        "must be at least 16 characters",
                    ));
                }
                Ok(())
            }
        }
    }

    /// The issuer as a URL: http(s), no query, no fragment, no trailing slash.
    pub fn issuer_url(&self) -> Result<Url, ConfigError> {
        let url = Url::parse(&self.issuer).map_err(|e| ConfigError::key("issuer", e))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(ConfigError::key("issuer", "must be an https:// (or http://) URL"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::key("issuer", "must not have a query or a fragment"));
        }
        if self.issuer.ends_with('/') {
            return Err(ConfigError::key("issuer", "must not end with a slash"));
        }
        Ok(url)
    }

    /// Cookies are `Secure` (and use the `__Host-` prefix) when the issuer is https.
    pub fn is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}

fn describe_figment_error(error: figment::Error) -> ConfigError {
    let key = error.path.join(".");
    let source = error
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(source) => format!(" (from {} {source})", m.name),
            None => format!(" (from {})", m.name),
        })
        .unwrap_or_default();
    let mut kind = error.kind.to_string();
    if let figment::error::Kind::UnknownField(field, _) = &error.kind {
        kind = format!("unknown key `{field}`");
    }
    if key.is_empty() {
        ConfigError(format!("{kind}{source}"))
    } else {
        ConfigError(format!("`{key}`: {kind}{source}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn issuer_with_trailing_slash_is_refused() {
        let config = Config {
            issuer: "https://id.example.com/".into(),
            ..Config::default()
        };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("`issuer`"), "{error}");
    }

    #[test]
    fn zero_lifetimes_are_refused_by_name() {
        let mut config = Config::default();
        config.tokens.access_token_ttl = Duration::ZERO;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("tokens.access_token_ttl"), "{error}");
    }

    #[test]
    fn toml_file_values_and_unknown_keys_are_reported_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.toml");
        std::fs::write(
            &path,
            "issuer = \"https://id.example.com\"\n[tokens]\naccess_token_ttl = \"5m\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.issuer, "https://id.example.com");
        assert_eq!(config.tokens.access_token_ttl, Duration::from_secs(300));

        std::fs::write(&path, "[tokens]\naccess_token_tll = \"5m\"\n").unwrap();
        let error = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("access_token_tll"), "{error}");
        assert_eq!(error.lines().count(), 1, "{error}");

        std::fs::write(&path, "listen = \"not an address\"\n").unwrap();
        let error = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("`listen`"), "{error}");
    }
}
