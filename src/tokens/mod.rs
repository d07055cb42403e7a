//! Signing keys, JSON Web Tokens, and the tokens Portcullis issues.

pub mod claims;
pub mod jwt;
pub mod keys;

pub use keys::{KeyRing, KeySet, Signer};
