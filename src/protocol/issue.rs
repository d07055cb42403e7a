//! Minting ID tokens and access tokens.

use serde::Serialize;

use crate::clock::UnixTime;
use crate::crypto::{left_half_sha256, random_token};
use crate::model::{Client, ScopeSet, User};
use crate::state::AppState;
use crate::storage::Grant;
use crate::storage::tenancy::UserWithTenancy;
use crate::tokens::claims::{AccessTokenClaims, IdTokenClaims, ProfileClaims, TenancyClaims};
use crate::tokens::jwt::{self, TYP_ACCESS_TOKEN, TYP_JWT};
use crate::tokens::keys::KeyError;

/// The token endpoint's successful answer (RFC 6749 section 5.1, OIDC Core 3.1.3.3).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The claims the granted scopes release about a user (OIDC Core section 5.4).
pub fn profile_claims(user: &User, scope: &ScopeSet) -> ProfileClaims {
    let mut claims = ProfileClaims::default();
    if scope.contains("profile") {
        claims.preferred_username = Some(user.username.clone());
        claims.name = user.name.clone();
        claims.updated_at = Some(user.updated_at);
    }
    if scope.contains("email") {
        claims.email = Some(user.email.clone());
        claims.email_verified = Some(user.email_verified);
    }
    if scope.contains("phone")
        && let Some(phone) = &user.phone
    {
        claims.phone_number = Some(phone.clone());
        claims.phone_number_verified = Some(false);
    }
    claims
}

pub fn user_tenancy(user: &UserWithTenancy) -> TenancyClaims {
    TenancyClaims {
        company_id: Some(user.user.company_id.clone()),
        reseller_id: Some(user.reseller_id.clone()),
    }
}

/// Tokens for a user: an access token bound to `grant`, an ID token, and the refresh
/// token (already stored by the caller) if one was issued.
pub async fn user_tokens(
    state: &AppState,
    client: &Client,
    user: &UserWithTenancy,
    grant: &Grant,
    nonce: Option<String>,
    refresh_token: Option<String>,
    now: UnixTime,
) -> Result<TokenResponse, KeyError> {
    let keys = state.keys.fresh(now).await;
    let signer = keys.signer(client.id_token_alg)?;
    let scope = ScopeSet::parse(&grant.scope).unwrap_or_default();
    let amr: Vec<String> = serde_json::from_str(&grant.amr).unwrap_or_default();
    let tenancy = user_tenancy(user);
    let access_ttl = secs(state.config.tokens.access_token_ttl);
    let access = AccessTokenClaims {
        iss: state.issuer.clone(),
        sub: user.user.id.clone(),
        aud: client.id.clone(),
        exp: now + access_ttl,
        iat: now,
        jti: random_token(),
        client_id: client.id.clone(),
        scope: grant.scope.clone(),
        auth_time: Some(grant.auth_time),
        acr: Some(grant.acr.clone()),
        amr: Some(amr.clone()),
        sid: Some(grant.session_id.clone()),
        gid: Some(grant.id.clone()),
        tenancy: tenancy.clone(),
    };
    let access_token = jwt::sign(&signer, TYP_ACCESS_TOKEN, &access)?;
    let id = IdTokenClaims {
        iss: state.issuer.clone(),
        sub: user.user.id.clone(),
        aud: client.id.clone(),
        exp: now + secs(state.config.tokens.id_token_ttl),
        iat: now,
        auth_time: grant.auth_time,
        nonce,
        amr,
        acr: grant.acr.clone(),
        azp: client.id.clone(),
        sid: grant.session_id.clone(),
        at_hash: Some(left_half_sha256(&access_token)),
        profile: profile_claims(&user.user, &scope),
        tenancy,
    };
    let id_token = jwt::sign(&signer, TYP_JWT, &id)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: access_ttl,
        refresh_token,
        id_token: Some(id_token),
        scope: grant.scope.clone(),
    })
}

/// An access token for a client acting for itself (client_credentials).
pub async fn client_token(
    state: &AppState,
    client: &Client,
    scope: &ScopeSet,
    now: UnixTime,
) -> Result<TokenResponse, KeyError> {
    let keys = state.keys.fresh(now).await;
    let signer = keys.signer(client.id_token_alg)?;
    let access_ttl = secs(state.config.tokens.access_token_ttl);
    let claims = AccessTokenClaims {
        iss: state.issuer.clone(),
        sub: client.id.clone(),
        aud: client.id.clone(),
        exp: now + access_ttl,
        iat: now,
        jti: random_token(),
        client_id: client.id.clone(),
        scope: scope.to_string(),
        auth_time: None,
        acr: None,
        amr: None,
        sid: None,
        gid: None,
        tenancy: TenancyClaims {
            company_id: client.company_id.clone(),
            reseller_id: client.reseller_id.clone(),
        },
    };
    Ok(TokenResponse {
        access_token: jwt::sign(&signer, TYP_ACCESS_TOKEN, &claims)?,
        token_type: "Bearer",
        expires_in: access_ttl,
        refresh_token: None,
        id_token: None,
        scope: scope.to_string(),
    })
}
