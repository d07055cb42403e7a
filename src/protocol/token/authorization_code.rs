//! `grant_type=authorization_code` (RFC 6749 section 4.1.3, RFC 7636 section 4.6).

use crate::crypto::{constant_time_eq, pkce_s256, random_token, token_hash};
use crate::flow::LoginState;
use crate::model::{Client, GrantType, new_id};
use crate::policy::{self, Evidence, Request};
use crate::protocol::errors::OAuthError;
use crate::protocol::issue::{TokenResponse, user_tokens};
use crate::protocol::params::Params;
use crate::state::AppState;
use crate::storage::{CodeContext, CodeExchange, Grant, PolicyContext, StoredCode};

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

pub async fn exchange(
    state: &AppState,
    client: &Client,
    mut params: Params,
) -> Result<TokenResponse, OAuthError> {
    let code = params
        .take("code")
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let redirect_uri = params
        .take("redirect_uri")
        .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
    let verifier = params.take("code_verifier");
    let now = state.now();
    let code_hash = token_hash(&code);
    // One read: the code, the login it came from, its user, the policy context and the
    // user's confirmed methods.
    let CodeContext {
        code: stored,
        login_state,
        user: context,
    } = state
        .store
        .code_context(&code_hash)
        .await
        .map_err(|e| OAuthError::store(&e))?
        .ok_or_else(|| OAuthError::invalid_grant("the authorization code is invalid"))?;
    if stored.client_id != client.id {
        // Not consumed: a code presented by the wrong client must not lock out the right one.
        return Err(OAuthError::invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    if stored.used_at.is_some() {
        // RFC 6749 section 4.1.2: a code used twice revokes what it issued.
        state
            .store
            .revoke_grant_of_code(&code_hash, now)
            .await
            .map_err(|e| OAuthError::store(&e))?;
        tracing::warn!(client_id = %client.id, "authorization code replayed; its tokens are revoked");
        return Err(OAuthError::invalid_grant(
            "the authorization code was already used",
        ));
    }
    if stored.expires_at <= now {
        return Err(OAuthError::invalid_grant("the authorization code has expired"));
    }
    if stored.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the one of the authorization request",
        ));
    }
    check_pkce(&stored, verifier.as_deref())?;
    if !context.user.user.active {
        return Err(OAuthError::invalid_grant("the user can no longer sign in"));
    }
    check_policy(
        &stored,
        login_state.as_deref(),
        context.policy,
        &context.confirmed,
        now,
    )?;
    let user = context.user;

    let grant = Grant {
        id: new_id(),
        client_id: client.id.clone(),
        user_id: stored.user_id.clone(),
        session_id: stored.session_id.clone(),
        scope: stored.scope.clone(),
        auth_time: stored.auth_time,
        amr: stored.amr.clone(),
        acr: stored.acr.clone(),
        created_at: now,
        expires_at: now + secs(state.config.tokens.refresh_token_absolute_ttl),
        revoked_at: None,
        skipped: stored.skipped,
    };
    let refresh_token = client.allows_grant(GrantType::RefreshToken).then(random_token);
    let refresh = refresh_token.as_ref().map(|token| {
        let expires_at = (now + secs(state.config.tokens.refresh_token_ttl)).min(grant.expires_at);
        (token_hash(token), expires_at)
    });
    let outcome = state
        .store
        .exchange_code(
            &code_hash,
            &grant,
            refresh.as_ref().map(|(h, e)| (h.as_str(), *e)),
            now,
        )
        .await
        .map_err(|e| OAuthError::store(&e))?;
    if outcome == CodeExchange::Replayed {
        tracing::warn!(client_id = %client.id, "authorization code used concurrently; its tokens are revoked");
        return Err(OAuthError::invalid_grant(
            "the authorization code was already used",
        ));
    }
    user_tokens(
        state,
        client,
        &user,
        &grant,
        stored.nonce.clone(),
        refresh_token,
        now,
    )
    .await
    .map_err(|e| OAuthError::server_error(&e))
}

/// The MFA policy is enforced where tokens are issued: the login behind the code must
/// have satisfied the decision taken for it (`login_state`, its stored state), and must
/// satisfy the policy as it is now (`policy`, and the user's `confirmed` methods).
fn check_policy(
    code: &StoredCode,
    login_state: Option<&str>,
    policy: PolicyContext,
    confirmed: &[String],
    now: i64,
) -> Result<(), OAuthError> {
    let evidence = Evidence {
        amr: serde_json::from_str(&code.amr).unwrap_or_default(),
        skipped: code.skipped,
    };
    if code.login_id.is_some() {
        let recorded = match login_state.and_then(|s| serde_json::from_str::<LoginState>(s).ok()) {
            Some(LoginState::Done { auth }) => auth,
            _ => {
                return Err(OAuthError::invalid_grant(
                    "the sign-in behind this code did not finish",
                ));
            }
        };
        if recorded.evidence() != evidence || !policy::satisfied(&recorded.decision, &evidence) {
            return Err(OAuthError::invalid_grant(
                "the sign-in behind this code did not meet its multi-factor requirement",
            ));
        }
    }
    let acr_values: Vec<String> = serde_json::from_str(&code.acr_values).unwrap_or_default();
    let request = Request {
        wants_mfa: policy::wants_mfa(&acr_values),
    };
    match policy::load::unmet_in_context(policy, confirmed, &request, &evidence, now) {
        None => Ok(()),
        Some(_) => Err(OAuthError::invalid_grant(
            "the sign-in no longer meets the multi-factor policy; sign in again",
        )),
    }
}

/// RFC 7636 section 4.6, and no verifier without a challenge (a downgrade).
fn check_pkce(stored: &StoredCode, verifier: Option<&str>) -> Result<(), OAuthError> {
    match (&stored.code_challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier was sent but the authorization request had no code_challenge",
        )),
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is required")),
        (Some(challenge), Some(verifier)) => {
            let well_formed = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            if !well_formed {
                return Err(OAuthError::invalid_grant(
                    "code_verifier must be 43 to 128 unreserved characters",
                ));
            }
            if constant_time_eq(pkce_s256(verifier).as_bytes(), challenge.as_bytes()) {
                Ok(())
            } else {
                Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ))
            }
        }
    }
}
