//! The token endpoint (RFC 6749 section 3.2): client authentication, then one module per
//! grant type.

mod authorization_code;
mod client_credentials;
mod refresh_token;

use axum::http::HeaderMap;

use super::client_auth::{authenticate, presented};
use super::errors::{ErrorCode, OAuthError};
use super::issue::TokenResponse;
use super::params::{Params, ParamsError};
use crate::model::GrantType;
use crate::state::AppState;

/// Handles one token request: form body already read, content type already checked.
pub async fn token(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<TokenResponse, OAuthError> {
    let mut params = Params::parse(body).map_err(|e| match e {
        ParamsError::Duplicate(_) | ParamsError::Malformed => OAuthError::invalid_request(e.to_string()),
    })?;
    let presented = presented(headers, &mut params)?;
    let grant_type = params
        .take("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let grant = grant_type.parse::<GrantType>().map_err(|_| {
        OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "grant_type must be authorization_code, refresh_token or client_credentials",
        )
    })?;
    let client = authenticate(state, &presented).await?;
    if !client.allows_grant(grant) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("this client may not use the {} grant", grant.as_str()),
        ));
    }
    match grant {
        GrantType::AuthorizationCode => authorization_code::exchange(state, &client, params).await,
        GrantType::RefreshToken => refresh_token::refresh(state, &client, params).await,
        GrantType::ClientCredentials => client_credentials::issue(state, &client, params).await,
    }
}
