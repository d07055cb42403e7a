//! JSON Web Tokens: compact JWS signing with parsed keys, and verification.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::keys::{KeyError, KeySet, Signer};
use crate::model::SigningAlg;

/// `typ` of ID tokens.
pub const TYP_JWT: &str = "JWT";
/// `typ` of access tokens (RFC 9068 section 2.1).
pub const TYP_ACCESS_TOKEN: &str = "at+jwt";

/// Signs `claims` as a compact JWS with the signer's key and `kid`.
pub fn sign<T: Serialize>(signer: &Signer, typ: &str, claims: &T) -> Result<String, KeyError> {
    let header = json!({ "alg": signer.alg.as_str(), "kid": signer.kid, "typ": typ });
    let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
    let mut token = String::with_capacity(512);
    URL_SAFE_NO_PAD.encode_string(header.to_string(), &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = signer.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token was not signed by a key of this provider")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has the wrong type")]
    WrongType,
}

/// The `kid` a token names in its header, if it parses.
pub fn kid_of(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid)
}

/// Verifies the signature of a token signed by one of `keys` and returns its claims.
/// Times, issuer and audience are the caller's to check, against the injected clock.
pub fn verify<T: DeserializeOwned>(keys: &KeySet, token: &str, typ: &str) -> Result<T, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
    let verifier = keys.verifier(kid).ok_or(VerifyError::UnknownKey)?;
    let alg = match verifier.alg {
        SigningAlg::RS256 => jsonwebtoken::Algorithm::RS256,
        SigningAlg::ES256 => jsonwebtoken::Algorithm::ES256,
    };
    if header.alg != alg {
        return Err(VerifyError::BadSignature);
    }
    if !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(typ)) {
        return Err(VerifyError::WrongType);
    }
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<T>(token, &verifier.key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::BadSignature,
            _ => VerifyError::Malformed,
        })
}
