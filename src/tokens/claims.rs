//! The claims of the tokens Portcullis issues. Names are documented in `docs/tokens.md`.

use serde::{Deserialize, Serialize};

/// Namespaced claim carrying the user's company id (or a service client's company).
pub const COMPANY_CLAIM: &str = "urn:portcullis:company_id";
/// Namespaced claim carrying the reseller id.
pub const RESELLER_CLAIM: &str = "urn:portcullis:reseller_id";

/// `acr` when only the password was checked.
pub const ACR_PASSWORD: &str = "urn:portcullis:acr:pwd";
/// `acr` when a second factor was checked too.
pub const ACR_MFA: &str = "urn:portcullis:acr:mfa";

/// Claims that depend on the scopes granted (OIDC Core section 5.4).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProfileClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_verified: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TenancyClaims {
    #[serde(rename = "urn:portcullis:company_id", skip_serializing_if = "Option::is_none")]
    pub company_id: Option<String>,
    #[serde(
        rename = "urn:portcullis:reseller_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub reseller_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub amr: Vec<String>,
    pub acr: String,
    pub azp: String,
    pub sid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(flatten)]
    pub profile: ProfileClaims,
    #[serde(flatten)]
    pub tenancy: TenancyClaims,
}

/// Access tokens follow the JWT profile of RFC 9068.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The grant this token came from; revoking the grant revokes the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    #[serde(flatten)]
    pub tenancy: TenancyClaims,
}
