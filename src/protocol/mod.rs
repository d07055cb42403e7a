//! OAuth 2.0 and OpenID Connect, independent of HTTP plumbing: typed requests, one small
//! check per rule, and what each endpoint answers.

pub mod access_token;
pub mod authorize;
pub mod client_auth;
pub mod discovery;
pub mod errors;
pub mod issue;
pub mod params;
pub mod token;
