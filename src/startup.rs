//! Building and running the application. Tests build it exactly as production does, on a
//! port of their choosing and a fresh database.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::notify::email::{Mailer, Transport};
use crate::notify::sms::SmsSender;
use crate::password::Passwords;
use crate::state::{AppState, Inner};
use crate::storage::{Checkpoints, Store};
use crate::templates::Templates;
use crate::tokens::KeyRing;

/// How long past expiry expired rows are kept, so a late replay is still recognised.
const PURGE_GRACE: i64 = 24 * 3600;
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// How often the server checkpoints SQLite's log. Each checkpoint ends with a short pass in
/// the write turn; once a second kept the refresh p99 lower than five times a second (8.4-9.0
/// against 9.6-10.9 ms in check runs). The log file peaks at about one second of writes.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Opens the database named by the configuration and applies pending migrations (for a
/// command: SQLite checkpoints on commit).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    open_store_with(config, Checkpoints::OnCommit).await
}

async fn open_store_with(config: &Config, checkpoints: Checkpoints) -> anyhow::Result<Store> {
    let store = Store::connect_with(
        config.database_url.expose(),
        config.database.max_connections,
        checkpoints,
    )
    .await?;
    store.migrate().await?;
    Ok(store)
}

/// The master key: from the configuration, or `<key_dir>/master.key` (created if missing).
pub fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    match &config.master_key {
        Some(key) => MasterKey::from_base64(key.expose()).context("reading master_key"),
        None => MasterKey::load_or_create(&config.key_dir).context("loading the master key"),
    }
}

impl Application {
    /// Binds `config.listen` and builds the application.
    pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        Self::build_on(listener, config, clock).await
    }

    /// Builds the application on an already bound listener.
    pub async fn build_on(listener: TcpListener, config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        config.validate()?;
        // SQLite's log is checkpointed by the `checkpoint` job, not inside a writer's commit.
        let store = open_store_with(&config, Checkpoints::Background).await?;
        let master = master_key(&config)?;
        let tokens = &config.tokens;
        // A retired key stays published while tokens it signed may be live, plus the time
        // other instances may take to notice the rotation.
        let publish_retired_for =
            secs(tokens.access_token_ttl.max(tokens.id_token_ttl)) + secs(tokens.key_refresh_interval) + 60;
        let refresh_interval = secs(tokens.key_refresh_interval);
        let keys = KeyRing::open(
            store.clone(),
            master.clone(),
            publish_retired_for,
            refresh_interval,
            clock.now(),
        )
        .await
        .context("loading signing keys")?;
        let passwords = Passwords::new(&config.password)?;
        let templates = Templates::load()?;
        let mailer = Mailer::from_config(&config)?;
        let sms = SmsSender::from_config(&config).context("building the SMS client")?;
        if matches!(sms, SmsSender::Log) || matches!(mailer.transport(), Transport::Log) {
            tracing::warn!(
                "email or SMS goes to the log (development only): one-time codes will appear in it"
            );
        }
        let issuer = config.issuer.clone();
        let discovery = crate::protocol::discovery::document(&issuer).to_string().into();
        let state = AppState::new(Inner {
            config,
            issuer,
            store,
            keys,
            passwords,
            templates,
            clock,
            discovery,
            master,
            mailer,
            sms,
            clients: Default::default(),
        });
        Ok(Self { listener, state })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, with the background purge of expired rows.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let jobs = [
            tokio::spawn(purge(self.state.clone())),
            tokio::spawn(checkpoint(self.state.store.clone())),
            tokio::spawn(crate::notify::email::run_worker(self.state.clone())),
        ];
        let app = crate::http::router(self.state.clone());
        let served = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        for job in jobs {
            job.abort();
        }
        self.state.store.close().await;
        served.context("serving HTTP")
    }
}

/// Deletes expired state now and then.
async fn purge(state: AppState) {
    let mut ticker = tokio::time::interval(PURGE_EVERY);
    loop {
        ticker.tick().await;
        match state.store.purge_expired(state.now(), PURGE_GRACE).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "purged expired rows"),
            Err(error) => tracing::warn!(%error, "purging expired rows failed"),
        }
    }
}

/// Checkpoints SQLite's write-ahead log every [`CHECKPOINT_EVERY`] (the store was opened
/// with [`Checkpoints::Background`]), so that no commit does it while writers wait.
async fn checkpoint(store: Store) {
    let mut ticker = tokio::time::interval(CHECKPOINT_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match store.checkpoint().await {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(error) => tracing::warn!(%error, "checkpointing the SQLite log failed"),
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
