//! `grant_type=refresh_token` (RFC 6749 section 6) with rotation and reuse detection.

use crate::crypto::{random_token, token_hash};
use crate::model::{Client, ScopeSet};
use crate::policy::{self, Evidence, Request};
use crate::protocol::errors::{ErrorCode, OAuthError};
use crate::protocol::issue::{TokenResponse, user_tokens};
use crate::protocol::params::Params;
use crate::state::AppState;
use crate::storage::RefreshOutcome;

pub async fn refresh(
    state: &AppState,
    client: &Client,
    mut params: Params,
) -> Result<TokenResponse, OAuthError> {
    let presented = params
        .take("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let narrowed = params
        .take("scope")
        .map(|s| ScopeSet::parse(&s).map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string())))
        .transpose()?;
    let now = state.now();
    let presented_hash = token_hash(&presented);
    // Check a narrowed scope before rotating: refusing it afterwards would burn the token.
    if let Some(narrowed) = &narrowed {
        let current = state
            .store
            .grant_of_refresh_token(&presented_hash, now)
            .await
            .map_err(|e| OAuthError::server_error(&e))?;
        if let Some((grant, _)) = current.filter(|(g, _)| g.client_id == client.id) {
            let granted = ScopeSet::parse(&grant.scope).unwrap_or_default();
            if !narrowed.is_subset(&granted) || !narrowed.contains("openid") {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "the requested scope must be a subset of the original grant and contain openid",
                ));
            }
        }
    }
    let ttl = i64::try_from(state.config.tokens.refresh_token_ttl.as_secs()).unwrap_or(i64::MAX);
    let next = random_token();
    let outcome = state
        .store
        .rotate_refresh_token(&client.id, &presented_hash, &token_hash(&next), now + ttl, now)
        .await
        .map_err(|e| OAuthError::server_error(&e))?;
    let mut grant = match outcome {
        RefreshOutcome::Rotated(grant) => *grant,
        RefreshOutcome::Reused => {
            tracing::warn!(client_id = %client.id, "refresh token reused; its family is revoked");
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used; every token of its family is now revoked",
            ));
        }
        RefreshOutcome::Invalid => {
            return Err(OAuthError::invalid_grant(
                "the refresh token is invalid, expired or revoked",
            ));
        }
    };
    if let Some(narrowed) = narrowed {
        // Checked above; the access token carries the narrowed scope, the family keeps its own.
        grant.scope = narrowed.to_string();
    }
    let user = state
        .store
        .get_user_with_tenancy(&grant.user_id)
        .await
        .map_err(|e| OAuthError::server_error(&e))?;
    let Some(user) = user.filter(|u| u.user.active) else {
        state
            .store
            .revoke_grant(&grant.id, now)
            .await
            .map_err(|e| OAuthError::server_error(&e))?;
        return Err(OAuthError::invalid_grant("the user can no longer sign in"));
    };
    // The MFA policy is enforced at every issuance: a grant from a login the current
    // policy would not accept (MFA was made required, an opt-out expired) ends here.
    let evidence = Evidence {
        amr: serde_json::from_str(&grant.amr).unwrap_or_default(),
        skipped: grant.skipped,
    };
    let unmet = policy::load::unmet_decision(&state.store, &user.user, &Request::default(), &evidence, now)
        .await
        .map_err(|e| OAuthError::server_error(&e))?;
    if unmet.is_some() {
        state
            .store
            .revoke_grant(&grant.id, now)
            .await
            .map_err(|e| OAuthError::server_error(&e))?;
        return Err(OAuthError::invalid_grant(
            "the sign-in behind this token no longer meets the multi-factor policy; sign in again",
        ));
    }
    user_tokens(state, client, &user, &grant, None, Some(next), now)
        .await
        .map_err(|e| OAuthError::server_error(&e))
}
