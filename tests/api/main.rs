//! The integration suite: one binary, the real server over HTTP. Runs on SQLite, or on
//! PostgreSQL when `TEST_POSTGRES_URL` is set (see `helpers.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;
mod smtp;

mod admin_api;
mod authorize;
mod bench;
mod browser;
mod cli;
mod login;
mod logout;
mod mfa;
mod otp;
mod rp;
mod storage;
mod tokens;
