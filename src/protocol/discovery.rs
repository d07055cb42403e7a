//! OpenID Connect Discovery 1.0 (section 3): exactly what this provider supports.

use serde_json::{Value, json};

use crate::model::SUPPORTED_USER_SCOPES;
use crate::tokens::claims::{ACR_MFA, ACR_PASSWORD, COMPANY_CLAIM, RESELLER_CLAIM};

pub const JWKS_PATH: &str = "/jwks.json";

pub fn document(issuer: &str) -> Value {
    let url = |path: &str| format!("{issuer}{path}");
    let client_auth = ["client_secret_basic", "client_secret_post", "none"];
    json!({
        "issuer": issuer,
        "authorization_endpoint": url("/authorize"),
        "token_endpoint": url("/token"),
        "userinfo_endpoint": url("/userinfo"),
        "jwks_uri": url(JWKS_PATH),
        "revocation_endpoint": url("/revoke"),
        "introspection_endpoint": url("/introspect"),
        "end_session_endpoint": url("/logout"),
        "scopes_supported": SUPPORTED_USER_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": client_auth,
        "revocation_endpoint_auth_methods_supported": client_auth,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "acr_values_supported": [ACR_PASSWORD, ACR_MFA],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid",
            "at_hash", "name", "preferred_username", "updated_at", "email", "email_verified",
            "phone_number", "phone_number_verified", COMPANY_CLAIM, RESELLER_CLAIM,
        ],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    })
}
