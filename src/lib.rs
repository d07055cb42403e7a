//! Portcullis: an OpenID Connect provider for multi-tenant B2B software.
//!
//! The module map and the path of a login through it are described in
//! `docs/architecture.md`.
//!
//! These docs are for the crate's maintainers: build them with
//! `cargo doc --document-private-items`, whose links into private items the lint below allows.
#![allow(rustdoc::private_intra_doc_links)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented,
        clippy::dbg_macro
    )
)]
// Handlers return `Result<_, Response>`, axum's idiom; boxing every error response would
// buy nothing.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod audit;
pub mod bench;
pub mod cli;
pub mod client_cache;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod flow;
pub mod http;
pub mod mfa;
pub mod model;
pub mod notify;
pub mod password;
pub mod policy;
pub mod protocol;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod templates;
pub mod tokens;
