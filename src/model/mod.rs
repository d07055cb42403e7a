//! Domain types. Input is parsed into these at the edge (CLI, forms, API), so the rest of
//! the code never sees an unchecked username, address, redirect URI or scope.

mod client;
mod scope;
mod tenancy;

pub use client::{Client, GrantType, NewClient, RedirectUri, SigningAlg};
pub use scope::{SUPPORTED_USER_SCOPES, ScopeSet};
pub use tenancy::{Company, Email, NewUser, Phone, Reseller, Role, User, Username};

/// Why a value was refused: a sentence for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// A new time-ordered identifier (UUIDv7): unguessable enough for ids, and index-friendly.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
