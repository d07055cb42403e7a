//! Checking our own access tokens where they are presented (userinfo, introspection,
//! revocation, and later the admin API).

use crate::state::AppState;
use crate::tokens::claims::AccessTokenClaims;
use crate::tokens::jwt::{self, TYP_ACCESS_TOKEN, VerifyError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    #[error("{0}")]
    Unverifiable(#[from] VerifyError),
    #[error("the token was issued by another provider")]
    WrongIssuer,
    #[error("the token has expired")]
    Expired,
    #[error("the token was revoked")]
    Revoked,
    #[error("the server could not check the token")]
    Unavailable,
}

/// Verifies signature and type only: for revocation, which must find the token even
/// after it expired.
pub async fn decode(state: &AppState, token: &str) -> Result<AccessTokenClaims, TokenProblem> {
    let now = state.now();
    let kid = jwt::kid_of(token).ok_or(VerifyError::Malformed)?;
    let keys = state.keys.with_kid(&kid, now).await;
    let claims: AccessTokenClaims = jwt::verify(&keys, token, TYP_ACCESS_TOKEN)?;
    if claims.iss != state.issuer {
        return Err(TokenProblem::WrongIssuer);
    }
    Ok(claims)
}

/// A live access token: signed by us, unexpired, not revoked, and its grant not revoked.
pub async fn validate(state: &AppState, token: &str) -> Result<AccessTokenClaims, TokenProblem> {
    let claims = decode(state, token).await?;
    let now = state.now();
    if claims.exp <= now {
        return Err(TokenProblem::Expired);
    }
    let revoked = state.store.is_jti_revoked(&claims.jti).await.map_err(|e| {
        tracing::error!(error = %e, "checking token revocation failed");
        TokenProblem::Unavailable
    })?;
    if revoked {
        return Err(TokenProblem::Revoked);
    }
    if let Some(gid) = &claims.gid {
        let grant = state.store.get_grant(gid).await.map_err(|e| {
            tracing::error!(error = %e, "checking the token's grant failed");
            TokenProblem::Unavailable
        })?;
        if grant.is_none_or(|g| g.revoked_at.is_some()) {
            return Err(TokenProblem::Revoked);
        }
    }
    Ok(claims)
}
