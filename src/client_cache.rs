//! Client records kept in memory for a moment: the token, authorize and login endpoints read
//! the client on every request, and a client changes rarely.
//!
//! An entry lives at most [`TTL`]. Changes made through this process (the admin API) drop
//! the entry at once; a change made elsewhere (another instance, the CLI) is seen within
//! [`TTL`]. Unknown ids are not cached, and the map is bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::Client;
use crate::storage::{Store, StoreResult};

/// How long a client record read from the database is used without reading it again.
pub const TTL: Duration = Duration::from_secs(1);

/// Entries beyond this many are dropped wholesale (clients are few; this only bounds memory).
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct ClientCache {
    entries: Mutex<HashMap<String, (Instant, Client)>>,
}

impl ClientCache {
    /// The client `id`, from the cache when its entry is fresh, else from `store`.
    pub async fn get(&self, store: &Store, id: &str) -> StoreResult<Option<Client>> {
        if let Some(client) = self.fresh(id) {
            return Ok(Some(client));
        }
        let client = store.get_client(id).await?;
        if let Some(client) = &client {
            let mut entries = self.lock();
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(id.to_owned(), (Instant::now(), client.clone()));
        }
        Ok(client)
    }

    /// Drops what is kept about `id` (after this process changed or deleted it).
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Drops everything (after a change that may delete clients, such as deleting a company).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn fresh(&self, id: &str) -> Option<Client> {
        let entries = self.lock();
        let (read_at, client) = entries.get(id)?;
        (read_at.elapsed() < TTL).then(|| client.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Client)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
