//! What every request handler shares.

use std::sync::Arc;

use crate::client_cache::ClientCache;
use crate::clock::{SharedClock, UnixTime};
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::notify::email::Mailer;
use crate::notify::sms::SmsSender;
use crate::password::Passwords;
use crate::storage::Store;
use crate::templates::Templates;
use crate::tokens::KeyRing;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub issuer: String,
    pub store: Store,
    pub keys: KeyRing,
    pub passwords: Passwords,
    pub templates: Templates,
    pub clock: SharedClock,
    /// The discovery document, serialised once (a response shares it, without a copy).
    pub discovery: axum::body::Bytes,
    /// Seals TOTP secrets and keys recovery-code hashes.
    pub master: MasterKey,
    pub mailer: Mailer,
    pub sms: SmsSender,
    /// Client records, kept for a moment (see `client_cache`).
    pub clients: ClientCache,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// A client record, from the short-lived cache or the database.
    pub async fn client(&self, id: &str) -> crate::storage::StoreResult<Option<crate::model::Client>> {
        self.clients.get(&self.store, id).await
    }

    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// An absolute URL on this provider.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}
