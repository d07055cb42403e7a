//! `grant_type=client_credentials` (RFC 6749 section 4.4): a confidential client acting
//! for itself. No ID token and no refresh token.

use crate::model::{Client, SUPPORTED_USER_SCOPES, ScopeSet};
use crate::protocol::errors::{ErrorCode, OAuthError};
use crate::protocol::issue::{TokenResponse, client_token};
use crate::protocol::params::Params;
use crate::state::AppState;

pub async fn issue(
    state: &AppState,
    client: &Client,
    mut params: Params,
) -> Result<TokenResponse, OAuthError> {
    let scope = match params.take("scope") {
        Some(raw) => {
            ScopeSet::parse(&raw).map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?
        }
        // Without a scope the client gets every scope it may have that is not about a user.
        None => ScopeSet::parse(
            &client
                .scopes
                .iter()
                .filter(|s| !SUPPORTED_USER_SCOPES.contains(s))
                .collect::<Vec<_>>()
                .join(" "),
        )
        .unwrap_or_default(),
    };
    if let Some(user_scope) = scope.iter().find(|s| SUPPORTED_USER_SCOPES.contains(s)) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!(
                "scope `{user_scope}` is about a user and cannot be granted to a client acting for itself"
            ),
        ));
    }
    if let Some(unknown) = scope.not_in(&client.scopes).next() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("scope `{unknown}` is not allowed for this client"),
        ));
    }
    client_token(state, client, &scope, state.now())
        .await
        .map_err(|e| OAuthError::server_error(&e))
}
