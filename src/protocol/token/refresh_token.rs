//! `grant_type=refresh_token` (RFC 6749 section 6) with rotation and reuse detection.

use crate::crypto::{random_token, token_hash};
use crate::model::{Client, ScopeSet};
use crate::policy::{self, Evidence, Request};
use crate::protocol::errors::{ErrorCode, OAuthError};
use crate::protocol::issue::{TokenResponse, user_tokens};
use crate::protocol::params::Params;
use crate::state::AppState;
use crate::storage::{RefreshContext, RefreshOutcome, Refreshed};

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
    // A narrowing is judged before the rotation, on the grant as it stands, so that a
    // refused one does not burn the token. (A token that is not current is refused by the
    // rotation below, which also revokes a reused token's family.)
    if let Some(narrowed) = &narrowed {
        let current = state
            .store
            .grant_of_refresh_token(&presented_hash, now)
            .await
            .map_err(|e| OAuthError::store(&e))?;
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
    // The rotation and, with it, one read of the grant, its user, the policy context and the
    // user's confirmed methods.
    let ttl = i64::try_from(state.config.tokens.refresh_token_ttl.as_secs()).unwrap_or(i64::MAX);
    let next = random_token();
    let refreshed = state
        .store
        .refresh_grant(&client.id, &presented_hash, &token_hash(&next), now + ttl, now)
        .await
        .map_err(|e| OAuthError::store(&e))?;
    let RefreshContext {
        mut grant,
        user,
        policy,
        confirmed,
    } = match refreshed {
        Refreshed::Rotated(context) => *context,
        // Used, revoked, expired or another client's (a concurrent request may have rotated it).
        Refreshed::Refused(outcome) => return Err(refused(client, &outcome)),
    };
    // The MFA policy is enforced at every issuance: a grant from a login the current
    // policy would not accept (MFA was made required, an opt-out expired) ends here, with
    // the whole family (the successor just stored included).
    let evidence = Evidence {
        amr: serde_json::from_str(&grant.amr).unwrap_or_default(),
        skipped: grant.skipped,
    };
    let refusal = if !user.user.active {
        Some("the user can no longer sign in")
    } else if policy::load::unmet_in_context(policy, &confirmed, &Request::default(), &evidence, now)
        .is_some()
    {
        Some("the sign-in behind this token no longer meets the multi-factor policy; sign in again")
    } else {
        None
    };
    if let Some(refusal) = refusal {
        state
            .store
            .revoke_grant(&grant.id, now)
            .await
            .map_err(|e| OAuthError::store(&e))?;
        return Err(OAuthError::invalid_grant(refusal));
    }
    if let Some(narrowed) = narrowed {
        // The access token carries the narrowed scope, the family keeps its own.
        grant.scope = narrowed.to_string();
    }
    user_tokens(state, client, &user, &grant, None, Some(next), now)
        .await
        .map_err(|e| OAuthError::server_error(&e))
}

/// The error for a refresh token that was not rotated.
fn refused(client: &Client, outcome: &RefreshOutcome) -> OAuthError {
    if *outcome == RefreshOutcome::Reused {
        tracing::warn!(client_id = %client.id, "refresh token reused; its family is revoked");
        OAuthError::invalid_grant(
            "the refresh token was already used; every token of its family is now revoked",
        )
    } else {
        OAuthError::invalid_grant("the refresh token is invalid, expired or revoked")
    }
}
